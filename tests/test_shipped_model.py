"""The default model shipped in the package: it is the shipped pack's export, and a light install
(no extras: no torch, no onnx) scores photos with it."""

import os
import subprocess
import sys
import venv

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_shipped_model_is_the_shipped_packs_export(tmp_path, heldout_photos):
    """A fresh export of the shipped pack scores like the shipped file (1e-6), so the two cannot drift."""
    from quasar.centroids.distortions import distort
    from quasar.centroids.pack import CentroidPack
    from quasar.contract import shipped_model_path
    from quasar.export.onnx_export import export_onnx
    from quasar.io import read_rgb
    from quasar.runtime import Scorer

    shipped = shipped_model_path()
    assert shipped is not None, "quasar/data has no model exported from the shipped pack: " \
                                "run `python -m quasar.export.default --ship`"
    fresh = export_onnx(None, CentroidPack.load("default"), tmp_path / "fresh.onnx")
    imgs = []
    for p in heldout_photos[:3]:
        img = read_rgb(p.path)
        imgs += [img, distort(img, "jpeg", 3), distort(img, "darken", 4)]
    with Scorer(shipped, workers=1) as a, Scorer(fresh, workers=1) as b:
        ra, rb = a.score(imgs), b.score(imgs)
        assert a.heads == b.heads and a.info.pack_hash == b.info.pack_hash
    sa = np.array([[r.scores[h] for h in a.heads] for r in ra])
    sb = np.array([[r.scores[h] for h in a.heads] for r in rb])
    assert np.abs(sa - sb).max() <= 1e-6


@pytest.mark.slow
def test_light_install_scores_without_torch(tmp_path, heldout_photos):
    """`pip install .` without extras (a wheel built here, installed offline into a fresh virtual
    environment whose other packages come from this interpreter) scores real photos with the
    default model, and never imports torch or onnx."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(wheels), REPO], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(wheels.glob("quasar_engine-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = str(env_dir / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    files = [p.path for p in heldout_photos[:3]]
    code = (
        "import sys, quasar\n"
        "from quasar.runtime import Scorer\n"
        "with Scorer() as s:\n"
        "    recs = s.score(sys.argv[1:])\n"
        "assert quasar.__file__.startswith(sys.prefix), quasar.__file__\n"
        "assert all(r.error is None for r in recs), [r.error for r in recs]\n"
        "bad = [m for m in ('torch', 'onnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(s.info.path)\n"
        "print(' '.join(f'{r.scores[\"quality\"]:.4f}' for r in recs))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("QUASAR_MODEL", "PYTHONPATH")}
    env["QUASAR_CACHE"] = str(tmp_path / "cache")  # nothing cached: the shipped model must be used
    r = subprocess.run([py, "-c", code, *files], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    path, scores = r.stdout.strip().splitlines()[-2:]
    assert path.startswith(str(env_dir)) and path.endswith("default_quality-fp32.onnx")
    assert all(0.0 <= float(s) <= 1.0 for s in scores.split())
