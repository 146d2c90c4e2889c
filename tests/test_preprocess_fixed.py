"""Policy ``fixed`` (static graphs): the spec's JSON, stretch and crop geometry, and old specs unchanged."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from quasar.centroids.pack import CentroidPack
from quasar.contract import MetadataError, fused_metadata, parse_metadata
from quasar.errors import QuasarError
from quasar.integrity import check_input_shape
from quasar.preprocess import PreprocessSpec, ShapeError, preprocess, target_shape


def fixed(h=384, w=512, fit="stretch", **kw) -> PreprocessSpec:
    base = CentroidPack.load("default").preprocess
    return dataclasses.replace(base, policy="fixed", height=h, width=w, fit=fit, size=max(h or 1, w or 1), **kw)


def test_old_specs_serialise_byte_identically():
    pack_spec = CentroidPack.load("default").preprocess
    text = pack_spec.to_json()
    assert "height" not in text and "fit" not in text
    assert PreprocessSpec.from_json(text).to_json() == text
    assert PreprocessSpec().to_json() == json.dumps({
        "channel_order": "RGB", "interpolation": "bicubic", "mean": [0.48145466, 0.4578275, 0.40821073],
        "min_size": 32, "policy": "center_crop", "resampler": "pil", "size": 224, "size_multiple": 1,
        "std": [0.26862954, 0.26130258, 0.27577711], "version": 2}, sort_keys=True)


def test_fixed_spec_round_trip_and_keys():
    s = fixed(fit="crop")
    d = json.loads(s.to_json())
    assert (d["policy"], d["height"], d["width"], d["fit"], d["size"]) == ("fixed", 384, 512, "crop", 512)
    assert list(d) == sorted(d)
    assert PreprocessSpec.from_json(s.to_json()) == s
    assert s.fixed_size and s.output_hw == (384, 512)


@pytest.mark.parametrize("kw", [dict(fit="squash"), dict(h=0), dict(w=None)])
def test_fixed_spec_refuses_bad_fields(kw):
    with pytest.raises(ValueError):
        fixed(**kw)


def test_height_width_fit_only_for_fixed():
    with pytest.raises(ValueError, match="policy 'fixed' only"):
        PreprocessSpec(policy="native", size=512, height=384)


def test_stretch_geometry_and_pixels():
    s = fixed(384, 512, "stretch")
    for h, w in [(1000, 600), (384, 512), (200, 4000), (5, 5)]:  # 20:1 is within the bound (covering side 7680)
        assert target_shape(h, w, s) == (384, 512, None)
    img = np.random.default_rng(0).integers(0, 256, (300, 700, 3), dtype=np.uint8)
    out = preprocess(img, s)
    assert out.shape == (384, 512, 3) and out.dtype == np.uint8
    from PIL import Image

    ref = np.array(Image.fromarray(img).resize((512, 384), Image.Resampling.BICUBIC))
    assert np.array_equal(out, ref)  # the spec's resampler (Pillow, antialiased) straight to W x H


def test_crop_geometry_floor_offsets():
    s = fixed(384, 512, "crop")
    # 1000x600 (h x w): scale = max(512/600, 384/1000) = 0.8533 -> 853 x 512, crop 384 x 512 from the centre
    assert target_shape(1000, 600, s) == (853, 512, (384, 512))
    # a landscape image wider than 4:3 covers the height
    assert target_shape(300, 1000, s) == (384, 1280, (384, 512))
    img = np.random.default_rng(1).integers(0, 256, (1000, 600, 3), dtype=np.uint8)
    out = preprocess(img, s)
    from PIL import Image

    covered = np.array(Image.fromarray(img).resize((512, 853), Image.Resampling.BICUBIC))
    assert np.array_equal(out, covered[234:618])  # offset floor((853 - 384) / 2) = 234


def test_crop_offsets_are_floored():
    from quasar.preprocess import crop_for

    s = fixed(4, 4, "crop", min_size=1, size_multiple=1)
    img = np.arange(7 * 7 * 3, dtype=np.uint8).reshape(7, 7, 3)
    got = crop_for(img, (4, 4), s)
    assert np.array_equal(got, img[1:5, 1:5])  # floor(3/2) = 1; torchvision's rounding gives 2
    centre = dataclasses.replace(PreprocessSpec(), size=4, min_size=1)
    assert np.array_equal(crop_for(img, (4, 4), centre), img[2:6, 2:6])


def test_both_fits_refuse_extreme_aspect():
    """Stretch is bounded in memory anyway, but a 4096:1 strip squashed to 4:3 says nothing: both fits
    refuse by the same rule (the covering size over 16 x the long side), as the dynamic policies do."""
    for fit in ("crop", "stretch"):
        with pytest.raises(ShapeError, match="extreme aspect ratio"):
            target_shape(16384, 4, fixed(384, 512, fit))
        with pytest.raises(ShapeError, match="extreme aspect ratio"):
            target_shape(30, 4000, fixed(384, 512, fit))


def _meta(spec: PreprocessSpec, dynamic: bool) -> dict:
    return fused_metadata(encoder="effnet-lite0+taps", pack_hash="sha256:" + "0" * 64, heads=["q"],
                          logit_scales=[10.0], preprocess=spec.to_dict(), dynamic_size=dynamic, precision="fp32",
                          project_version="0")


def test_contract_fixed_policy():
    info = parse_metadata(_meta(fixed(), False))
    assert info.spec.output_hw == (384, 512) and not info.dynamic_size
    with pytest.raises(MetadataError, match="dynamic_size is true"):
        parse_metadata(_meta(fixed(), True))
    assert check_input_shape("m.onnx", [1, 384, 512, 3], info) == 1
    assert check_input_shape("m.onnx", [4, 384, 512, 3], info) == 4
    assert check_input_shape("m.onnx", ["batch", 384, 512, 3], info) is None
    with pytest.raises(QuasarError, match="384x512"):
        check_input_shape("m.onnx", [1, 512, 384, 3], info)
    with pytest.raises(QuasarError, match="needs a graph input fixed"):
        check_input_shape("m.onnx", [1, "h", "w", 3], info)
    dyn = parse_metadata(_meta(CentroidPack.load("default").preprocess, True))
    with pytest.raises(QuasarError, match="dynamic_size=true"):
        check_input_shape("m.onnx", [1, 384, 512, 3], dyn)


def test_calibration_batches_for_fixed_batch_graphs():
    """int8 calibration of a batch-N static graph: N different images per batch, the last group padded."""
    from quasar.export.int8 import PhotoCalibrationReader

    spec = PreprocessSpec(policy="fixed", size=64, height=32, width=64, fit="stretch", min_size=8)
    imgs = [np.full((50, 70, 3), i, np.uint8) for i in range(7)]
    r = PhotoCalibrationReader(imgs, spec, batch=3)
    out = []
    while (b := r.get_next()) is not None:
        out.append(b["images"])
    assert len(r) == 3 and [o.shape for o in out] == [(3, 32, 64, 3)] * 3
    assert [int(v) for o in out for v in o[:, 0, 0, 0]] == [0, 1, 2, 3, 4, 5, 6, 6, 6]
