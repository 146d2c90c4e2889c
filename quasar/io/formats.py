"""Cheap header probing: which format a file is and how many pixels it claims, before decoding.

Reading the header first lets the decoder (a) refuse decompression bombs before allocating
anything, (b) pick a reduced JPEG decoding scale from the image size, and (c) give a clear reason
("not an image: starts with b'<html>'") instead of OpenCV's silent ``None``. Nothing here decodes
pixels.

The size must be the one **the decoder will use**, or the bomb guard can be bypassed. So each
parser follows its decoder's rules, not the format's ideal: JPEG markers are found the way libjpeg
finds them (stray bytes before a marker are skipped, as libjpeg does with a warning); a TIFF's first
directory is read wherever it sits in the file (also BigTIFF); HEIF and AVIF give the primary item's
``ispe`` (:mod:`quasar.io.isobmff`). When these parsers find no size,
:func:`probe` asks Pillow's header readers (no pixels are decoded). :func:`probe` never raises.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

from quasar.io import isobmff

# Signatures (magic bytes) of the formats the runtime reads; see ``sniff``.
JPEG, PNG, GIF, WEBP, BMP, TIFF, HDR = "jpeg", "png", "gif", "webp", "bmp", "tiff", "hdr"
# Phone formats in an ISO-BMFF container (ftyp brand; quasar.io.isobmff), decoded by quasar.io.heif.
HEIF, AVIF = "heif", "avif"

# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class Header:
    """What the file header says. ``width``/``height`` are None when the header could not be parsed
    (the decoder then decides); they are the *stored* size, before any EXIF rotation."""

    format: str | None
    width: int | None = None
    height: int | None = None

    @property
    def pixels(self) -> int | None:
        return None if self.width is None or self.height is None else self.width * self.height


def sniff(data: bytes | memoryview) -> str | None:
    """Format name from the magic bytes, or None for anything else (OpenCV may still decode it)."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"BM"):
        return BMP
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return TIFF
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return HDR
    if head[4:8] == b"ftyp":
        return isobmff.brand(data)
    return None


def probe(data: bytes | memoryview) -> Header:
    """Sniff the format and read the stored image size the way the decoder will (never raises).

    This module's parsers first; when they find no size, Pillow's header readers.
    """
    fmt = sniff(data)
    try:
        size = _SIZE_READERS[fmt](data) if fmt in _SIZE_READERS else None
    except (struct.error, IndexError, ValueError, OverflowError):
        size = None
    if size is None:
        size = pillow_size(data)
    if size is None:
        return Header(fmt)
    return Header(fmt, int(size[0]), int(size[1]))


def pillow_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from Pillow's header readers, or None (Pillow missing or no reader fits).

    Pillow's plugins are called directly, as ``Image.open`` does, but without its own bomb check:
    that raises instead of telling the size, and the caller applies its own limit.
    """
    try:
        from PIL import Image
    except ImportError:
        return None
    raw = bytes(data)
    prefix = raw[:16]
    try:
        Image.init()
        openers = [Image.OPEN[i] for i in Image.ID if i in Image.OPEN]
    except Exception:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for factory, accept in openers:
            try:
                if accept is not None and not accept(prefix):
                    continue
                im = factory(io.BytesIO(raw), "")
            except Exception:
                continue
            try:
                w, h = im.size
            except Exception:
                w = h = None
            finally:
                try:
                    im.close()
                except Exception:
                    pass
            if isinstance(w, int) and isinstance(h, int) and w >= 0 and h >= 0:
                return w, h
    return None


def _jpeg_size(b: bytes | memoryview) -> tuple[int, int] | None:
    """The frame size libjpeg will use: its ``next_marker`` skips any bytes up to an 0xFF (a corrupt
    file, with only a warning), swallows fill bytes and stuffed ``FF 00`` pairs, and the first SOFn
    before the first scan (SOS) sets the size."""
    b = bytes(b)
    n = len(b)
    if b[:2] != b"\xff\xd8":
        return None
    i = 2
    while True:
        i = b.find(b"\xff", i)
        if i < 0:
            return None
        while i < n and b[i] == 0xFF:
            i += 1
        if i >= n:
            return None
        marker = b[i]
        i += 1
        if marker == 0x00:  # stuffed zero: data, not a marker; keep looking
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers (TEM, RSTn)
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or SOS before any frame header
            return None
        if i + 2 > n:
            return None
        seglen = (b[i] << 8) | b[i + 1]
        if marker in _SOF_MARKERS:
            if i + 7 > n:
                return None
            h = (b[i + 3] << 8) | b[i + 4]
            w = (b[i + 5] << 8) | b[i + 6]
            return w, h
        if seglen < 2:  # libjpeg stops with an error here
            return None
        i += seglen


def jpeg_exif(b: bytes | memoryview) -> bytes | None:
    """The first APP1 ``Exif`` segment's payload of a JPEG (before its first scan), or None.

    For decoders that do not apply EXIF orientation themselves (nvJPEG through torchvision): the
    orientation is then :func:`exif_orientation` of this blob, the segment OpenCV reads it from."""
    raw = bytes(b)
    if raw[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(raw)
    while i + 4 <= n and raw[i] == 0xFF:
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD9, 0xDA):  # EOI or the first scan: no EXIF after it
            return None
        seglen = (raw[i + 2] << 8) | raw[i + 3]
        if seglen < 2:
            return None
        if marker == 0xE1 and raw[i + 4 : i + 10] == b"Exif\x00\x00":
            return raw[i + 4 : i + 2 + seglen]
        i += 2 + seglen
    return None


def jpeg_has_eoi(b: bytes | memoryview) -> bool:
    """True when an end-of-image marker follows the first scan (a cut-off file has none)."""
    raw = bytes(b)
    sos = raw.find(b"\xff\xda")
    return sos >= 0 and raw.find(b"\xff\xd9", sos) >= 0


def _png_size(b: bytes | memoryview) -> tuple[int, int] | None:
    if bytes(b[12:16]) != b"IHDR":
        return None
    w, h = struct.unpack(">II", bytes(b[16:24]))
    return w, h


def _gif_size(b: bytes | memoryview) -> tuple[int, int]:
    return struct.unpack("<HH", bytes(b[6:10]))


def _webp_size(b: bytes | memoryview) -> tuple[int, int] | None:
    chunk = bytes(b[12:16])
    if chunk == b"VP8X":
        w = 1 + int.from_bytes(bytes(b[24:27]), "little")
        h = 1 + int.from_bytes(bytes(b[27:30]), "little")
        return w, h
    if chunk == b"VP8L":
        if b[20] != 0x2F:
            return None
        bits = int.from_bytes(bytes(b[21:25]), "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        if bytes(b[23:26]) != b"\x9d\x01\x2a":
            return None
        w, h = struct.unpack("<HH", bytes(b[26:30]))
        return w & 0x3FFF, h & 0x3FFF
    return None


def _bmp_size(b: bytes | memoryview) -> tuple[int, int] | None:
    dib = struct.unpack("<I", bytes(b[14:18]))[0]
    if dib == 12:  # BITMAPCOREHEADER
        return struct.unpack("<HH", bytes(b[18:22]))
    if dib >= 40:
        w, h = struct.unpack("<ii", bytes(b[18:26]))
        return abs(w), abs(h)
    return None


def _tiff_size(b: bytes | memoryview) -> tuple[int, int] | None:
    tags = read_tiff_ifd0(b)  # libtiff follows the offset wherever IFD0 sits in the file
    if 256 in tags and 257 in tags:
        return tags[256], tags[257]
    return None


_HDR_RESOLUTION = re.compile(rb"([-+])([XY]) +(\d+) +([-+])([XY]) +(\d+)")


def _hdr_size(b: bytes | memoryview) -> tuple[int, int] | None:
    """Radiance HDR: header lines, an empty line, then e.g. ``-Y 768 +X 512`` (height first)."""
    head = bytes(b[: 1 << 16])
    end = head.find(b"\n\n")
    if end < 0:
        return None
    m = _HDR_RESOLUTION.match(head, end + 2)
    if m is None or m.group(2) == m.group(5):
        return None
    first, second = int(m.group(3)), int(m.group(6))
    return (second, first) if m.group(2) == b"Y" else (first, second)


_SIZE_READERS = {JPEG: _jpeg_size, PNG: _png_size, GIF: _gif_size, WEBP: _webp_size, BMP: _bmp_size, TIFF: _tiff_size,
                 HDR: _hdr_size, HEIF: isobmff.primary_size, AVIF: isobmff.primary_size}

# TIFF field types whose single value fits the value slot: BYTE, SHORT, LONG (unsigned and signed),
# and in BigTIFF also LONG8 / SLONG8.
_TIFF_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 6: ("b", 1), 8: ("h", 2), 9: ("i", 4), 16: ("Q", 8),
               17: ("q", 8)}


def read_tiff_ifd0(blob: bytes | memoryview) -> dict[int, int]:
    """Integer tags of the first IFD of a TIFF structure (a TIFF or BigTIFF file, or an EXIF blob).

    Only scalar integer values are returned: enough for the image size (256, 257) and the EXIF
    orientation (0x0112). The IFD is read wherever its offset points, as libtiff does. Malformed
    input gives an empty or partial dict, never an exception.
    """
    blob = memoryview(blob).cast("B") if not isinstance(blob, bytes) else blob
    if bytes(blob[:6]) == b"Exif\x00\x00":
        blob = blob[6:]
    if bytes(blob[:2]) == b"II":
        end = "<"
    elif bytes(blob[:2]) == b"MM":
        end = ">"
    else:
        return {}
    try:
        (magic,) = struct.unpack(end + "H", bytes(blob[2:4]))
        if magic == 42:  # classic TIFF: 4-byte offsets, 12-byte entries, 4-byte value slot
            (offset,) = struct.unpack(end + "I", bytes(blob[4:8]))
            count_fmt, head_fmt, entry_size, slot = "H", "HHI", 12, 4
        elif magic == 43:  # BigTIFF: 8-byte offsets, 20-byte entries, 8-byte value slot
            if struct.unpack(end + "HH", bytes(blob[4:8])) != (8, 0):
                return {}
            (offset,) = struct.unpack(end + "Q", bytes(blob[8:16]))
            count_fmt, head_fmt, entry_size, slot = "Q", "HHQ", 20, 8
        else:
            return {}
        csize = struct.calcsize(count_fmt)
        (count,) = struct.unpack(end + count_fmt, bytes(blob[offset : offset + csize]))
        hsize = struct.calcsize(head_fmt)
        tags: dict[int, int] = {}
        for k in range(min(count, 512)):
            start = offset + csize + entry_size * k
            entry = bytes(blob[start : start + entry_size])
            if len(entry) < entry_size:
                break
            tag, typ, n = struct.unpack(end + head_fmt, entry[:hsize])
            if typ in _TIFF_TYPES and n == 1 and _TIFF_TYPES[typ][1] <= slot:
                fmt, size = _TIFF_TYPES[typ]
                (tags[tag],) = struct.unpack(end + fmt, entry[hsize : hsize + size])
        return tags
    except (struct.error, ValueError, TypeError):
        return {}


def exif_orientation(blob: bytes | None) -> int:
    """EXIF Orientation (1..8) from a raw EXIF blob; 1 (upright) when absent or invalid."""
    if not blob:
        return 1
    value = read_tiff_ifd0(bytes(blob)).get(0x0112, 1)
    return value if 1 <= value <= 8 else 1
