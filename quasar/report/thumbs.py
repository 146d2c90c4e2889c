"""Thumbnails for the report: decoded with the runtime's decoder in a pool of threads, resized with OpenCV.

Each photo goes through :func:`quasar.io.decode.decode` (so orientation, alpha, 16-bit, HEIF/AVIF and
the bomb guard are exactly as when scoring) with a minimum shape of the thumbnail size, which makes
large JPEGs decode at 1/2..1/8 scale; then ``cv2.resize`` with ``INTER_AREA`` and WebP (or JPEG)
encoding. OpenCV releases the GIL, so ``workers`` threads run in parallel; at most ``2 * workers``
decodes are in flight, so memory stays bounded whatever the number of photos.

A thumbnail's error never quotes the file's bytes (the decoder's "not an image: unrecognised file
signature b'...'" does, for ``quasar score``): a report of an untrusted results file must not show
the start of whatever file it names.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from quasar.io import read_file
from quasar.io.decode import DEFAULT_MAX_PIXELS, ImageError, decode

THUMB_SIDE = 200  # long side, px (shown at about 180 css px)
FORMATS = {"webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 70], "image/webp"),
           "jpeg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 75], "image/jpeg")}


@dataclass(frozen=True)
class Thumb:
    data: bytes | None  # encoded image, None when the photo could not be read
    width: int = 0
    height: int = 0
    error: str | None = None


def _min_shape(side: int):
    def need(h: int, w: int) -> tuple[int, int]:
        s = side / max(h, w)
        return (max(1, int(h * s)), max(1, int(w * s))) if s < 1 else (h, w)
    return need


def make_thumb(path: str | None, side: int = THUMB_SIDE, fmt: str = "webp",
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Thumb:
    """One thumbnail (never raises: an unreadable file gives ``Thumb(None, error=...)``)."""
    if path is None:
        return Thumb(None, error="file not found")
    try:
        img = decode(read_file(path), max_pixels=max_pixels, min_shape=_min_shape(side)).image
        h, w = img.shape[:2]
        s = min(1.0, side / max(h, w))
        if s < 1.0:
            img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        ext, params, _ = FORMATS[fmt]
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(img[:, :, ::-1]), params)
        if not ok:
            return Thumb(None, error="cannot encode the thumbnail")
        return Thumb(buf.tobytes(), img.shape[1], img.shape[0])
    except ImageError as e:
        reason = str(e)
        return Thumb(None, error="not an image" if reason.startswith("not an image") else reason)
    except MemoryError:
        return Thumb(None, error="out of memory")


def make_thumbs(paths: Iterable[str | None], workers: int = 2, side: int = THUMB_SIDE,
                fmt: str = "webp") -> Iterator[Thumb]:
    """Thumbnails of ``paths``, in order, made by ``workers`` threads."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="quasar-thumb") as pool:
        pending: deque = deque()
        for p in paths:
            pending.append(pool.submit(make_thumb, p, side, fmt))
            if len(pending) >= 2 * max(1, workers):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
