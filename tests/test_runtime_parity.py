"""Parity of the runtime (OpenCV decoding, the spec's resampler) with a PIL/torchvision-style reference, on real photos, and the exported model.

Pixel parity needs no model. Score parity and the integration tests need the exported effnet-lite0
model: ``$QUASAR_TEST_EFFNET_MODEL`` if set, else the default model from ``python -m
quasar.export.default``, else a fresh ``quasar.export.onnx_export.export_onnx`` of effnet-lite0 with
the default pack (skipped, with the reason, when the export stage is not available).
Numbers are printed (``pytest -s``) for the report.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from quasar.eval.metrics import srcc
from quasar.preprocess import PreprocessSpec
from quasar.runtime import Scorer
from quasar.runtime.prepare import Preparer
from quasar.runtime.sources import Item
from quasar.testing import reference_preprocess

EFFNET_SPEC = PreprocessSpec(policy="native", size=512, mean=(0.5,) * 3, std=(0.5,) * 3, size_multiple=32, min_size=64)
CROP_SPEC = PreprocessSpec(policy="center_crop", size=224)


@pytest.fixture(scope="session")
def original_jpegs(tmp_path_factory):
    """Camera-size JPEG originals unpacked from the cached Debian packages (up to 16 MP)."""
    from quasar.paths import cache_dir
    from quasar.photos import PHOTO_SET_V1, source_files

    packages = [p for p in PHOTO_SET_V1 if p != "scikit-image"]  # the wallpapers: up to 16 MP JPEGs
    debs = [d for p in packages for d in sorted(glob.glob(str(cache_dir() / "photos" / "debs" / f"{p}_*.deb")))[-1:]]
    if not debs:
        pytest.skip("no cached Debian photo packages (run quasar.photos.fetch_photos first)")
    root = tmp_path_factory.mktemp("debs")
    files = []
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True)
    for package in packages:
        files += source_files(root, package)
    return files[::2][:16]  # every other one keeps the test short and still spans sizes and sources


@pytest.fixture(scope="session")
def effnet_model(tmp_path_factory):
    """The exported effnet-lite0 + default pack graph, built in a subprocess (this process stays torch-free)."""
    path = os.environ.get("QUASAR_TEST_EFFNET_MODEL")
    if path:
        return path
    cmd = [sys.executable, "-m", "quasar.export.default"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if r.returncode != 0 or not lines or not os.path.exists(lines[-1]):
        pytest.fail(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    return lines[-1]


def mad(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


@pytest.mark.parametrize("spec,limits,subset", [
    (EFFNET_SPEC, (1.0, 4.0), 4),
    pytest.param(EFFNET_SPEC, (1.0, 4.0), None, marks=pytest.mark.slow),
    pytest.param(CROP_SPEC, (3.0, 15.0), None, marks=pytest.mark.slow),
], ids=["native512-quick", "native512", "crop224"])
def test_pixel_parity_with_pil_reference(photos, original_jpegs, spec, limits, subset):
    """Runtime pixels vs the PIL reference (:func:`quasar.testing.reference_preprocess`); ``subset``:
    only that many working photos and camera JPEGs (the fast loop's version)."""
    prep = Preparer(spec)
    working = [p.path for p in photos][:subset]
    files = working + original_jpegs[:subset]
    diffs = [mad(prep(Item(f, path=f)), reference_preprocess(f, spec)) for f in files]
    n = len(working)
    print(f"\n[{spec.policy} {spec.size}] pixel MAD vs PIL: working PNGs mean {np.mean(diffs[:n]):.3f} "
          f"max {np.max(diffs[:n]):.3f}; original JPEGs (reduced decoding) mean {np.mean(diffs[n:]):.3f} "
          f"max {np.max(diffs[n:]):.3f}")
    assert np.mean(diffs) < limits[0] and np.max(diffs) < limits[1]


DISTORTIONS = {  # two levels each of three common degradations, mild and strong
    "blur1": lambda im: cv2.GaussianBlur(im, (0, 0), 1.0),
    "blur3": lambda im: cv2.GaussianBlur(im, (0, 0), 3.0),
    "noise8": lambda im: np.clip(im + np.random.default_rng(0).normal(0, 8, im.shape), 0, 255).astype(np.uint8),
    "noise25": lambda im: np.clip(im + np.random.default_rng(0).normal(0, 25, im.shape), 0, 255).astype(np.uint8),
    "jpeg30": lambda im: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR),
    "jpeg8": lambda im: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 8])[1], cv2.IMREAD_COLOR),
}


def distorted_set(photos, folder) -> dict[str, list[str]]:
    """Group name -> files: the photos and graded distortions of them (lossless PNG, read by both pipelines)."""
    groups: dict[str, list[str]] = {"pristine": [p.path for p in photos]}
    for kind, fn in DISTORTIONS.items():
        groups[kind] = []
        for p in photos:
            path = str(folder / f"{p.source}_{os.path.basename(p.path)[:-4]}_{kind}.png")
            cv2.imwrite(path, fn(cv2.imread(p.path)))
            groups[kind].append(path)
    return groups


@pytest.mark.slow
def test_score_parity_with_pil_reference(effnet_model, photos, tmp_path):
    """SRCC >= 0.995 between runtime and reference scores over real photos and graded distortions of them.

    The spec's ``pil`` resampler makes the runtime's pixels identical to PIL's on these PNGs, so the
    bound holds within every group too (pristine photos alone sit close together, so a different
    resampling filter, e.g. the ``opencv_area`` of version-1 specs, reorders neighbours there).
    """
    groups = distorted_set(photos, tmp_path)
    files = [f for g in groups.values() for f in g]
    with Scorer(effnet_model, workers=2) as s:
        head = s.heads[0]
        ours = np.array([r.scores[head] for r in s.score(files)])
        ref = np.array([s.backend.run(reference_preprocess(f, s.spec)[None])[0][0, 0] for f in files])
    d = np.abs(ours - ref)
    per_group, k = {}, 0
    for name, g in groups.items():
        per_group[name] = srcc(ours[k : k + len(g)], ref[k : k + len(g)])
        k += len(g)
    all_srcc = srcc(ours, ref)
    print(f"\n[score parity, head {head!r}, {len(files)} images] SRCC all {all_srcc:.4f}; per group "
          + ", ".join(f"{n} {v:.3f}" for n, v in per_group.items())
          + f"; |score diff| mean {d.mean():.4f} max {d.max():.4f}")
    assert all_srcc >= 0.995
    assert min(per_group.values()) >= 0.995


@pytest.mark.slow
def test_exported_effnet_scores_real_photos(effnet_model, photos, original_jpegs):
    from quasar.runtime import load_model_info

    info = load_model_info(effnet_model)
    assert info.encoder == "effnet-lite0+taps" and info.dynamic_size  # the default model
    files = [p.path for p in photos[:6]] + original_jpegs[:4]
    with Scorer(effnet_model, workers=2) as s:
        recs = s.score(files)
    assert all(r.ok for r in recs), [r.error for r in recs if not r.ok]
    assert all(0.0 <= v <= 1.0 for r in recs for v in r.scores.values())
    blurred = cv2.GaussianBlur(cv2.imread(photos[0].path), (0, 0), 4.0)[:, :, ::-1]
    with Scorer(effnet_model) as s:
        (sharp,), (soft,) = s.score(photos[0].path), s.score(np.ascontiguousarray(blurred))
    assert sharp.scores[s.heads[0]] > soft.scores[s.heads[0]]  # the quality head prefers the sharp photo


def test_torch_backend_matches_onnxruntime_on_the_shipped_model(photos):
    """The torch backend rebuilds the shipped default graph from its metadata and head initializers
    (the fast loop's check of it; the slow test below uses a fresh export and more photos)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from quasar.shipped import shipped_model_path

    model = shipped_model_path()
    if model is None:
        pytest.skip("the shipped model was not exported from the shipped pack (a rebuilt development pack)")
    small = [cv2.cvtColor(cv2.resize(cv2.imread(p.path), (192, 128), interpolation=cv2.INTER_AREA),
                          cv2.COLOR_BGR2RGB) for p in photos[:2]]  # real content, a cheap forward pass
    with Scorer(model) as ort_s, Scorer(model, backend="torch") as torch_s:
        assert torch_s.backend.name.startswith("torch")
        for a, b in zip(ort_s.score(small), torch_s.score(small), strict=True):
            # float32 rounding, amplified in a combine head's margin (logit units: family margins x their
            # logit scales, ~15), hence a relative bound beside the absolute one
            assert a.ok and b.ok and a.margins == pytest.approx(b.margins, rel=5e-4, abs=1e-4)


@pytest.mark.slow
def test_torch_backend_matches_onnxruntime(effnet_model, photos):
    pytest.importorskip("torch")
    files = [p.path for p in photos[:4]]
    with Scorer(effnet_model) as ort_s, Scorer(effnet_model, backend="torch") as torch_s:
        assert torch_s.backend.name.startswith("torch")
        for a, b in zip(ort_s.score(files), torch_s.score(files), strict=True):
            assert a.margins == pytest.approx(b.margins, rel=5e-4, abs=1e-4)  # (see above)


@pytest.mark.slow
def test_default_model_through_the_subprocess(photos, tmp_path):
    """``Scorer()`` with no model and no shipped model (a development tree whose pack changed) asks
    ``python -m quasar.export.default`` in a subprocess, which exports into the cache, and stays
    torch-free itself. The package is copied without its shipped ``.onnx`` so that path is taken."""
    import shutil

    import quasar
    from quasar.constants import SHIPPED_MODEL

    pkg = os.path.dirname(os.path.abspath(quasar.__file__))
    shutil.copytree(pkg, tmp_path / "src" / "quasar", ignore=shutil.ignore_patterns(SHIPPED_MODEL, "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "QUASAR_MODEL"}
    env["PYTHONPATH"] = str(tmp_path / "src")
    env["QUASAR_CACHE"] = str(tmp_path / "cache")
    code = ("import sys\nimport quasar\nfrom quasar.runtime import Scorer\n"
            f"assert quasar.__file__.startswith({str(tmp_path / 'src')!r}), quasar.__file__\n"
            f"s = Scorer()\nr = s.score({photos[0].path!r})[0]\nassert r.ok, r\n"
            "assert 'torch' not in sys.modules\nprint(s.model_path)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    path = r.stdout.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path / "cache" / "models")) and path.endswith("-fp32.onnx"), path
    assert "preparing the default model" in r.stderr  # the exporter's note, forwarded from the subprocess
