"""What the scoring service accepts and answers, in plain Python (no Ray, no web framework).

``POST /score`` takes one image as the body (``Content-Type: image/*`` or
``application/octet-stream``) or several as ``multipart/form-data`` (one file per part). Every
refusal is a :class:`RequestError`: an HTTP status and a one-line reason, answered as
``{"error": reason}``; a replica never raises on a client's input:

=================================  ======  ==========================================
request                            status  reason starts with
=================================  ======  ==========================================
empty body                         400     ``empty body``
body over ``max_body_bytes``       413     ``request body over``
other content type                 415     ``unsupported content type``
multipart without a boundary, or   400     ``malformed multipart body``
 with no file in it
more files than ``max_files``      400     ``too many files``
more pixels in all than            413     ``request over``
 ``max_request_pixels``
body not in within                 408     ``request body not received``
 ``read_timeout_s``
a slow body while                  503     ``busy: too many request bodies``
 ``max_slow_reads`` others are
not an image / truncated / bomb    400     the decoder's reason (one image; in a multipart
                                           request that part's ``error``, status 200)
=================================  ======  ==========================================

408 and 503 carry ``Retry-After``. **Slow bodies.** A body still arriving ``read_grace_s`` after
the request, at under ``min_body_rate`` on average, is *slow*; at most ``max_slow_reads`` slow bodies are read
at once (more: 503 at once), and every body must be in within ``read_timeout_s`` (else 408), so
clients sending a byte a second hold neither the replica nor a partial body for long, and requests
whose body is there at once (nearly all) never wait for them. **Pixel budget.** The image sizes
of a request, read from the headers before any decoding, may add up to ``max_request_pixels``:
a larger request would hold the scorer for minutes (64 parts of 64 MP).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from quasar.io.decode import DEFAULT_MAX_PIXELS
from quasar.io.formats import probe

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Per-request bounds. ``max_pixels`` is checked from the image header before decoding; memory
    per replica is about ``workers x max_pixels x 7.4`` bytes at worst (docs/architecture.md)."""

    max_body_bytes: int = 32 * MiB
    max_files: int = 64
    max_pixels: int | None = min(DEFAULT_MAX_PIXELS, 64_000_000)
    max_request_pixels: int = 128_000_000
    read_timeout_s: float = 30.0
    read_grace_s: float = 1.0
    min_body_rate: int = 16 * 1024  # bytes a second, on average: slower (after read_grace_s) is slow
    max_slow_reads: int = 16


RETRY_AFTER_S = 1  # the Retry-After of 408 and 503 answers


class RequestError(Exception):
    """A refused request: ``status`` and a one-line ``reason`` for the JSON body (and ``headers``)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (408, 503) else {}


class SlowReads:
    """How many slow request bodies are being read now (see the module docstring)."""

    def __init__(self) -> None:
        self.count = 0


async def read_body(chunks: AsyncIterator[bytes], limits: Limits, slow: SlowReads) -> bytes:
    """The whole body from ``chunks``, or :class:`RequestError` 413 (too long), 408 (not in within
    ``read_timeout_s``) or 503 (slow while ``max_slow_reads`` others are). A body is slow when it is
    still arriving ``read_grace_s`` after the request at under ``min_body_rate`` bytes a second on
    average (looked at again every ``read_grace_s`` until it is slow or in). Before its first bytes
    a body is not slow (it holds nothing but a coroutine, and the read timeout ends it): a body sent
    at once but delivered late by a busy machine is not mistaken for a trickle. The chunk being waited for is never cancelled
    until the read is given up, so the stream stays intact between looks."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    body, counted, look = bytearray(), False, limits.read_grace_s
    it = chunks.__aiter__()
    pending: asyncio.Future | None = None
    try:
        while True:
            elapsed = loop.time() - start
            if elapsed >= limits.read_timeout_s:
                raise RequestError(408, f"request body not received within {limits.read_timeout_s:g} s "
                                        "(the service's read timeout)")
            if not counted and elapsed >= look:
                if 0 < len(body) < limits.min_body_rate * elapsed:
                    if slow.count >= limits.max_slow_reads:
                        raise RequestError(503, f"busy: too many request bodies arriving slowly (over "
                                                f"{limits.max_slow_reads}); retry shortly")
                    slow.count += 1
                    counted = True
                else:
                    look = elapsed + limits.read_grace_s
            until = limits.read_timeout_s if counted else min(look, limits.read_timeout_s)
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=max(until - elapsed, 0))
            if not done:
                continue
            fut, pending = pending, None
            try:
                chunk = fut.result()
            except StopAsyncIteration:
                return bytes(body)
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise RequestError(413, too_large(limits))
    finally:
        if pending is not None:
            pending.cancel()
        if counted:
            slow.count -= 1


def check_request_pixels(files: list[tuple[str, bytes]], limits: Limits) -> None:
    """413 when the images' header sizes add up to more than ``max_request_pixels``. Images that are
    never decoded count 0: unreadable headers, and headers over ``max_pixels`` (each refused on its
    own as a decompression bomb, from the header)."""
    total = 0
    for _, data in files:
        pixels = probe(data).pixels or 0
        if limits.max_pixels is None or pixels <= limits.max_pixels:
            total += pixels
        if total > limits.max_request_pixels:
            raise RequestError(413, f"request over {limits.max_request_pixels} pixels in all (the service's "
                                    "--max-request-pixels): send fewer or smaller images per request")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_length(content_length: str | None, limits: Limits) -> None:
    """Refuse early (before reading) when the declared length is over the limit or not a number."""
    if content_length is None:
        return
    try:
        n = int(content_length)
    except ValueError:
        raise RequestError(400, f"bad Content-Length header {content_length[:40]!r}") from None
    if n > limits.max_body_bytes:
        raise RequestError(413, too_large(limits))


def too_large(limits: Limits) -> str:
    return f"request body over {limits.max_body_bytes} bytes (the service's --max-body-mb limit)"


def split_files(content_type: str | None, body: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    """``[(name, encoded image)]`` from a request body, or :class:`RequestError`."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, too_large(limits))
    if not body:
        raise RequestError(400, "empty body: send one image as the body, or several as multipart/form-data")
    mt = media_type(content_type)
    if mt == "multipart/form-data":
        files = parse_multipart(content_type or "", body, limits.max_files)
        if not files:
            raise RequestError(400, "malformed multipart body: no file parts found")
        return files
    if mt.startswith("image/") or mt in ("application/octet-stream", ""):
        return [("image", body)]
    raise RequestError(415, f"unsupported content type {mt!r}: send an image (image/jpeg, image/png, ... or "
                            "application/octet-stream) or multipart/form-data")


_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;,]{1,200}))', re.IGNORECASE)
_PARAM = r'{}=(?:"((?:[^"\\]|\\.)*)"|([^\s;]+))'


def _param(header: str, name: str) -> str | None:
    m = re.search(_PARAM.format(name), header, re.IGNORECASE)
    if not m:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def parse_multipart(content_type: str, body: bytes, max_files: int) -> list[tuple[str, bytes]]:
    """The file parts of a ``multipart/form-data`` body (RFC 7578), as ``[(filename or field name, bytes)]``.

    The part count is checked against ``max_files`` before any part is copied, so a body of many
    tiny parts costs one scan. Parts without a filename and with an empty body are skipped (form
    fields); any other part counts as a file.
    """
    m = _BOUNDARY.search(content_type)
    if not m:
        raise RequestError(400, "malformed multipart body: the Content-Type has no boundary")
    delim = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    if body.startswith(delim):
        start = len(delim)
    else:
        first = body.find(b"\r\n" + delim)
        if first < 0:
            raise RequestError(400, "malformed multipart body: boundary not found")
        start = first + 2 + len(delim)
    sep = b"\r\n" + delim
    if body.count(sep, start) > max_files + 1:  # parts + the closing delimiter, counted before copying
        raise RequestError(400, f"too many files: more than {max_files} in one request (the service's --max-files)")
    files: list[tuple[str, bytes]] = []
    pos = start
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter
            break
        end = body.find(sep, pos)
        if end < 0:
            raise RequestError(400, "malformed multipart body: no closing boundary")
        part = body[pos:end]
        pos = end + len(sep)
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, found, data = part.partition(b"\r\n\r\n")
        if not found:
            raise RequestError(400, "malformed multipart body: a part has no header/body separator")
        headers = head.decode("latin-1")
        disp = next((h for h in headers.split("\r\n") if h.lower().startswith("content-disposition:")), "")
        filename, field = _param(disp, "filename"), _param(disp, "name")
        if filename is None and not data:
            continue
        files.append((filename or field or f"part {len(files)}", data))
        if len(files) > max_files:
            raise RequestError(400, f"too many files: more than {max_files} in one request (the service's --max-files)")
    return files


def record_json(rec, margins: bool = False) -> dict:
    """One image's answer: ``scores`` (P(good) per head), ``margins`` on request, ``warning``, ``error``."""
    out: dict = {"scores": rec.scores}
    if margins:
        out["margins"] = rec.margins
    if rec.warning is not None:
        out["warning"] = rec.warning
    if rec.error is not None:
        out = {"error": rec.error}
    return out


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")
