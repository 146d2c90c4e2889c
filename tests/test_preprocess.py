import numpy as np
import pytest

from quasar.preprocess import PreprocessSpec, preprocess, target_shape


def test_spec_json_round_trip_and_validation():
    spec = PreprocessSpec(policy="native", size=512, size_multiple=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="resize policy"):
        PreprocessSpec(policy="stretch")
    with pytest.raises(ValueError, match="unknown preprocess spec fields"):
        PreprocessSpec.from_dict({**spec.to_dict(), "gamma": 2.2})
    with pytest.raises(ValueError, match="newer"):
        PreprocessSpec.from_dict({**spec.to_dict(), "version": 99})


@pytest.mark.parametrize(
    "policy,size,mult,hw,expect",
    [
        ("center_crop", 224, 1, (480, 640), (224, 299, (224, 224))),
        ("native", 512, 32, (3000, 4000), (384, 512, None)),
        ("native", 512, 32, (300, 400), (288, 384, None)),  # never upscaled, only snapped to the multiple
        ("short_side", 224, 14, (480, 640), (224, 294, None)),
    ],
)
def test_target_shape(policy, size, mult, hw, expect):
    spec = PreprocessSpec(policy=policy, size=size, size_multiple=mult)
    assert target_shape(*hw, spec) == expect


def test_preprocess_downscale_is_antialiased():
    # A one-pixel checkerboard averages to grey when properly low-pass filtered; aliasing keeps contrast.
    board = (np.indices((800, 800)).sum(0) % 2 * 255).astype(np.uint8)
    img = np.repeat(board[..., None], 3, axis=2)
    out = preprocess(img, PreprocessSpec(policy="center_crop", size=100))
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    assert abs(float(out.mean()) - 127.5) < 2 and float(out.std()) < 5


def test_preprocess_bgr_and_tiny_image():
    img = np.zeros((1, 1, 3), np.uint8)
    img[..., 0] = 200
    out = preprocess(img, PreprocessSpec(policy="native", size=512, min_size=32, channel_order="BGR"))
    assert out.shape == (32, 32, 3) and out[0, 0, 2] == 200 and out[0, 0, 0] == 0


def test_pil_resampler_matches_pillow_and_v1_specs_keep_opencv_area():
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 451, 3), dtype=np.uint8)
    spec = PreprocessSpec(policy="native", size=200)
    assert spec.resampler == "pil" and spec.version == 2
    out = preprocess(img, spec)
    ref = np.asarray(Image.fromarray(img).resize((out.shape[1], out.shape[0]), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out, ref)
    v1 = {k: v for k, v in spec.to_dict().items() if k != "resampler"} | {"version": 1}
    old = PreprocessSpec.from_dict(v1)
    assert old.resampler == "opencv_area" and old.version == 2
    assert np.abs(preprocess(img, old).astype(int) - out).mean() > 0.5  # a different filter
