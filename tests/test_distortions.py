"""The 25 KADID-type distortions and the camera defects beyond them: shape, determinism, and strictly graded
severity per type."""

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from quasar.centroids.distortions import (
    ANCHOR_TYPES,
    CAMERA_FAMILIES,
    DISTORTIONS,
    FAMILIES,
    HELDOUT_TYPES,
    LEVELS,
    OLD_NAMES,
    TYPE_FAMILY,
    distort,
)

KADID_TYPES = {
    "gaussian_blur", "lens_blur", "motion_blur",
    "color_diffusion", "color_shift", "color_quantization", "color_saturation_1", "color_saturation_2",
    "jpeg", "jpeg2000",
    "white_noise", "white_noise_color_component", "impulse_noise", "multiplicative_noise", "denoise",
    "brighten", "darken", "mean_shift",
    "jitter", "non_eccentricity_patch", "pixelate", "quantization", "color_block",
    "high_sharpen", "contrast_change",
}
CAMERA_TYPES = {"vignetting", "chromatic_aberration", "haze", "white_balance",
                "low_light", "shaken_compressed", "night_phone"}


@pytest.fixture(scope="module")
def img():
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)


def test_taxonomy():
    from quasar.centroids.distortions import KADID_TYPES as kadid

    assert set(DISTORTIONS) == KADID_TYPES | CAMERA_TYPES and len(DISTORTIONS) == 32
    assert set(kadid) == KADID_TYPES and len(kadid) == 25
    assert [t for fam in FAMILIES.values() for t in fam] == list(DISTORTIONS)
    assert len(FAMILIES) == 10 and all(TYPE_FAMILY[t] == f for f, ts in FAMILIES.items() for t in ts)
    assert {t for ts in CAMERA_FAMILIES.values() for t in ts} == CAMERA_TYPES
    assert set(ANCHOR_TYPES) == KADID_TYPES | CAMERA_TYPES and HELDOUT_TYPES == ()
    assert set(OLD_NAMES.values()) <= KADID_TYPES and not set(OLD_NAMES) & KADID_TYPES


@pytest.mark.parametrize("kind", sorted(KADID_TYPES | CAMERA_TYPES))
def test_deterministic_and_strictly_graded(img, kind):
    before = img.copy()
    outs = [distort(img, kind, lv) for lv in LEVELS]
    for lv, o in zip(LEVELS, outs, strict=True):
        assert o.shape == img.shape and o.dtype == np.uint8
        np.testing.assert_array_equal(o, distort(img.copy(), kind, lv), err_msg=f"{kind} level {lv}")
    mad = [float(np.abs(o.astype(np.int16) - img).mean()) for o in outs]
    dssim = [1.0 - structural_similarity(img, o, channel_axis=2) for o in outs]
    assert mad[0] > 0.2, f"{kind}: level 1 ~ input (MAD {mad[0]:.3f})"
    assert np.all(np.diff(mad) > 0), f"{kind}: MAD not increasing {mad}"
    assert np.all(np.diff(dssim) > 0), f"{kind}: 1-SSIM not increasing {dssim}"
    np.testing.assert_array_equal(img, before)  # the input is never modified
    assert distort(img, kind, 0) is img


@pytest.mark.parametrize("shape", [(37, 53, 3), (8, 8, 3), (300, 200, 3)])
def test_any_size(shape):
    small = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for kind in DISTORTIONS:
        for lv in (1, 5):
            out = distort(small, kind, lv)
            assert out.shape == shape and out.dtype == np.uint8, (kind, lv)


def test_old_names_and_errors(img):
    for old, new in OLD_NAMES.items():
        np.testing.assert_array_equal(distort(img, old, 3), distort(img, new, 3))
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(img, "nope", 1)
    for bad_level in (6, -1):
        with pytest.raises(ValueError, match="level"):
            distort(img, "jpeg", bad_level)
    with pytest.raises(ValueError, match="RGB uint8"):
        distort(img.astype(np.float32), "jpeg", 1)
    with pytest.raises(ValueError, match="RGB uint8"):
        distort(img[..., 0], "jpeg", 1)
