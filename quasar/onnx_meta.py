"""Read an ONNX file's ``metadata_props`` and head initializers without the ``onnx`` package.

The runtime must validate a model (is it a QUASAR model? which heads, which preprocessing? does the
metadata agree with the graph?) before it builds an inference session, and it depends on neither
``onnx`` nor torch. ``ModelProto`` is a protobuf message; its fields can be walked by reading each
field's tag and length and seeking past everything not needed, so even a 1 GB graph costs a few
reads: :func:`read_metadata_props` reads field 14 (``metadata_props``); :func:`read_initializers`
walks ``graph`` (field 7) and its ``initializer`` entries (field 5), reading the data of only the
tensors whose name starts with a prefix (``quasar.``) and the element type of every other one.
Malformed input raises :class:`NotOnnx`, never anything else.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO

from quasar.limits import MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_BYTES

_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1; value = 2}


class NotOnnx(ValueError):
    """The bytes are not a protobuf ModelProto."""


class MetadataTooLarge(NotOnnx):
    """A ``metadata_props`` entry, or their number, is over the documented bound (:mod:`quasar.limits`)."""


def check_metadata_entry(n: int, count: int) -> None:
    """Refuse the ``count``-th metadata entry of ``n`` bytes before reading it (the bounds of :mod:`quasar.limits`)."""
    if n > MAX_METADATA_VALUE_BYTES:
        raise MetadataTooLarge(f"a metadata entry of {n} bytes is over the {MAX_METADATA_VALUE_BYTES}-byte limit")
    if count > MAX_METADATA_ENTRIES:
        raise MetadataTooLarge(f"more than {MAX_METADATA_ENTRIES} metadata entries")


def _varint(f: BinaryIO) -> int | None:
    result, shift = 0, 0
    while True:
        b = f.read(1)
        if not b:
            if shift == 0:
                return None  # clean end of message
            raise NotOnnx("truncated varint")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise NotOnnx("varint too long")


def varint_at(buf: bytes, i: int) -> tuple[int, int]:
    """A protobuf varint at ``buf[i]``: (value, index after it); NotOnnx when truncated or over 64 bits."""
    result, shift = 0, 0
    while True:
        if i >= len(buf):
            raise NotOnnx("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise NotOnnx("varint too long")


def _entry(buf: bytes) -> tuple[str, str]:
    key, value, i = "", "", 0
    while i < len(buf):
        tag, i = varint_at(buf, i)
        if tag & 7 != 2:
            raise NotOnnx("unexpected field type in a metadata entry")
        n, i = varint_at(buf, i)
        s = buf[i : i + n].decode("utf-8", errors="replace")
        i += n
        if tag >> 3 == 1:
            key = s
        elif tag >> 3 == 2:
            value = s
    return key, value


def read_metadata_props(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict; raises :class:`NotOnnx` for non-protobuf data."""
    size = os.path.getsize(path)
    props: dict[str, str] = {}
    seen_fields = entries = 0
    with open(path, "rb") as f:
        while True:
            tag = _varint(f)
            if tag is None:
                break
            field, wire = tag >> 3, tag & 7
            if field == 0 or field > 64:
                raise NotOnnx(f"field number {field} is not part of ModelProto")
            if wire == 0:
                if _varint(f) is None:
                    raise NotOnnx("truncated field")
            elif wire == 1:
                f.seek(8, os.SEEK_CUR)
            elif wire == 5:
                f.seek(4, os.SEEK_CUR)
            elif wire == 2:
                n = _varint(f)
                if n is None or f.tell() + n > size:
                    raise NotOnnx("field runs past the end of the file")
                if field == _METADATA_PROPS:
                    entries += 1
                    check_metadata_entry(n, entries)
                    k, v = _entry(f.read(n))
                    props[k] = v
                else:
                    f.seek(n, os.SEEK_CUR)
            else:
                raise NotOnnx(f"wire type {wire} does not occur in ONNX files")
            seen_fields += 1
            if f.tell() > size:
                raise NotOnnx("field runs past the end of the file")
    if seen_fields == 0:
        raise NotOnnx("empty file")
    return props


def model_layout(source: str | os.PathLike | bytes) -> tuple[list[tuple[int, int]], list[tuple[bytes, bytes]]]:
    """What the model digest covers (:func:`quasar.integrity.model_sha256`): the byte ranges ``[start, end)``
    of every top-level ``ModelProto`` field but ``metadata_props`` (tag and all, in file order), and
    each metadata entry as raw (key, value) bytes. ``source``: a file or the serialized bytes. Raises
    :class:`NotOnnx` (and :class:`MetadataTooLarge` before reading an oversized entry)."""
    ranges: list[tuple[int, int]] = []
    entries: list[tuple[bytes, bytes]] = []
    with open_model(source) as (f, size):
        for num, wire, v, start in _top_fields(f, size):
            if num == _METADATA_PROPS and wire == 2:
                check_metadata_entry(v[1], len(entries) + 1)
                entries.append(_raw_entry(_read(f, *v)))
            else:
                ranges.append((start, f.tell()))
    if not ranges and not entries:
        raise NotOnnx("empty file")
    return ranges, entries


@contextlib.contextmanager
def open_model(source: str | os.PathLike | bytes):
    """(binary file, size) of a model file or of serialized bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source), len(source)
        return
    with open(source, "rb") as f:
        yield f, os.fstat(f.fileno()).st_size


def _top_fields(f: BinaryIO, size: int):
    """(field, wire, value, start offset) of each top-level field, as :func:`_fields` (the file position is
    after the field when it is yielded)."""
    f.seek(0)
    while f.tell() < size:
        start = f.tell()
        item = next(_fields(f, start, size), None)
        if item is None:
            break
        num, wire, v = item
        if num > 64:
            raise NotOnnx(f"field number {num} is not part of ModelProto")
        if wire == 2:
            f.seek(v[0] + v[1])
        elif wire in (1, 5):
            f.seek(v[0] + v[1])
        yield num, wire, v, start


def _raw_entry(buf: bytes) -> tuple[bytes, bytes]:
    key, value, i = b"", b"", 0
    while i < len(buf):
        tag, i = varint_at(buf, i)
        if tag & 7 != 2:
            raise NotOnnx("unexpected field type in a metadata entry")
        n, i = varint_at(buf, i)
        if i + n > len(buf):
            raise NotOnnx("metadata entry runs past its end")
        if tag >> 3 == 1:
            key = buf[i : i + n]
        elif tag >> 3 == 2:
            value = buf[i : i + n]
        i += n
    return key, value


# ---------------------------------------------------------------------------------------- initializers

_GRAPH = 7  # ModelProto.graph
_INITIALIZER = 5  # GraphProto.initializer (TensorProto)
MAX_NAME_BYTES = 4096
MAX_HEAD_TENSOR_BYTES = 256 << 20  # a head tensor bigger than this is not a head: refused, not read

# TensorProto.DataType -> (struct code, bytes per element); the typed repeated field each type uses
# when there is no raw_data: float_data (4), int32_data (5), int64_data (7), double_data (10), uint64_data (11).
DTYPES = {1: ("f", 4), 2: ("B", 1), 3: ("b", 1), 4: ("H", 2), 5: ("h", 2), 6: ("i", 4), 7: ("q", 8), 9: ("?", 1),
          10: ("e", 2), 11: ("d", 8), 12: ("I", 4), 13: ("Q", 8), 16: ("H", 2)}
DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
               9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
_U64 = (1 << 64) - 1
_TYPED_FIELD = {1: 4, 6: 5, 2: 5, 3: 5, 4: 5, 5: 5, 9: 5, 10: 5, 16: 5, 7: 7, 11: 10, 12: 11, 13: 11}


@dataclass(frozen=True)
class Tensor:
    """One initializer: name, ONNX data type, dims and its values as raw little-endian bytes (C order)."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    data: bytes

    @property
    def count(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    def values(self) -> tuple:
        code, size = DTYPES[self.data_type]
        return struct.unpack(f"<{len(self.data) // size}{code}", self.data)


@dataclass
class GraphTensors:
    """What :func:`read_initializers` found: the prefixed tensors with data, and every initializer's type."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    dtypes: Counter = field(default_factory=Counter)  # data type -> number of initializers
    # With ``scan=True``: float initializers holding NaN, and those kept in external files
    nan: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


_FLOATS = {1: "<f4", 10: "<f2", 11: "<f8"}


def _has_nan(data: bytes, dtype: int) -> bool:
    import numpy as np  # the runtime's dependency; only when a whole graph is scanned

    return bool(np.isnan(np.frombuffer(data, _FLOATS[dtype])).any())


def _fields(f: BinaryIO, start: int, end: int):
    """(field, wire, value) for each field of the message in [start, end): value is the varint for
    wire 0 and (offset, length) for wire 2; fixed-size fields are skipped (value None)."""
    f.seek(start)
    while f.tell() < end:
        tag = _varint(f)
        if tag is None:
            raise NotOnnx("truncated message")
        num, wire = tag >> 3, tag & 7
        if num == 0:
            raise NotOnnx("field number 0")
        if wire == 0:
            v = _varint(f)
            if v is None:
                raise NotOnnx("truncated field")
            yield num, wire, v
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            pos = f.tell()
            if pos + width > end:
                raise NotOnnx("field runs past the end of its message")
            yield num, wire, (pos, width)
            f.seek(pos + width)
        elif wire == 2:
            n = _varint(f)
            pos = f.tell()
            if n is None or pos + n > end:
                raise NotOnnx("field runs past the end of its message")
            yield num, wire, (pos, n)
            f.seek(pos + n)
        else:
            raise NotOnnx(f"wire type {wire} does not occur in ONNX files")
        if f.tell() > end:
            raise NotOnnx("field runs past the end of its message")


def _read(f: BinaryIO, pos: int, n: int) -> bytes:
    here = f.tell()
    f.seek(pos)
    data = f.read(n)
    f.seek(here)
    if len(data) != n:
        raise NotOnnx("truncated field")
    return data


def _packed_varints(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = varint_at(buf, i)
        out.append(v)
    return out


def _tensor(f: BinaryIO, start: int, end: int, prefix: str,
            scan: GraphTensors | None = None) -> tuple[str, int, Tensor | None]:
    """(name, data type, Tensor if the name has ``prefix``) for the TensorProto in [start, end); with
    ``scan``, every float tensor's values are checked (those with NaN, and external ones, noted in it)."""
    name, dtype, location = "", 0, 0
    dims: list[int] = []
    raw: tuple[int, int] | None = None
    typed: dict[int, list[tuple[int, int, int]]] = {}
    for num, wire, v in _fields(f, start, end):
        if num == 1:  # dims
            if wire == 0:
                dims.append(v)
            elif wire == 2:
                dims.extend(_packed_varints(_read(f, *v)))
        elif num == 2 and wire == 0:
            dtype = v
        elif num == 8 and wire == 2:
            if v[1] > MAX_NAME_BYTES:
                raise NotOnnx("initializer name too long")
            name = _read(f, *v).decode("utf-8", errors="replace")
        elif num == 9 and wire == 2:
            raw = v
        elif num == 14 and wire == 0:
            location = v
        elif num in (4, 5, 7, 10, 11) and wire in (0, 1, 2, 5):
            typed.setdefault(num, []).append((wire, *(v if isinstance(v, tuple) else (v, 0))))
    if scan is not None and location == 1:
        scan.external.append(name)
    elif scan is not None and dtype in _FLOATS:
        values = _read(f, *raw) if raw is not None else _typed_bytes(f, typed.get(_TYPED_FIELD[dtype], []), dtype)
        size = DTYPES[dtype][1]
        if _has_nan(values[: len(values) // size * size], dtype):
            scan.nan.append(name)
    if not name.startswith(prefix):
        return name, dtype, None
    if location == 1:
        raise NotOnnx(f"initializer {name!r} keeps its data in an external file")
    if dtype not in DTYPES:
        raise NotOnnx(f"initializer {name!r} has data type {dtype}, which a head tensor never has")
    code, size = DTYPES[dtype]
    count = 1
    for d in dims:
        if d < 0 or d > 1 << 40:
            raise NotOnnx(f"initializer {name!r} has a bad dimension {d}")
        count *= d
    if count * size > MAX_HEAD_TENSOR_BYTES:
        raise NotOnnx(f"initializer {name!r} is {count * size} bytes, too large for a head tensor")
    if raw is not None:
        data = _read(f, *raw)
    else:
        data = _typed_bytes(f, typed.get(_TYPED_FIELD[dtype], []), dtype)
    if len(data) != count * size:
        raise NotOnnx(f"initializer {name!r} holds {len(data)} bytes, its shape {tuple(dims)} needs {count * size}")
    return name, dtype, Tensor(name, dtype, tuple(dims), data)


def _typed_bytes(f: BinaryIO, parts: list[tuple[int, int, int]], dtype: int) -> bytes:
    """Values stored in TensorProto's typed repeated fields, as raw little-endian bytes of ``dtype``."""
    code, size = DTYPES[dtype]
    if dtype in (1, 11, 13):  # float_data / double_data are fixed-width; uint64_data is varints
        if dtype == 13:
            values = [x & _U64 for w, a, b in parts for x in (_packed_varints(_read(f, a, b)) if w == 2 else [a])]
            return struct.pack(f"<{len(values)}Q", *values)
        width = 4 if dtype == 1 else 8
        return b"".join(_read(f, a, b) for w, a, b in parts if w in (1, 2, 5) and (w == 2 or b == width))
    values = [x & _U64 for w, a, b in parts for x in (_packed_varints(_read(f, a, b)) if w == 2 else [a])]
    out = []
    for x in values:
        if dtype == 7:  # int64: two's complement in 64 bits
            x = x - (1 << 64) if x >= 1 << 63 else x
            out.append(struct.pack("<q", x))
        else:  # int32_data carries int32, and the 8/16-bit types and float16 as their bit patterns
            x &= 0xFFFFFFFF
            if dtype in (10, 16, 4):
                out.append(struct.pack("<H", x & 0xFFFF))
            elif dtype in (2, 9):
                out.append(struct.pack("<B", x & 0xFF))
            elif dtype == 3:
                out.append(struct.pack("<b", ((x & 0xFF) ^ 0x80) - 0x80))
            elif dtype == 5:
                out.append(struct.pack("<h", ((x & 0xFFFF) ^ 0x8000) - 0x8000))
            elif dtype == 12:
                out.append(struct.pack("<I", x))
            else:  # int32
                out.append(struct.pack("<i", (x ^ 0x80000000) - 0x80000000))
    return b"".join(out)


def read_initializers(path: str | os.PathLike, prefix: str = "quasar.", scan: bool = False) -> GraphTensors:
    """The graph's initializers whose name starts with ``prefix`` (with their data) and the data types
    of all of them; with ``scan``, also the float ones holding NaN and those kept in external
    files (:attr:`GraphTensors.nan`, :attr:`GraphTensors.external`). Raises :class:`NotOnnx` for
    malformed files."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        return _read_initializers(f, size, prefix, scan)


def parse_tensor(data: bytes) -> Tensor:
    """One serialized TensorProto (``t.SerializeToString()``), read by the same code as the file reader."""
    _, _, t = _tensor(io.BytesIO(data), 0, len(data), "")
    if t is None:  # unreachable with the empty prefix, which keeps every tensor; checked, not asserted
        raise NotOnnx("not a serialized tensor")
    return t


def _read_initializers(f: BinaryIO, size: int, prefix: str, scan: bool = False) -> GraphTensors:
    out = GraphTensors()
    graphs = [v for num, wire, v in _fields(f, 0, size) if num == _GRAPH and wire == 2]
    if not graphs:
        raise NotOnnx("no graph")
    gstart, glen = graphs[-1]
    for num, wire, v in list(_fields(f, gstart, gstart + glen)):
        if num != _INITIALIZER or wire != 2:
            continue
        name, dtype, tensor = _tensor(f, v[0], v[0] + v[1], prefix, out if scan else None)
        out.dtypes[dtype] += 1
        if tensor is not None:
            if name in out.tensors:
                raise NotOnnx(f"two initializers are named {name!r}")
            out.tensors[name] = tensor
    return out
