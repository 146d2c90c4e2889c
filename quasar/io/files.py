"""Image files: which names count as images, reading a file safely, decoding a file to RGB.

The one list of image extensions (folder walks of the runtime, anchors and int8 calibration) and
the one way a file becomes pixels for every stage (:func:`read_rgb`), so anchors are decoded exactly
as images are at scoring time.
"""

from __future__ import annotations

import os
import stat

import numpy as np

from quasar.io.decode import ImageError, decode
from quasar.io.formats import probe
from quasar.limits import INPUT_HEAD_BYTES, INPUT_SLACK_BYTES, MAX_BYTES_PER_PIXEL

# Extensions picked up when walking folders (explicitly named files are always tried).
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .bmp .dib .tif .tiff .gif .avif .jp2 .pbm .pgm .ppm .pnm .heic .heif .hif".split()
)


def check_size_for_header(size: int, head: bytes) -> None:
    """Refuse a file larger than the image its header describes can take (see :mod:`quasar.limits`):
    a small JPEG followed by a gigabyte is refused before the gigabyte is read."""
    header = probe(head)
    if header.width is None or header.height is None:
        return
    most = header.width * header.height * MAX_BYTES_PER_PIXEL + INPUT_SLACK_BYTES
    if size > most:
        raise ImageError(f"file is {size / 2**20:.0f} MiB, more than a {header.width}x{header.height} image can take "
                         f"({most / 2**20:.0f} MiB): data after the image? (not read)")


def read_file(path: str, max_bytes: int | None = None) -> bytes:
    """Read a whole regular file, turning OS errors into :class:`~quasar.io.decode.ImageError` reasons.

    ``stat`` first: opening a FIFO or a device would block or never end. A file over
    :data:`~quasar.limits.INPUT_SLACK_BYTES` is read after its header only if that image can need it
    (:func:`check_size_for_header`).
    """
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError("is a directory (pass -r / recursive=True to score folders)")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise ImageError(f"file is {st.st_size / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
        with open(path, "rb") as f:
            if st.st_size > INPUT_SLACK_BYTES:
                head = f.read(INPUT_HEAD_BYTES)
                check_size_for_header(st.st_size, head)
                return head + f.read()
            return f.read()
    except FileNotFoundError:
        reason = "file not found"
        if os.path.islink(path):
            reason += " (broken symlink)"
        raise ImageError(reason) from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as e:
        raise ImageError(e.strerror or str(e)) from None


def read_rgb(path: str) -> np.ndarray:
    """Decode an image file to upright RGB uint8 HWC with the one decoder (the runtime's).

    Anchors must be decoded exactly as images are at scoring time (EXIF orientation, alpha on
    white, 16-bit scaling, CMYK), so this delegates to :func:`quasar.io.decode.decode` rather
    than keeping a second, simpler decoder. Raises ``ValueError("<path>: <reason>")``.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode(data).image
    except ImageError as e:
        raise ValueError(f"{path}: {e}") from None
