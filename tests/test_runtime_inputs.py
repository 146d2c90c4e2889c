"""The Python API takes what pyiqa/piq users pass (PIL images, float tensors in 0..1, NCHW or CHW,
float numpy arrays) and says how to read its scores (``lower_better``, ``score_range``); tiny
images carry a warning."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
from quasar.runtime import Scorer

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- tiny images


def test_tiny_images_carry_a_warning(tiny):
    rng = np.random.default_rng(0)
    with Scorer(tiny, workers=1) as s:
        recs = s.score([rng.integers(0, 256, (96, 128, 3), np.uint8), rng.integers(0, 256, (8, 10, 3), np.uint8),
                        rng.integers(0, 256, (31, 60, 3), np.uint8), rng.integers(0, 256, (32, 60, 3), np.uint8)])
    assert all(r.ok and 0 <= r.scores["quality"] <= 1 for r in recs)
    assert recs[1].warning == ("tiny image (10x8 px, under 32 px on its short side): scored after upscaling, "
                               "so the score says little about the image")
    assert recs[2].warning.startswith("tiny image (60x31 px")
    assert recs[0].warning is None and recs[3].warning is None


# --------------------------------------------------------------------------- pyiqa/piq conventions


def test_scorer_states_range_and_direction(tiny):
    with Scorer(tiny, workers=1) as s:
        assert s.lower_better is False and s.score_range == (0.0, 1.0)


def test_pil_images_tensors_and_float_arrays_score_like_uint8(tiny):
    torch = pytest.importorskip("torch")
    from PIL import Image

    rng = np.random.default_rng(1)
    u8 = [rng.integers(0, 256, (90, 120, 3), np.uint8), rng.integers(0, 256, (90, 120, 3), np.uint8)]
    nchw = torch.from_numpy(np.stack(u8)).permute(0, 3, 1, 2).float() / 255.0  # pyiqa's input
    with Scorer(tiny, workers=1) as s:
        ref = [r.scores for r in s.score(u8)]
        recs = {
            "pil": s.score([Image.fromarray(a) for a in u8]),
            "nchw": s.score(nchw),
            "chw": s.score([nchw[0], nchw[1]]),
            "hwc_float": s.score([a.astype(np.float32) / 255.0 for a in u8]),
            "hwc_float64": s.score([a / 255.0 for a in u8]),
            "u8_tensor_chw": s.score([torch.from_numpy(a).permute(2, 0, 1) for a in u8]),
        }
        grey = s.score([Image.fromarray(u8[0][:, :, 0], "L"), u8[0][:, :, 0]])
        bad = s.score(torch.zeros(2, 5, 8, 8))
    for kind, got in recs.items():
        assert [r.error for r in got] == [None, None], kind
        for r, want in zip(got, ref, strict=True):
            for head, v in want.items():
                assert abs(r.scores[head] - v) <= 1e-6, (kind, head)
    assert [r.source for r in recs["pil"]] == ["<image 0>", "<image 1>"]
    assert [r.source for r in recs["nchw"]] == ["<tensor 0>", "<tensor 1>"]
    assert grey[0].scores == grey[1].scores
    assert [r.source for r in bad] == ["<tensor 0>"] and "expected an NCHW tensor" in bad[0].error


def test_scoring_a_pil_image_does_not_import_torch(tiny):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        import numpy as np
        from PIL import Image
        from quasar.runtime import Scorer
        with Scorer(sys.argv[1], workers=1) as s:
            (rec,) = s.score(Image.fromarray(np.full((64, 80, 3), 128, np.uint8)))
        assert rec.ok, rec.error
        print("torch" in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))[:3])
    """), tiny], capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "False", r.stdout
