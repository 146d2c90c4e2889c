"""HEIF/HEIC and AVIF (phone formats): header probe, orientation, bomb guard, per-file errors, scoring.

Every file is encoded by the test itself (pillow-heif for HEIF, Pillow or OpenCV for AVIF): the
``heif`` extra, part of ``dev``, installs the encoders and decoders.
"""

from __future__ import annotations

import io
import struct
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from quasar.io import ImageError, decode, probe
from quasar.io import heif as heif_io
from quasar.io.isobmff import brand, primary_item

pillow_heif = pytest.importorskip("pillow_heif", reason="the heif extra (pillow-heif) is not installed")


def _pattern(h: int = 48, w: int = 80) -> np.ndarray:
    """Four flat quadrants of distinct colours: any rotation or mirror changes the corners."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (230, 30, 30)
    img[: h // 2, w // 2 :] = (30, 200, 40)
    img[h // 2 :, : w // 2] = (30, 40, 220)
    img[h // 2 :, w // 2 :] = (240, 240, 40)
    return img


def _encode(img: np.ndarray, fmt: str, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    Image.fromarray(img).save(buf, fmt, exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def _expected(img: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows: PIL's exif_transpose of the image with that EXIF orientation."""
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    return np.asarray(ImageOps.exif_transpose(im))


def _avif_paths() -> list[str]:
    paths = []
    if heif_io.opencv_has_avif():
        paths.append("opencv")
    if heif_io._pillow_avif_opener() is not None:
        paths.append("pillow")
    return paths


@pytest.fixture(params=_avif_paths() or ["none"])
def avif_path(request, monkeypatch):
    """Run an AVIF test through each decoder this machine has (OpenCV's libavif reader, Pillow)."""
    if request.param == "none":
        pytest.skip("no AVIF decoder installed (OpenCV without libavif, no Pillow AVIF, no pillow-avif-plugin)")
    if request.param == "pillow":
        monkeypatch.setattr(heif_io, "opencv_has_avif", lambda: False)
    return request.param


def _can_encode_avif() -> bool:
    try:
        Image.new("RGB", (8, 8)).save(io.BytesIO(), "AVIF")
        return True
    except Exception:
        return False


needs_avif_encoder = pytest.mark.skipif(not _can_encode_avif(), reason="Pillow cannot encode AVIF here")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heif_orientation_and_probe(orientation):
    img = _pattern()
    data = _encode(img, "HEIF", orientation)
    assert brand(data) == "heif"
    header = probe(data)
    assert header.format == "heif" and header.width >= 80 and header.height >= 48  # coded size (may be padded)
    out = decode(data).image
    want = _expected(img, orientation)
    assert out.shape == want.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - want).mean() < 8


@needs_avif_encoder
@pytest.mark.parametrize("orientation", range(1, 9))
def test_avif_orientation_each_decoder(orientation, avif_path):
    img = _pattern()
    data = _encode(img, "AVIF", orientation)
    assert probe(data).format == "avif" and (probe(data).width, probe(data).height) == (80, 48)
    out = decode(data).image
    want = _expected(img, orientation)
    assert out.shape == want.shape
    assert np.abs(out.astype(int) - want).mean() < 8


def test_avif_ten_bit_and_alpha_through_opencv():
    if not heif_io.opencv_has_avif():
        pytest.skip("this OpenCV build has no AVIF codec")
    import cv2

    ten = np.zeros((32, 48, 3), np.uint16)
    ten[:] = (1023, 512, 100)  # BGR, 10-bit values
    ok, enc = cv2.imencode(".avif", ten, [cv2.IMWRITE_AVIF_DEPTH, 10, cv2.IMWRITE_AVIF_QUALITY, 100])
    assert ok
    data = enc.tobytes()
    assert primary_item(data).depth == 10
    rgb = decode(data).image[0, 0].astype(int)
    assert np.abs(rgb - np.array([100, 512, 1023]) * 255 / 1023).max() <= 3
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 2] = 255  # red (BGRA), fully transparent: composited on white
    ok, enc = cv2.imencode(".avif", rgba, [cv2.IMWRITE_AVIF_QUALITY, 100])
    assert np.abs(decode(enc.tobytes()).image.astype(int) - 255).max() <= 3


def _set_ispe(data: bytes, width: int, height: int) -> bytes:
    i = data.find(b"ispe")
    assert i > 0
    return data[: i + 8] + struct.pack(">II", width, height) + data[i + 16 :]


@pytest.mark.parametrize("fmt", ["HEIF", pytest.param("AVIF", marks=needs_avif_encoder)])
def test_bomb_guard_refuses_before_decoding(fmt, monkeypatch):
    data = _set_ispe(_encode(_pattern(), fmt), 60000, 60000)
    called = []
    monkeypatch.setattr(heif_io, "decode_heif", lambda *a: called.append(a))
    monkeypatch.setattr(heif_io, "decode_avif", lambda *a: called.append(a))
    with pytest.raises(ImageError, match="decompression-bomb guard"):
        decode(data)
    assert not called


def test_header_without_size_is_refused_undecoded():
    data = _encode(_pattern(), "HEIF")
    broken = data.replace(b"meta", b"xxxx", 1)  # no item information: neither our reader nor Pillow's finds a size
    with pytest.raises(ImageError, match="corrupt HEIF header"):
        decode(broken)


@pytest.mark.parametrize("fmt", ["HEIF", pytest.param("AVIF", marks=needs_avif_encoder)])
def test_truncated_file_is_one_line_error(fmt):
    data = _encode(_pattern(), fmt)
    with pytest.raises(ImageError) as e:
        decode(data[: len(data) * 2 // 3])
    assert "\n" not in str(e.value) and fmt in str(e.value).upper()


def test_missing_decoder_names_the_extra(monkeypatch):
    data = _encode(_pattern(), "HEIF")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails as if not installed
    with pytest.raises(ImageError, match=r"quasar-engine\[heif\]"):
        decode(data)


@needs_avif_encoder
def test_scored_like_other_formats(tmp_path):
    """A folder with .heic and .avif files: every file gets scores, close to the PNG of the same photo."""
    from quasar.runtime import Scorer

    rng = np.random.default_rng(0)
    base = np.clip(_pattern(240, 320).astype(int) + rng.normal(0, 6, (240, 320, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(base).save(tmp_path / "a.png")
    (tmp_path / "b.heic").write_bytes(_encode(base, "HEIF"))
    (tmp_path / "c.avif").write_bytes(_encode(base, "AVIF"))
    (tmp_path / "d.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40)
    with Scorer(workers=1) as s:
        recs = {r.source.rsplit("/", 1)[-1]: r for r in s.score(str(tmp_path))}
    assert set(recs) == {"a.png", "b.heic", "c.avif", "d.heic"}
    assert recs["a.png"].ok and recs["b.heic"].ok and recs["c.avif"].ok
    assert "HEIF" in recs["d.heic"].error
    for name in ("b.heic", "c.avif"):
        assert abs(recs[name].scores["quality"] - recs["a.png"].scores["quality"]) < 0.15


@pytest.mark.slow
def test_mutated_phone_files_only_raise_image_errors():
    """Fuzz: bit flips, header integers, truncation, insertion... of HEIF and AVIF seeds give a decoded
    image or one ImageError line, never another exception or a crash (run in this process)."""
    from hypothesis import given, settings
    from test_fuzz import FUZZ, mutated

    from quasar.preprocess import PreprocessSpec, max_resized_side
    from quasar.runtime.prepare import Preparer
    from quasar.runtime.sources import Item

    seeds = [_encode(_pattern(24, 32), "HEIF"), _encode(_pattern(24, 32), "HEIF", 6)]
    if _can_encode_avif():
        seeds += [_encode(_pattern(24, 32), "AVIF"), _encode(_pattern(24, 32), "AVIF", 3)]
    prepare = Preparer(PreprocessSpec(policy="native", size=64, min_size=16, size_multiple=8), max_pixels=1 << 21)

    @settings(max_examples=600, **FUZZ)
    @given(mutated(seeds))
    def check(data):
        try:
            out = prepare(Item("<fuzz>", data=data))
        except ImageError as e:
            assert str(e) and "\n" not in str(e).strip()
            return
        assert out.dtype == np.uint8 and out.ndim == 3 and max(out.shape[:2]) <= max_resized_side(prepare.spec)

    check()
