"""What the Python API takes and tells: tiny images are scored with a warning."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
from quasar.runtime import Scorer  # noqa: E402
from quasar.runtime.testing import write_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


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
