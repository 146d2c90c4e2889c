"""A ``multipart/form-data`` body (RFC 7578) of several files, as the service's ``POST /score`` takes it."""

from __future__ import annotations

import os
import re
import uuid

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def part_name(label: str, index: int) -> str:
    """The filename a part is sent under: the basename, ASCII letters, digits and ``._-`` only (the answers
    come back in order, so the name is only a label for the service's logs)."""
    base = _UNSAFE.sub("_", os.path.basename(label))[:100]
    return base or f"part-{index}"


def encode(files: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """``(content type, body)`` for ``[(filename, data)]``; the boundary is random and checked against the data."""
    while True:
        boundary = f"quasar-{uuid.uuid4().hex}"
        delim = b"--" + boundary.encode("ascii")
        if not any(delim in data for _, data in files):
            break
    chunks = []
    for name, data in files:
        chunks += [delim, b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"", name.encode("ascii"),
                   b"\"\r\nContent-Type: application/octet-stream\r\n\r\n", data, b"\r\n"]
    chunks += [delim, b"--\r\n"]
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def overhead(name: str) -> int:
    """Bytes a part adds to the body besides its data (for the per-request byte bound)."""
    return 160 + len(name)
