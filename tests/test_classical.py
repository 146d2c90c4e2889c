"""BRISQUE and NIQE baselines (quasar.eval.classical) on scikit-image's photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from quasar.eval.classical import NiqeModel, brisque_score, niqe_features

NAMES = ("astronaut", "chelsea", "coffee")
BLUR_SIGMAS = (1, 2, 4)
NOISE_SDS = (10, 25, 50)


@pytest.fixture(scope="module")
def images():
    data = pytest.importorskip("skimage.data")
    return {n: getattr(data, n)() for n in NAMES}


@pytest.fixture(scope="module")
def niqe_models(images):
    """For each photo, a NIQE model fitted on the other two (never on the photo it scores)."""
    models = {}
    for n in NAMES:
        others = [m for m in NAMES if m != n]
        models[n] = NiqeModel.fit([images[m] for m in others], provenance={"photos": others})
    return models


def _blur(im, sigma):
    return cv2.GaussianBlur(im, (0, 0), sigma)


def _noise(im, sd):
    rng = np.random.default_rng(sd)
    return np.clip(np.rint(im + rng.normal(0.0, sd, im.shape)), 0, 255).astype(np.uint8)


def _mean_scores(images, niqe_models, distort, levels):
    """(mean BRISQUE per level, mean NIQE per level) over the three photos."""
    b = np.zeros(len(levels))
    q = np.zeros(len(levels))
    for name, im in images.items():
        for i, lv in enumerate(levels):
            d = distort(im, lv)
            b[i] += brisque_score(d) / len(images)
            q[i] += niqe_models[name].score(d) / len(images)
    return b, q


@pytest.mark.parametrize(
    "distort, levels", [(_blur, BLUR_SIGMAS), (_noise, NOISE_SDS)], ids=["blur", "noise"]
)
def test_scores_rise_with_distortion(images, niqe_models, distort, levels):
    b, q = _mean_scores(images, niqe_models, distort, levels)
    assert np.all(np.isfinite(b)) and np.all(np.isfinite(q))
    assert np.all(np.diff(b) > 0), f"BRISQUE not increasing: {b}"
    assert np.all(np.diff(q) > 0), f"NIQE not increasing: {q}"


def test_brisque_matches_package_with_only_the_numpy2_fix(images):
    """The fast MSCN / AGGD overrides leave the brisque package's score (nearly) unchanged.

    Not bit-exact: flat regions give MSCN values of ~1e-15 whose sign (so the AGGD's left/right
    split) depends on the filter's rounding, and the shape is interpolated instead of root-solved.
    """
    from quasar.eval.classical import _brisque_classes

    reference = _brisque_classes()[0]()
    for im in images.values():
        ref = float(reference.score(im))
        assert brisque_score(im) == pytest.approx(ref, abs=0.05)


def test_niqe_json_round_trip(tmp_path, images, niqe_models):
    model = niqe_models["chelsea"]
    path = tmp_path / "niqe.json"
    model.save(path)
    loaded = NiqeModel.load(path)
    assert loaded.provenance == model.provenance
    assert loaded.provenance["n_images"] == 2 and loaded.provenance["photos"] == ["astronaut", "coffee"]
    np.testing.assert_array_equal(loaded.mu, model.mu)
    np.testing.assert_array_equal(loaded.cov, model.cov)
    im = images["chelsea"]
    assert loaded.score(im) == model.score(im)


def test_niqe_load_rejects_foreign_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "something", "mu": []}')
    with pytest.raises(ValueError, match="not a NIQE model"):
        NiqeModel.load(path)


def test_niqe_features_shape(images):
    feats, sharp = niqe_features(images["coffee"])  # 400 x 600 -> 4 x 6 patches
    assert feats.shape == (24, 36) and sharp.shape == (24,)
    assert np.all(np.isfinite(feats))
    assert np.all((feats[:, 0] >= 0.2) & (feats[:, 0] <= 10))  # shape from the 0.2:0.001:10 grid


def test_constant_image_raises(niqe_models):
    """Documented choice: a flat image has no score (ValueError), not nan or an arbitrary number."""
    flat = np.full((200, 300, 3), 128, np.uint8)
    with pytest.raises(ValueError, match="constant"):
        brisque_score(flat)
    with pytest.raises(ValueError, match="flat"):
        niqe_models["coffee"].score(flat)
    with pytest.raises(ValueError):
        NiqeModel.fit([flat])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((128, 128, 3), np.float32),
        np.zeros((128, 128, 3), np.uint16),
        np.zeros((128, 128), np.uint8),
        np.zeros((128, 128, 4), np.uint8),
        np.zeros((128, 128, 3, 1), np.uint8),
        [[0, 1], [2, 3]],
    ],
    ids=["float32", "uint16", "grey", "rgba", "4d", "list"],
)
def test_bad_input_raises(bad, niqe_models):
    with pytest.raises(ValueError):
        brisque_score(bad)
    with pytest.raises(ValueError):
        niqe_models["coffee"].score(bad)


def test_niqe_needs_a_whole_patch(niqe_models):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (64, 300, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="96x96"):
        niqe_models["coffee"].score(small)
    assert math.isfinite(brisque_score(small))
