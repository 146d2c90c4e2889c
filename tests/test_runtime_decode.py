"""Decoding: formats, EXIF orientation, alpha, bit depth, reduced JPEG decoding, bombs, bad bytes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from fixtures_images import (
    animated_gif,
    awkward_files,
    broken_files,
    cmyk_jpeg,
    encode,
    jpeg,
    jpeg_with_orientation,
    oriented_view,
    pattern,
    pil_encode,
    png_header_only,
    png_with_exif,
)

from quasar.io.decode import ImageError, apply_orientation, choose_reduction, decode, from_array
from quasar.io.formats import exif_orientation, probe, sniff
from quasar.preprocess import PreprocessSpec
from quasar.runtime.prepare import Preparer
from quasar.runtime.sources import Item

EFFNET_SPEC = PreprocessSpec(policy="native", size=512, mean=(0.5,) * 3, std=(0.5,) * 3, size_multiple=32, min_size=64)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize("fmt,ext", [("jpeg", ".jpg"), ("png", ".png"), ("webp", ".webp"), ("bmp", ".bmp"),
                                     ("tiff", ".tiff")])
def test_probe_reads_size_without_decoding(fmt, ext):
    data = encode(pattern(37, 53), ext)
    h = probe(data)
    assert (h.format, h.width, h.height) == (fmt, 53, 37)


def test_probe_gif_and_lossless_webp():
    g = probe(animated_gif([pattern(30, 40)] * 2))
    assert (g.format, g.width, g.height) == ("gif", 40, 30)
    lossless = pil_encode(pattern(30, 41), "WEBP", lossless=True)
    h = probe(lossless)
    assert (h.format, h.width, h.height) == ("webp", 41, 30)
    rgba = pil_encode(np.dstack([pattern(30, 41), np.full((30, 41), 9, np.uint8)]), "WEBP")
    assert probe(rgba).width == 41  # VP8X (alpha) header


def test_sniff_unknown():
    assert sniff(b"hello world") is None
    assert probe(b"").format is None


def test_exif_orientation_parser_both_endians():
    from fixtures_images import exif_app1

    for be in (True, False):
        for o in range(1, 9):
            assert exif_orientation(exif_app1(o, be)[4:]) == o
    assert exif_orientation(b"garbage") == 1
    assert exif_orientation(None) == 1


# ---------------------------------------------------------------- colour, alpha, depth


def test_greyscale_becomes_three_channels():
    grey = pattern()[:, :, 0]
    out = decode(encode(grey, ".png")).image
    assert out.shape == (*grey.shape, 3) and np.array_equal(out[:, :, 0], grey) and np.array_equal(out[:, :, 2], grey)


def test_rgba_is_composited_on_white():
    rgb = pattern(40, 50)
    alpha = np.zeros((40, 50), np.uint8)
    alpha[:, 25:] = 255
    alpha[:20, :25] = 128
    out = decode(encode(np.dstack([rgb, alpha]), ".png")).image
    assert np.all(out[20:, :25] == 255)  # fully transparent -> white
    assert np.array_equal(out[:, 25:], rgb[:, 25:])  # opaque -> unchanged
    expect = (rgb[:20, :25].astype(int) * 128 + 255 * 127 + 127) // 255
    assert np.abs(out[:20, :25].astype(int) - expect).max() <= 1


def test_grey_alpha_and_palette_transparency():
    rgb = pattern(40, 50)
    la = pil_encode(np.dstack([rgb, np.zeros((40, 50), np.uint8)]), "PNG", mode="LA")
    assert np.all(decode(la).image == 255)
    out = decode(pil_encode(rgb, "PNG", mode="P")).image
    assert out.shape == (40, 50, 3)


def test_16bit_png_is_scaled_not_truncated():
    v = np.array([0, 257, 1000, 32768, 65535], np.uint16)
    img16 = np.tile(v, (4, 1))
    out = decode(encode(img16, ".png")).image
    assert out[0, :, 0].tolist() == [round(x * 255 / 65535) for x in v.tolist()]
    rgb16 = (pattern(20, 30).astype(np.uint16) * 257)
    assert mad(decode(encode(rgb16, ".png")).image, pattern(20, 30)) < 0.01


def test_cmyk_jpeg():
    rgb = pattern(64, 80)
    out = decode(cmyk_jpeg(rgb)).image
    assert out.shape == rgb.shape and mad(out, rgb) < 8


def test_animated_gif_first_frame():
    frames = [np.full((30, 40, 3), c, np.uint8) for c in ((200, 10, 10), (10, 200, 10), (10, 10, 200))]
    out = decode(animated_gif(frames)).image
    assert out.shape == (30, 40, 3)
    assert abs(int(out[15, 20, 0]) - 200) < 12 and out[15, 20, 1] < 40


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF", "BMP"])
def test_other_formats(fmt):
    rgb = pattern(48, 64)
    out = decode(pil_encode(rgb, fmt, **({"lossless": True} if fmt == "WEBP" else {}))).image
    assert mad(out, rgb) < 1


def test_float_and_bool_arrays():
    rgb = pattern(10, 12)
    assert mad(from_array(rgb.astype(np.float32) / 255).image, rgb) < 0.6
    assert from_array(np.ones((5, 6), bool)).image.max() == 255
    with pytest.raises(ImageError):
        from_array(np.zeros((5,), np.uint8))


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(orientation):
    rgb = pattern(60, 90)
    out = decode(jpeg_with_orientation(rgb, orientation)).image
    assert mad(out, oriented_view(rgb, orientation)) < 4


@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_exif_orientation_survives_reduced_decoding(orientation):
    rgb = cv2.resize(pattern(60, 90), (900, 600), interpolation=cv2.INTER_NEAREST)
    data = jpeg_with_orientation(rgb, orientation)
    small = PreprocessSpec(policy="native", size=128, size_multiple=1, min_size=16)
    prep = Preparer(small)
    d = prep.decode(Item("x", data=data))
    assert d.reduction == 4  # 600x900 -> 150x225 still covers 85x128
    want = oriented_view(rgb, orientation)
    assert d.full_size == want.shape[:2]
    assert mad(cv2.resize(d.image, (want.shape[1], want.shape[0]), interpolation=cv2.INTER_NEAREST), want) < 6
    full = Preparer(small, reduced_decode=False)(Item("x", data=data))
    assert prep(Item("x", data=data)).shape == full.shape


@pytest.mark.parametrize("orientation", [2, 6, 7, 8])
def test_exif_orientation_png_with_alpha_matches_opencv(orientation):
    """The manual path (IMREAD_UNCHANGED + eXIf) must rotate exactly like OpenCV's IMREAD_COLOR."""
    rgb = pattern(30, 50)
    data = png_with_exif(rgb, orientation)
    want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    assert np.array_equal(decode(data).image, want)
    assert np.array_equal(want, oriented_view(rgb, orientation))
    rgba = np.dstack([rgb, np.full((30, 50), 255, np.uint8)])
    assert np.array_equal(decode(png_with_exif(rgba, orientation)).image, want)


def test_apply_orientation_is_pil_exif_transpose():
    rgb = pattern(7, 11)
    for o in range(1, 9):
        assert np.array_equal(apply_orientation(rgb, o), oriented_view(rgb, o))


# ---------------------------------------------------------------- reduced decoding


def test_choose_reduction_never_goes_below_target():
    prep = Preparer(EFFNET_SPEC)
    for h, w in [(3000, 4000), (4000, 3000), (1080, 1920), (700, 1000), (600, 600), (8000, 100), (5, 5)]:
        f = choose_reduction(h, w, prep.min_decoded_shape)
        need = prep.min_decoded_shape(h, w)
        if f > 1:
            assert math.ceil(h / f) >= need[0] and math.ceil(w / f) >= need[1]
        if f < 8:  # the next larger factor would be too small
            g = 2 * f
            assert math.ceil(h / g) < need[0] or math.ceil(w / g) < need[1]
    assert choose_reduction(3000, 4000, prep.min_decoded_shape) == 4  # 750x1000 >= 384x512


def test_reduced_decode_is_close_to_full_decode():
    big = cv2.resize(pattern(120, 160), (3200, 2400), interpolation=cv2.INTER_CUBIC)
    data = jpeg(big, 90)
    reduced = Preparer(EFFNET_SPEC)(Item("x", data=data))
    full = Preparer(EFFNET_SPEC, reduced_decode=False)(Item("x", data=data))
    assert reduced.shape == full.shape == (384, 512, 3)
    assert mad(reduced, full) < 1.5


# ---------------------------------------------------------------- refusals


def test_decompression_bomb_header_refused_before_decoding():
    with pytest.raises(ImageError, match=r"100000x100000 .* over the .* limit"):
        decode(png_header_only(100_000, 100_000))


def test_lowered_pixel_limit_on_a_real_image():
    data = jpeg(pattern(100, 200))
    with pytest.raises(ImageError, match="decompression-bomb"):
        decode(data, max_pixels=10_000)
    assert decode(data, max_pixels=20_000).image.shape == (100, 200, 3)


@pytest.mark.parametrize("name", sorted(broken_files()))
def test_bad_bytes_give_a_reason(name):
    data, reason = broken_files()[name]
    with pytest.raises(ImageError, match=reason):
        decode(data)


@pytest.mark.parametrize("name", sorted(awkward_files()))
def test_awkward_files_decode_to_rgb(name):
    out = decode(awkward_files()[name]).image
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def test_one_pixel_image_is_upscaled_and_scored():
    out = Preparer(EFFNET_SPEC)(Item("x", data=encode(np.array([[[10, 20, 30]]], np.uint8), ".png")))
    assert out.shape == (64, 64, 3) and np.all(out == (10, 20, 30))


def test_extreme_aspect_ratio_is_refused():
    crop = PreprocessSpec(policy="center_crop", size=224)
    with pytest.raises(ImageError, match="extreme aspect ratio"):
        Preparer(crop)(Item("x", array=np.zeros((1, 2000, 3), np.uint8)))


def test_gif_falls_back_to_pil_without_opencv_gif(monkeypatch):
    frames = [np.full((30, 40, 3), (200, 10, 10), np.uint8), np.zeros((30, 40, 3), np.uint8)]
    data = animated_gif(frames)
    real = cv2.imdecodeWithMetadata
    monkeypatch.setattr(cv2, "imdecodeWithMetadata", lambda buf, flags: (None, (), ()) if buf[:3].tobytes() == b"GIF"
                        else real(buf, flags))
    out = decode(data).image
    assert out.shape == (30, 40, 3) and abs(int(out[0, 0, 0]) - 200) < 12


def test_opencv_exceptions_become_image_errors(monkeypatch):
    def boom(buf, flags):
        raise cv2.error("OpenCV(5.0.0) x.cpp:1: error: (-2:Unspecified error) Buffer is too small in function 'f'")

    monkeypatch.setattr(cv2, "imdecode", boom)
    with pytest.raises(ImageError, match=r"OpenCV cannot decode this jpeg \(Buffer is too small\)"):
        decode(jpeg(pattern(20, 20)))
