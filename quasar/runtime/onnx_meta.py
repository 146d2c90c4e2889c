"""Read an ONNX file's ``metadata_props`` without the ``onnx`` package and without loading the graph.

The runtime must validate a model (is it a QUASAR model? which heads, which preprocessing?) before
it builds an inference session, and it depends on neither ``onnx`` nor torch. ``ModelProto`` is a
protobuf message; its top-level fields can be walked by reading each field's tag and length and
seeking past everything except field 14 (``metadata_props``), so even a 1 GB graph costs a few reads.
"""

from __future__ import annotations

import os
from typing import BinaryIO

_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1; value = 2}


class NotOnnx(ValueError):
    """The bytes are not a protobuf ModelProto."""


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


def _varint_bytes(buf: bytes, i: int) -> tuple[int, int]:
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
        tag, i = _varint_bytes(buf, i)
        if tag & 7 != 2:
            raise NotOnnx("unexpected field type in a metadata entry")
        n, i = _varint_bytes(buf, i)
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
    seen_fields = 0
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
