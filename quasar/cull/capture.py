"""Capture times from EXIF, for the time window of ``quasar cull`` (no pixels are decoded).

``DateTimeOriginal`` (with ``SubSecTimeOriginal``) from the EXIF sub-IFD, else ``DateTime`` from
IFD0, read with Pillow's header readers (HEIC too when pillow-heif is installed). Times are taken
as written, without a time zone: only differences matter (a burst is seconds long), and photos from
one camera share its clock. Anything unreadable is None, never an error: the photo is then grouped
without the window (see :func:`quasar.cull.group.group`).
"""

from __future__ import annotations

import calendar
import time
import warnings

_EXIF_IFD = 0x8769
_DATETIME, _DATETIME_ORIGINAL, _SUBSEC_ORIGINAL = 0x0132, 0x9003, 0x9291


def parse_exif_time(text: object, subsec: object = None) -> float | None:
    """Seconds (as if UTC) from an EXIF ``YYYY:MM:DD HH:MM:SS`` string plus optional sub-second digits."""
    if not isinstance(text, str):
        return None
    try:
        t = time.strptime(text.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    seconds = float(calendar.timegm(t))
    if isinstance(subsec, str):
        digits = subsec.strip().rstrip("\x00")
        if digits.isdigit():
            seconds += int(digits) / 10 ** len(digits)
    return seconds


def capture_time(path: str) -> float | None:
    """The capture time of an image file in seconds, or None when it has none (or cannot be read)."""
    try:
        from PIL import Image

        from quasar.io.heif import register_heif_opener

        register_heif_opener()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                exif = im.getexif()
                sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        return None
    t = parse_exif_time(sub.get(_DATETIME_ORIGINAL), sub.get(_SUBSEC_ORIGINAL))
    return t if t is not None else parse_exif_time(exif.get(_DATETIME))
