"""HEIF / HEIC / AVIF headers: the ISO base media file format boxes that say what a decoder will do.

Phones write still images as HEIF (HEVC-coded, iPhone ``.heic``) or AVIF (AV1-coded): an ``ftyp``
box naming the brand, then a ``meta`` box describing *items*. The image shown is the **primary
item** (``pitm``); its properties (``iprp``: a list in ``ipco``, associated to items by ``ipma``)
give its size (``ispe``, the output size also for grid images made of tiles) and its display
transforms: ``irot`` (rotation by multiples of 90 degrees anticlockwise) and ``imir`` (a mirror),
applied in the order the item lists them; ``clap`` (a crop) is recorded but, as libavif leaves it
to the application too, not applied. In these formats irot/imir *are* the orientation (libheif,
libavif's tools and browsers apply them, and ignore the EXIF Orientation tag), so the runtime does
the same.

Nothing here decodes pixels; malformed input gives None, never an exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
                         b"mif2", b"mif3"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
MAX_BOXES = 4096  # a header with more boxes than this is not a photo


@dataclass(frozen=True)
class PrimaryItem:
    """What the header says about the primary image: its size before transforms (``ispe``) and the
    transforms in order, as ``("irot", quarter_turns_anticlockwise)`` / ``("imir", axis)``."""

    width: int
    height: int
    transforms: tuple[tuple[str, int], ...] = field(default=())
    cropped: bool = False  # a clap box is associated (not applied; see the module docstring)
    depth: int | None = None  # bits per sample (pixi, else av1C), when the header says


def _boxes(b: bytes, start: int, end: int):
    """(type, payload start, payload end) of each box in ``b[start:end]``."""
    i, count = start, 0
    while i + 8 <= end and count < MAX_BOXES:
        size, kind = struct.unpack(">I4s", b[i : i + 8])
        head = 8
        if size == 1:
            if i + 16 > end:
                return
            size = struct.unpack(">Q", b[i + 8 : i + 16])[0]
            head = 16
        elif size == 0:
            size = end - i
        if size < head or i + size > end:
            return
        yield kind, i + head, i + size
        i += size
        count += 1


def brand(data: bytes | memoryview) -> str | None:
    """``"avif"`` or ``"heif"`` from the ``ftyp`` box (major, then compatible brands), else None."""
    b = bytes(data[:256])
    if len(b) < 16 or b[4:8] != b"ftyp":
        return None
    size = struct.unpack(">I", b[:4])[0]
    if size < 16 or size > len(b):
        size = len(b)
    major = b[8:12]
    compatible = [b[i : i + 4] for i in range(16, size - 3, 4)]
    for candidate in [major, *compatible]:
        if candidate in AVIF_BRANDS:
            return "avif"
    for candidate in [major, *compatible]:
        if candidate in HEIF_BRANDS:
            return "heif"
    return None


def _child(b: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(b, start, end):
        if k == kind:
            return s, e
    return None


def primary_item(data: bytes | memoryview) -> PrimaryItem | None:
    """The primary item's size and transforms, or None when the header does not say."""
    b = bytes(data)
    try:
        meta = _child(b, 0, len(b), b"meta")
        if meta is None:
            return None
        ms, me = meta[0] + 4, meta[1]  # meta is a FullBox: version and flags first
        pitm = _child(b, ms, me, b"pitm")
        iprp = _child(b, ms, me, b"iprp")
        if pitm is None or iprp is None:
            return None
        version = b[pitm[0]]
        item = struct.unpack(">H" if version == 0 else ">I", b[pitm[0] + 4 : pitm[0] + (6 if version == 0 else 8)])[0]
        ipco = _child(b, *iprp, b"ipco")
        if ipco is None:
            return None
        props = list(_boxes(b, *ipco))
        indices: list[int] = []
        for kind, s, e in _boxes(b, *iprp):
            if kind == b"ipma":
                indices += _associations(b, s, e, item)
        width = height = None
        transforms: list[tuple[str, int]] = []
        cropped = False
        depth = None
        for index in indices:
            if not 1 <= index <= len(props):
                continue
            kind, s, e = props[index - 1]
            if kind == b"ispe" and e - s >= 12:
                width, height = struct.unpack(">II", b[s + 4 : s + 12])
            elif kind == b"irot" and e > s:
                transforms.append(("irot", b[s] & 3))
            elif kind == b"imir" and e > s:
                transforms.append(("imir", b[s] & 1))
            elif kind == b"clap":
                cropped = True
            elif kind == b"pixi" and e - s >= 6 and b[s + 4] >= 1:
                depth = b[s + 5]  # FullBox, num_channels, bits_per_channel of the first channel
            elif kind == b"av1C" and e - s >= 3 and depth is None:
                depth = 12 if b[s + 2] & 0x20 else 10 if b[s + 2] & 0x40 else 8
        if width is None or height is None:
            return None
        return PrimaryItem(int(width), int(height), tuple(transforms), cropped, depth)
    except (struct.error, IndexError):
        return None


def _associations(b: bytes, start: int, end: int, item: int) -> list[int]:
    """Property indices (1-based) that an ``ipma`` box associates with ``item``, in order."""
    version, flags = b[start], int.from_bytes(b[start + 1 : start + 4], "big")
    i = start + 4
    (count,) = struct.unpack(">I", b[i : i + 4])
    i += 4
    for _ in range(min(count, 1 << 16)):
        if version < 1:
            (item_id,) = struct.unpack(">H", b[i : i + 2])
            i += 2
        else:
            (item_id,) = struct.unpack(">I", b[i : i + 4])
            i += 4
        n = b[i]
        i += 1
        out = []
        for _ in range(n):
            if flags & 1:
                out.append(struct.unpack(">H", b[i : i + 2])[0] & 0x7FFF)
                i += 2
            else:
                out.append(b[i] & 0x7F)
                i += 1
        if item_id == item:
            return out
        if i > end:
            break
    return []


def primary_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) of the primary item as stored (before irot), or None."""
    p = primary_item(data)
    return None if p is None else (p.width, p.height)
