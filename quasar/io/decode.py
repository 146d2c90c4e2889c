"""Decode image bytes into upright RGB uint8 pixels with OpenCV, refusing bad input with a reason.

Choices (each one is what a user of a photo viewer would expect to be scored):

* **EXIF orientation is applied.** JPEGs are decoded with ``IMREAD_COLOR_RGB`` (optionally with a
  ``IMREAD_REDUCED_*`` scale), where OpenCV applies the EXIF Orientation tag itself, reduced or not.
  Other formats are decoded with ``IMREAD_UNCHANGED`` to keep alpha and 16-bit samples; OpenCV does
  not rotate in that mode, so the Orientation tag is read from the EXIF blob that
  ``cv2.imdecodeWithMetadata`` returns (PNG ``eXIf``, WebP ``EXIF``) and applied here. TIFF
  orientation is applied by OpenCV's TIFF reader in every mode. This matches PIL's
  ``ImageOps.exif_transpose``.
* **Alpha is composited on white**, like a page background, rather than dropped: fully transparent
  pixels often store black or garbage RGB, which would otherwise be scored.
* **16-bit and float samples are scaled to 8 bits** (``round(v * 255 / 65535)``; floats are taken as
  0..1), greyscale is replicated to three channels, CMYK JPEGs are converted by libjpeg.
* **HEIF/HEIC and AVIF** (phones): :mod:`quasar.io.heif` (pillow-heif; AVIF through OpenCV when its
  build reads it, else Pillow), at full size; the container's irot/imir transforms are the orientation.
  A missing decoder is that file's error naming the ``heif`` extra.
* **Animated GIF/WebP/PNG: the first frame** (OpenCV >= 4.11 decodes GIF; older builds fall back to
  PIL when it is installed). ICC profiles are ignored (as PIL does by default).
* **Decompression bombs**: the pixel count in the header is checked *before* decoding against
  ``max_pixels`` (default: PIL's limit, about 179 MP). The header is read the way the decoder reads
  it (:mod:`quasar.io.formats`); a JPEG, PNG, GIF, WebP, BMP, TIFF, HDR, HEIF or AVIF file whose size
  cannot be read from its header is refused without decoding. Only files of other formats whose
  size neither this module nor Pillow can read are decoded first and checked after (OpenCV's own
  limit, 2**30 pixels, applies to them).
* **Memory**: decoding needs about 7.4 bytes per pixel for 8-bit images (the decoded array plus the
  resampler's copy) and about 16 for 16-bit RGBA PNGs (OpenCV's decoder briefly holds two copies;
  our 8-bit conversion stays at ~13): intermediates are dropped as soon as the next step has them,
  and alpha is composited in strips.
* **Tiny images** (even 1x1) are decoded and later upscaled to the spec's ``min_size`` by
  :func:`quasar.preprocess.target_shape`; they are scored, not refused.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from quasar.io.formats import AVIF, GIF, HEIF, JPEG, TIFF, exif_orientation, jpeg_has_eoi, probe

DEFAULT_MAX_PIXELS = 178_956_970  # PIL.Image.MAX_IMAGE_PIXELS * 2, where PIL raises instead of warning
_REDUCED_FLAGS = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                  8: cv2.IMREAD_REDUCED_GRAYSCALE_8}  # the scale bits; OR-ed with the colour flag
_COLOR_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes straight to RGB

# (h, w) of the stored image -> the smallest (h, w) the decoded image may have.
MinShape = Callable[[int, int], tuple[int, int]]


class ImageError(Exception):
    """One input cannot be scored; ``str(e)`` is the reason shown next to the file name."""


def quiet_opencv() -> None:
    """Silence OpenCV's own log: it writes every undecodable file to stderr, and the commands report
    each failure themselves (one row and one line per file)."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # an OpenCV build without the logging module
        pass


@dataclass(frozen=True)
class Decoded:
    """An upright RGB uint8 image, possibly decoded at 1/``reduction`` scale, and its full size."""

    image: np.ndarray
    full_size: tuple[int, int]  # upright (height, width) at full resolution
    reduction: int = 1


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, over the {max_pixels / 1e6:.1f} MP "
            "limit (decompression-bomb guard; raise max_pixels to allow it)"
        )


def choose_reduction(height: int, width: int, min_shape: MinShape | None) -> int:
    """The largest JPEG DCT scale (8, 4, 2) whose output still covers ``min_shape``; else 1."""
    if min_shape is None:
        return 1
    need_h, need_w = min_shape(height, width)
    for f in (8, 4, 2):
        if math.ceil(height / f) >= need_h and math.ceil(width / f) >= need_w:
            return f
    return 1


def decode(data: bytes | bytearray | memoryview, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           min_shape: MinShape | None = None) -> Decoded:
    """Decode encoded image bytes; ``min_shape`` enables reduced JPEG decoding (see :func:`choose_reduction`).

    Raises :class:`ImageError` with a one-line reason for anything that cannot be scored.
    """
    if len(data) == 0:
        raise ImageError("empty file (0 bytes)")
    header = probe(data)
    if header.width is not None and header.height is not None:
        if header.width == 0 or header.height == 0:
            raise ImageError(f"header says the image is {header.width}x{header.height} (no pixels)")
        check_pixels(header.width, header.height, max_pixels)
    elif header.format is not None and max_pixels is not None:
        # The decoder reads the size from this header too: if we cannot, decoding would be blind.
        raise ImageError(f"corrupt {header.format.upper()} header: no image size found (not decoded: the "
                         "decompression-bomb guard needs it)")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        if header.format == JPEG:
            out = _decode_jpeg(buf, header.width, header.height, min_shape)
        elif header.format in (HEIF, AVIF):
            out = _decode_phone(data, header.format)
        else:
            out = _decode_other(buf, header.format)
    except cv2.error as e:  # some malformed files make OpenCV raise instead of returning None
        raise ImageError(f"OpenCV cannot decode this {header.format or 'file'} ({_cv_reason(e)})") from None
    h, w = out.full_size
    check_pixels(w, h, max_pixels)  # for formats whose header we could not read
    return out


def _cv_reason(e: Exception) -> str:
    """The useful middle of an OpenCV error ("... error: (-2:Unspecified error) WHY in function ...")."""
    text = str(e).strip()
    m = re.search(r"error: \([^)]*\)\s*(.*?)(?: in function|$)", text, re.S)
    lines = (m.group(1) if m else text).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


def _decode_jpeg(buf: np.ndarray, width: int | None, height: int | None, min_shape: MinShape | None) -> Decoded:
    f = choose_reduction(height, width, min_shape) if width and height else 1
    if _COLOR_RGB is not None:
        img = cv2.imdecode(buf, _COLOR_RGB | _REDUCED_FLAGS[f])
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR | _REDUCED_FLAGS[f])
        img = None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img is None:
        if not jpeg_has_eoi(buf):
            raise ImageError("truncated JPEG (no end-of-image marker; the file was cut short)")
        raise ImageError("corrupt JPEG data (libjpeg could not decode it)")
    if f == 1 or not (width and height):
        return Decoded(img, img.shape[:2], 1)
    # OpenCV rotated the reduced image per EXIF; find out whether height and width were swapped.
    dh, dw = img.shape[:2]
    if (dh, dw) == (math.ceil(height / f), math.ceil(width / f)):
        full = (height, width)
    elif (dh, dw) == (math.ceil(width / f), math.ceil(height / f)):
        full = (width, height)
    else:  # unexpected; the reduced image is then the best size we know
        full = (dh * f, dw * f)
    return Decoded(img, full, f)


def _decode_phone(data: bytes | bytearray | memoryview, fmt: str) -> Decoded:
    """HEIF/HEIC and AVIF (:mod:`quasar.io.heif`): full size, upright by the container's irot/imir."""
    from quasar.io import heif
    from quasar.io.isobmff import primary_item

    raw = bytes(data)
    try:
        img = heif.decode_heif(raw) if fmt == HEIF else heif.decode_avif(raw, primary_item(raw))
    except heif.DecoderMissing as e:
        raise ImageError(str(e)) from None
    except MemoryError:
        raise
    except Exception as e:  # pillow-heif raises plain RuntimeError/ValueError for damaged files
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ImageError(f"corrupt or truncated {fmt.upper()} data ({reason})") from None
    rgb = to_rgb8(img, "RGB")
    return Decoded(rgb, rgb.shape[:2], 1)


def _decode_other(buf: np.ndarray, fmt: str | None) -> Decoded:
    with_meta = getattr(cv2, "imdecodeWithMetadata", None)  # OpenCV >= 4.12
    exif = None
    if with_meta is not None:
        img, types, blobs = with_meta(buf, cv2.IMREAD_UNCHANGED)
        for t, blob in zip(np.ravel(types) if len(types) else (), blobs, strict=False):
            if int(t) == cv2.IMAGE_METADATA_EXIF:
                exif = np.asarray(blob, dtype=np.uint8).tobytes()
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if (img is None or img.size == 0) and fmt == GIF:
        img = _gif_with_pil(buf)  # OpenCV < 4.11 has no GIF decoder
        if img is not None:
            return Decoded(img, img.shape[:2], 1)
    if img is None or img.size == 0:
        if fmt is None:
            raise ImageError(f"not an image: unrecognised file signature {bytes(buf[:8])!r}")
        raise ImageError(f"corrupt or truncated {fmt.upper()} data (OpenCV could not decode it)")
    img = to_uint8(img)  # the 16-bit array goes here, before the colour conversion allocates
    rgb = to_rgb8(img, "BGR")
    del img
    if fmt != TIFF:  # OpenCV's TIFF reader has already applied the orientation tag
        rgb = apply_orientation(rgb, exif_orientation(exif))
    return Decoded(rgb, rgb.shape[:2], 1)


def _gif_with_pil(buf: np.ndarray) -> np.ndarray | None:
    """First GIF frame via PIL, if PIL is installed (optional: only old OpenCV builds need it)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            im.seek(0)
            return to_rgb8(np.asarray(im.convert("RGBA")), "RGB")
    except Exception:
        return None


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale 16-bit, float (0..1) or bool samples to uint8; uint8 passes through."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)  # rounds and saturates
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if img.dtype in (np.float16, np.float32, np.float64):
        return np.clip(np.nan_to_num(img.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.dtype == np.int8 or img.dtype == np.int16:
        raise ImageError(f"unsupported signed {img.dtype} samples")
    raise ImageError(f"unsupported sample type {img.dtype}")


COMPOSITE_STRIP_PIXELS = 1 << 20  # alpha is composited this many pixels at a time (bounded temporaries)


def composite_on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``color * a + 255 * (1 - a)`` in exact integer arithmetic (uint16 never overflows here).

    Works in strips of rows, so the uint16 temporaries stay small whatever the image size.
    """
    if alpha.min() == 255:
        return np.ascontiguousarray(color)
    out = np.empty(color.shape, np.uint8)
    step = max(1, COMPOSITE_STRIP_PIXELS // max(1, color.shape[1]))
    for y in range(0, color.shape[0], step):
        a = alpha[y : y + step].astype(np.uint16)
        mixed = color[y : y + step].astype(np.uint16) * a + 255 * (255 - a) + 127
        out[y : y + step] = mixed // 255
    return out


def to_rgb8(img: np.ndarray, order: str) -> np.ndarray:
    """Any OpenCV/numpy image (grey, grey+alpha, 3 or 4 channels in ``order`` BGR or RGB) -> RGB uint8."""
    img = to_uint8(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim != 3 or img.shape[2] not in (2, 3, 4):
        raise ImageError(f"unsupported image layout {img.shape}")
    if img.shape[2] == 2:  # grey + alpha
        grey = composite_on_white(img[:, :, :1], img[:, :, 1:])
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    color = img[:, :, :3]
    if img.shape[2] == 4:  # composite straight into RGB order: one output array, no second copy
        return composite_on_white(color[:, :, ::-1] if order == "BGR" else color, img[:, :, 3:])
    if order == "BGR":
        return cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(color)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Make an image upright given its EXIF Orientation (same transforms as PIL's ``exif_transpose``)."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(img), -1)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def from_array(arr: np.ndarray, *, order: str = "RGB", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Decoded:
    """Accept an in-memory image (HxW, HxWx1/2/3/4; uint8, uint16, float 0..1 or bool) in ``order``."""
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"expected an HxW or HxWxC image array, got shape {arr.shape}")
    check_pixels(arr.shape[1], arr.shape[0], max_pixels)
    rgb = to_rgb8(arr, order)
    return Decoded(rgb, rgb.shape[:2], 1)
