"""What the scoring service accepts and answers, in plain Python (no Ray, no web framework).

``POST /score`` takes one image as the body (``Content-Type: image/*`` or
``application/octet-stream``, or ``application/x-www-form-urlencoded`` when the bytes are an image:
``curl --data-binary``'s default) or several as ``multipart/form-data`` (one file per part, read part
by part by :mod:`quasar.scale.multipart` as the body arrives). Every refusal is a
:class:`RequestError`: an HTTP status and a one-line reason, answered as ``{"error": reason}``; a
replica never raises on a client's input (a missing or wrong bearer token is 401, :mod:`quasar.scale.auth`):

=================================  ======  ==========================================
request                            status  reason starts with
=================================  ======  ==========================================
empty body                         400     ``empty body``
body over ``max_body_bytes``       413     ``request body over``
other content type (or url-       415     ``unsupported content type``
 encoded bytes that are no image)
multipart without a boundary, not  400     ``malformed multipart body``
 starting with it, unclosed, bad
 part headers, or with no file
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from quasar.io.decode import DEFAULT_MAX_PIXELS
from quasar.io.formats import probe, sniff

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


async def read_body(chunks: AsyncIterator[bytes], limits: Limits, slow: SlowReads,
                    sink: Callable[[bytes], None] | None = None) -> bytes:
    """The whole body from ``chunks`` (or, with ``sink``, each chunk handed to it as it arrives and b""
    returned: a streaming parser there may refuse the request before the rest is read), or :class:`RequestError` 413 (too long), 408 (not in within
    ``read_timeout_s``) or 503 (slow while ``max_slow_reads`` others are). A body is slow when it is
    still arriving ``read_grace_s`` after the request at under ``min_body_rate`` bytes a second on
    average (looked at again every ``read_grace_s`` until it is slow or in). Before its first bytes
    a body is not slow (it holds nothing but a coroutine, and the read timeout ends it): a body sent
    at once but delivered late by a busy machine is not mistaken for a trickle. The chunk being waited for is never cancelled
    until the read is given up, so the stream stays intact between looks."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    body, counted, look, size = bytearray(), False, limits.read_grace_s, 0
    it = chunks.__aiter__()
    pending: asyncio.Future | None = None
    try:
        while True:
            elapsed = loop.time() - start
            if elapsed >= limits.read_timeout_s:
                raise RequestError(408, f"request body not received within {limits.read_timeout_s:g} s "
                                        "(the service's read timeout)")
            if not counted and elapsed >= look:
                if 0 < size < limits.min_body_rate * elapsed:
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
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise RequestError(413, too_large(limits))
            if sink is None:
                body += chunk
            elif chunk:
                sink(chunk)
    finally:
        if pending is not None:
            pending.cancel()
        if counted:
            slow.count -= 1


class PixelBudget:
    """The pixels of a request's images so far, from their headers: :meth:`add` raises 413 when they
    add up to more than ``max_request_pixels``. Images that are never decoded count 0: unreadable
    headers, and headers over ``max_pixels`` (each refused on its own as a decompression bomb)."""

    def __init__(self, limits: Limits) -> None:
        self.limits, self.total = limits, 0

    def add(self, data: bytes) -> None:
        limits = self.limits
        pixels = probe(data).pixels or 0
        if limits.max_pixels is None or pixels <= limits.max_pixels:
            self.total += pixels
        if self.total > limits.max_request_pixels:
            raise RequestError(413, f"request over {limits.max_request_pixels} pixels in all (the service's "
                                    "--max-request-pixels): send fewer or smaller images per request")


def check_request_pixels(files: list[tuple[str, bytes]], limits: Limits) -> None:
    """413 when the images' header sizes add up to more than ``max_request_pixels`` (:class:`PixelBudget`)."""
    budget = PixelBudget(limits)
    for _, data in files:
        budget.add(data)


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
    """``[(name, encoded image)]`` from a whole request body, or :class:`RequestError` (the service
    streams instead: :func:`body_kind`, then :class:`~quasar.scale.multipart.MultipartReader` or
    :func:`one_image`; this is the same rules on bytes already in memory)."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, too_large(limits))
    if body_kind(content_type) == "multipart":
        from quasar.scale.multipart import MultipartReader

        reader = MultipartReader(content_type or "", limits)
        reader.feed(body)
        return reader.finish()
    return one_image(content_type, body)


URLENCODED = "application/x-www-form-urlencoded"


def body_kind(content_type: str | None) -> str:
    """``"multipart"`` (several images, streamed part by part) or ``"image"`` (the body is one image,
    or refused by :func:`one_image` once read)."""
    return "multipart" if media_type(content_type) == "multipart/form-data" else "image"


def one_image(content_type: str | None, body: bytes) -> list[tuple[str, bytes]]:
    """The body as one image, or :class:`RequestError` (400 empty, 415 other content type).

    ``application/x-www-form-urlencoded`` is what ``curl --data-binary @photo.jpg`` sends without
    ``-H 'Content-Type: ...'``: such a body is accepted when its first bytes are the signature of an
    image format the decoder reads (:func:`quasar.io.formats.sniff`), and refused with the fix otherwise."""
    if not body:
        raise RequestError(400, "empty body: send one image as the body, or several as multipart/form-data")
    mt = media_type(content_type)
    if mt.startswith("image/") or mt in ("application/octet-stream", ""):
        return [("image", body)]
    if mt == URLENCODED:
        if sniff(body[:64]) is not None:
            return [("image", body)]
        raise RequestError(415, f"unsupported content type {mt!r} (curl --data-binary's default) and the body "
                                "is not an image: send -H 'Content-Type: image/jpeg' (or the image's type)")
    raise RequestError(415, f"unsupported content type {mt!r}: send an image (image/jpeg, image/png, ... or "
                            "application/octet-stream) or multipart/form-data")


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
