"""Decoding phone formats: HEIF/HEIC (pillow-heif) and AVIF (OpenCV when built with it, else Pillow).

The same guarantees as every other format (:mod:`quasar.io.decode` checks the header first):

* **Header probe and bomb guard**: the primary item's size comes from the container
  (:mod:`quasar.io.isobmff`, ``ispe``) and is checked against ``max_pixels`` before any decoding.
* **Orientation**: in HEIF and AVIF the container's ``irot``/``imir`` transforms are the
  orientation. libheif (pillow-heif) applies them (and ``clap``) itself; for AVIF, whose decoders
  here (OpenCV's libavif reader, Pillow's) return the stored pixels, they are applied here. The EXIF
  Orientation tag is not applied in these formats, as libheif and browsers do not (an iPhone or a
  converter writes the rotation into irot).
* **Per-file errors**: a missing decoder is that file's error naming the extra to install
  (``pip install 'quasar-engine[heif]'``), never a crash of the batch.
* **Reduced decoding**: neither codec can decode at a fraction of the size (no DCT scaling as in
  JPEG), so these formats are always decoded at full size; memory per pixel is as for PNG.

The decoders are imported only when such a file is met.
"""

from __future__ import annotations

import functools
import io
import re
import warnings

import cv2
import numpy as np

from quasar.extras import install_hint
from quasar.io.isobmff import PrimaryItem

HEIF_EXTRA = "heif"


class DecoderMissing(Exception):
    """No decoder for this format is installed; ``str(e)`` says which extra installs one."""


@functools.lru_cache(maxsize=1)
def opencv_has_avif() -> bool:
    """Whether this OpenCV build reads AVIF (the PyPI wheels of OpenCV 5 do; 4.x wheels do not)."""
    m = re.search(r"^\s*AVIF:\s*(\S+)", cv2.getBuildInformation(), re.M)
    return bool(m) and m.group(1).upper() != "NO"


@functools.lru_cache(maxsize=1)
def register_heif_opener() -> bool:
    """Let Pillow read HEIF headers (EXIF capture times) when pillow-heif is installed; True if it is."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@functools.lru_cache(maxsize=1)
def _pillow_avif_opener():
    """Pillow's AVIF image class: Pillow's own (>= 11.2 with libavif) or pillow-avif-plugin's; None if neither."""
    from PIL import Image, features

    if not features.check("avif"):
        try:
            import pillow_avif  # noqa: F401  (registers the AVIF plugin with Pillow)
        except ImportError:
            return None
    Image.init()
    return Image.OPEN.get("AVIF", (None, None))[0]


def decode_heif(data: bytes) -> np.ndarray:
    """HEIF/HEIC bytes -> upright uint8 image array (RGB, RGBA or grey), via pillow-heif."""
    try:
        import pillow_heif
    except ImportError:
        raise DecoderMissing(f"HEIF/HEIC needs pillow-heif, which is not installed: {install_hint(HEIF_EXTRA)}") from None
    heif = pillow_heif.open_heif(io.BytesIO(data))  # libheif applies irot/imir/clap; 10/12-bit become 8-bit
    return np.asarray(heif)


def decode_avif(data: bytes, item: PrimaryItem | None) -> np.ndarray:
    """AVIF bytes -> upright uint8 image array (RGB or RGBA).

    OpenCV first when its build reads AVIF (alpha kept; 10/12-bit samples, which it returns unscaled
    in uint16, are scaled by the depth the header gives), else Pillow; then the container's
    irot/imir transforms.
    """
    img = None
    if opencv_has_avif():
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if bgr is not None and bgr.size:
            img = _bgr_to_rgb(_to_8bit(bgr, item.depth if item is not None else None))
    if img is None:
        opener = _pillow_avif_opener()
        if opener is None:
            if opencv_has_avif():
                raise ValueError("OpenCV could not decode it")
            raise DecoderMissing("AVIF needs OpenCV built with libavif, Pillow >= 11.2 with AVIF, or "
                                 f"pillow-avif-plugin; none is installed: {install_hint(HEIF_EXTRA)}")
        img = _pillow_decode(opener, data)
    return apply_transforms(img, item.transforms if item is not None else ())


def _to_8bit(img: np.ndarray, depth: int | None) -> np.ndarray:
    """OpenCV's AVIF reader gives 10/12-bit samples as they are (0..1023 / 0..4095) in uint16."""
    if img.dtype != np.uint16:
        return img
    if depth is None:  # no pixi/av1C (AV1 has 10 and 12 bits): the largest sample tells
        depth = 10 if int(img.max()) < 1024 else 12
    return cv2.convertScaleAbs(img, alpha=255.0 / ((1 << depth) - 1))


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _pillow_decode(opener, data: bytes) -> np.ndarray:
    """Decode with a Pillow image class directly, as :func:`quasar.io.formats.pillow_size` reads headers:
    ``Image.open``'s own bomb check would refuse sizes our ``max_pixels`` allows (the caller checked)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = opener(io.BytesIO(data), "")
            im.load()
        except Exception as e:
            raise ValueError(f"Pillow: {str(e).strip()[:120]}") from None
    try:
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        return np.asarray(im)
    finally:
        im.close()


def apply_transforms(img: np.ndarray, transforms) -> np.ndarray:
    """Apply HEIF ``irot`` (quarter turns anticlockwise) and ``imir`` in order.

    ``imir`` 0 exchanges top and bottom, 1 left and right (ISO/IEC 23008-12:2022, as libheif and
    libavif read it; the 2017 text's "vertical axis" wording was ambiguous)."""
    for kind, value in transforms:
        if kind == "irot" and value % 4:
            img = cv2.rotate(img, {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180,
                                   3: cv2.ROTATE_90_CLOCKWISE}[value % 4])
        elif kind == "imir":
            img = cv2.flip(img, 0 if value == 0 else 1)
    return img
