import numpy as np
import pytest

from quasar.centroids.distortions import ANCHOR_TYPES, DISTORTIONS, HELDOUT_TYPES, LEVELS, distort
from quasar.preprocess import read_rgb


@pytest.fixture(scope="module")
def img(skimage_photo_paths):
    return read_rgb(skimage_photo_paths[1])


def test_types_and_split():
    assert len(ANCHOR_TYPES) >= 6 and not set(ANCHOR_TYPES) & set(HELDOUT_TYPES)
    assert set(ANCHOR_TYPES) | set(HELDOUT_TYPES) == set(DISTORTIONS)


@pytest.mark.parametrize("kind", sorted(DISTORTIONS))
def test_distortions_are_deterministic_and_graded(img, kind):
    outs = [distort(img, kind, lv) for lv in LEVELS]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    np.testing.assert_array_equal(outs[2], distort(img, kind, 3))
    err = [float(np.abs(o.astype(np.int16) - img).mean()) for o in outs]
    assert err[0] > 0 and err[-1] > err[0], f"{kind}: {err}"
    assert distort(img, kind, 0) is img
    with pytest.raises(ValueError):
        distort(img, kind, 6)
