"""Cheap header probing: which format a file is and how many pixels it claims, before decoding.

Reading the header first lets the decoder (a) refuse decompression bombs before allocating
anything, (b) pick a reduced JPEG decoding scale from the image size, and (c) give a clear reason
("not an image: starts with b'<html>'") instead of OpenCV's silent ``None``. Only a few bytes
are parsed, in pure Python; nothing here decodes pixels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Signatures (magic bytes) of the formats the runtime reads; see ``sniff``.
JPEG, PNG, GIF, WEBP, BMP, TIFF = "jpeg", "png", "gif", "webp", "bmp", "tiff"

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
    return None


def probe(data: bytes | memoryview) -> Header:
    """Sniff the format and parse the stored image size from the header (never raises)."""
    fmt = sniff(data)
    try:
        size = _SIZE_READERS[fmt](data) if fmt in _SIZE_READERS else None
    except (struct.error, IndexError, ValueError):
        size = None
    if size is None:
        return Header(fmt)
    return Header(fmt, int(size[0]), int(size[1]))


def _jpeg_size(b: bytes | memoryview) -> tuple[int, int] | None:
    i, n = 2, len(b)
    while i + 4 <= n:
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any frame header
            return None
        seglen = (b[i + 2] << 8) | b[i + 3]
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                return None
            h = (b[i + 5] << 8) | b[i + 6]
            w = (b[i + 7] << 8) | b[i + 8]
            return w, h
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
    tags = read_tiff_ifd0(bytes(b[: 1 << 20]))  # IFD0 of a normal TIFF sits near the start
    if 256 in tags and 257 in tags:
        return tags[256], tags[257]
    return None


_SIZE_READERS = {JPEG: _jpeg_size, PNG: _png_size, GIF: _gif_size, WEBP: _webp_size, BMP: _bmp_size, TIFF: _tiff_size}

# TIFF field types whose single value fits the 4-byte slot: BYTE, SHORT, LONG (unsigned and signed).
_TIFF_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 6: ("b", 1), 8: ("h", 2), 9: ("i", 4)}


def read_tiff_ifd0(blob: bytes) -> dict[int, int]:
    """Integer tags of the first IFD of a TIFF structure (a TIFF file or an EXIF blob).

    Only scalar BYTE/SHORT/LONG values are returned: enough for the image size (256, 257) and the
    EXIF orientation (0x0112). Malformed input gives an empty or partial dict, never an exception.
    """
    if blob.startswith(b"Exif\x00\x00"):
        blob = blob[6:]
    if blob[:2] == b"II":
        end = "<"
    elif blob[:2] == b"MM":
        end = ">"
    else:
        return {}
    try:
        (magic,) = struct.unpack(end + "H", blob[2:4])
        if magic != 42:
            return {}
        (offset,) = struct.unpack(end + "I", blob[4:8])
        (count,) = struct.unpack(end + "H", blob[offset : offset + 2])
        tags: dict[int, int] = {}
        for k in range(min(count, 512)):
            entry = blob[offset + 2 + 12 * k : offset + 14 + 12 * k]
            if len(entry) < 12:
                break
            tag, typ, n = struct.unpack(end + "HHI", entry[:8])
            if typ in _TIFF_TYPES and n == 1:
                fmt, size = _TIFF_TYPES[typ]
                (tags[tag],) = struct.unpack(end + fmt, entry[8 : 8 + size])
        return tags
    except struct.error:
        return {}


def exif_orientation(blob: bytes | None) -> int:
    """EXIF Orientation (1..8) from a raw EXIF blob; 1 (upright) when absent or invalid."""
    if not blob:
        return 1
    value = read_tiff_ifd0(bytes(blob)).get(0x0112, 1)
    return value if 1 <= value <= 8 else 1
