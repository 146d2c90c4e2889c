"""The default model shipped in the package: it is the shipped pack's export, and a light install
(no extras: no torch, no onnx) scores photos with it."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from venvs import child_venv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_shipped_model_is_the_shipped_packs_export(tmp_path, heldout_photos):
    """A fresh export of the shipped pack scores like the shipped file (1e-6), so the two cannot drift."""
    from quasar.centroids.distortions import distort
    from quasar.centroids.pack import CentroidPack
    from quasar.export.onnx_export import export_onnx
    from quasar.io import read_rgb
    from quasar.runtime import Scorer
    from quasar.shipped import shipped_model_path

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


def test_shipped_model_matches_its_recorded_provenance():
    """quasar/data/default_quality.provenance.json (written by ``--ship``) names the shipped model's
    sha256, the shipped pack and the library versions that exported it."""
    import json

    from quasar.centroids.pack import CentroidPack
    from quasar.export.reproduce import PROVENANCE, provenance_path
    from quasar.shipped import shipped_model_path
    from quasar.sidecars import file_sha256

    shipped = shipped_model_path()
    assert shipped is not None
    path = provenance_path(shipped)
    assert os.path.basename(path) == PROVENANCE and os.path.isfile(path), \
        f"{path} is missing: run `python -m quasar.export.default --ship`"
    prov = json.loads(open(path, encoding="utf-8").read())
    assert prov["sha256"] == file_sha256(shipped) and prov["bytes"] == os.path.getsize(shipped)
    assert prov["pack_content_hash"] == CentroidPack.load("default").content_hash
    assert all(prov["exported_with"].get(k) for k in ("torch", "onnx", "onnxruntime", "python"))


def test_anchor_subset_comparison_flags_drift():
    """compare_subset passes equal records, counts bit-identical ones, and names drift beyond the tolerance."""
    from quasar.export.reproduce import compare_subset

    rec = [{"photo": "a/b", "distortion": None, "level": 0, "sha256": "x", "margins": [0.5, -1.0],
            "projections": [0.1, 0.2]},
           {"photo": "a/b", "distortion": "jpeg", "level": 4, "sha256": "y", "margins": [0.1, 0.2],
            "projections": [0.3, 0.4]}]
    assert compare_subset(rec, rec) == ([], 2)
    moved = [dict(rec[0], sha256="z", margins=[0.50005, -1.0]), dict(rec[1], sha256="w", projections=[0.3, 0.401])]
    assert compare_subset(rec, moved, tol=1e-4) == (["a/b/jpeg/4: projections differ by 0.001 (> 0.0001)"], 0)
    assert compare_subset(rec, moved[:1]) == (["a/b/jpeg/4: not embedded"], 0)


@pytest.mark.slow
def test_ship_records_provenance_and_reproduce_passes(tmp_path, capsys):
    """``--ship`` into another folder writes the model and its provenance; ``reproduce`` (without the
    pack rebuild) re-exports, compares scores and re-embeds the anchor subset: reproduced, here
    bit-identical; a tampered digest in the provenance fails it."""
    import json

    from quasar.constants import SHIPPED_MODEL
    from quasar.export.default import ship_default_model
    from quasar.export.reproduce import provenance_path, reproduce
    from quasar.sidecars import file_sha256

    out = ship_default_model(str(tmp_path / SHIPPED_MODEL))
    prov = json.loads(open(provenance_path(out), encoding="utf-8").read())
    assert prov["sha256"] == file_sha256(out) and prov["command"] == "python -m quasar.export.default --ship"
    assert len(prov["anchor_subset"]["anchors"]) == 18
    assert reproduce(rebuild=False, model=out) == 0
    report = capsys.readouterr().out
    assert "18 of 18 anchors within 0.0001, 18 bit-identical" in report and report.strip().endswith("reproduced")
    prov["anchor_subset"]["anchors"][0]["margins"][0] += 0.01
    with open(provenance_path(out), "w", encoding="utf-8") as f:
        json.dump(prov, f)
    assert reproduce(rebuild=False, model=out) == 1
    assert "not reproduced" in capsys.readouterr().out


@pytest.mark.slow
def test_light_install_scores_without_torch(tmp_path, heldout_photos):
    """`pip install .` without extras (a wheel built here, installed offline into a fresh virtual
    environment whose other packages come from this interpreter's environment, a venv or not: see
    tests/venvs.py) scores real photos with the default model, and never imports torch or onnx."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(wheels), REPO], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(wheels.glob("quasar_engine-*.whl"))
    env_dir = tmp_path / "venv"
    py = child_venv(env_dir)
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
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


def test_child_venv_sees_the_parent_venvs_packages(tmp_path):
    """From inside a virtual environment, the child venv (tests/venvs.py) sees that venv's packages,
    not only its base interpreter's (``EnvBuilder(system_site_packages=True)`` there gave the base's)."""
    probe = tmp_path / "only_in_parent"
    probe.mkdir()
    (probe / "quasar_probe_mod.py").write_text("VALUE = 7\n")
    parent = child_venv(tmp_path / "parent", extra_dirs=[str(probe)])  # a venv with a package of its own
    code = textwrap.dedent(f"""
        import subprocess, sys
        from venvs import child_venv
        assert sys.prefix != sys.base_prefix  # running inside a virtual environment
        py = child_venv({str(tmp_path / 'child')!r})
        r = subprocess.run([py, "-c", "import sys, quasar_probe_mod, numpy; print(quasar_probe_mod.VALUE, sys.prefix)"],
                           capture_output=True, text=True, env={{}})
        print(r.stdout, r.stderr)
        sys.exit(r.returncode)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))  # tests/: the venvs helper only
    r = subprocess.run([parent, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    value, prefix = r.stdout.split()[:2]
    assert value == "7" and prefix == str(tmp_path / "child")


@pytest.mark.slow
def test_light_install_test_passes_inside_a_venv(tmp_path):
    """The light-install test, run by pytest from inside a virtual environment (the way the README's
    test command usually runs), passes: its nested venv still sees the packages."""
    outer = child_venv(tmp_path / "outer")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QUASAR_MODEL")}
    env["PYTHONPATH"] = REPO
    r = subprocess.run([outer, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"),
                        os.path.join(REPO, "tests", "test_shipped_model.py"), "-k", "light_install_scores"],
                       capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout
