"""A ``multipart/form-data`` body (RFC 7578) read part by part as it arrives, on ``python-multipart``.

:class:`MultipartReader` is fed the body's chunks as the service reads them
(:func:`quasar.scale.http.read_body`'s ``sink``) and applies the request rules while reading: the
``max_files``-th part plus one is refused (400) the moment it begins, and each file's header size
goes into the request's pixel budget the moment the part ends (413), so a body of thousands of tiny
parts, or of too many large images, is refused without reading or keeping the rest. The body size and
the slow-body rules are :func:`~quasar.scale.http.read_body`'s. Every part counts toward ``max_files``;
parts without a filename and with an empty body (form fields) are then skipped, any other part is a file.
A malformed body is a 400 whose one line says what the parser found.
"""

from __future__ import annotations

import logging

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from quasar.scale.http import Limits, PixelBudget, RequestError

logging.getLogger("python_multipart").setLevel(logging.CRITICAL)  # it also logs what it raises: one line is ours


def malformed(why: str) -> RequestError:
    return RequestError(400, f"malformed multipart body: {why}")


def too_many(limits: Limits) -> RequestError:
    return RequestError(400, f"too many files: more than {limits.max_files} in one request (the service's --max-files)")


class MultipartReader:
    """``feed(chunk)`` as the body arrives, then ``finish()`` -> ``[(filename or field name, bytes)]``."""

    def __init__(self, content_type: str, limits: Limits) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary or len(boundary) > 200:
            raise malformed("the Content-Type has no boundary")
        self.limits, self.budget = limits, PixelBudget(limits)
        self.files: list[tuple[str, bytes]] = []
        self.parts, self.fed, self.ended = 0, 0, False
        self._field, self._value = bytearray(), bytearray()
        self._disposition = b""
        self._data = bytearray()
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_part_data": self._part_data, "on_part_end": self._part_end, "on_end": self._end})

    def feed(self, chunk: bytes) -> None:
        self.fed += len(chunk)
        try:
            self.parser.write(chunk)
        except MultipartParseError as e:
            if self.parts == 0 and self.parser.state in (MultipartState.START, MultipartState.START_BOUNDARY):
                raise malformed("the body does not start with the boundary") from None
            raise malformed(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    def finish(self) -> list[tuple[str, bytes]]:
        if self.fed == 0:
            raise RequestError(400, "empty body: send one image as the body, or several as multipart/form-data")
        if not self.ended:
            raise malformed("no closing boundary")
        if not self.files:
            raise malformed("no file parts found")
        return self.files

    # ---------------------------------------------------------------- python-multipart's callbacks
    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_files:
            raise too_many(self.limits)
        self._disposition, self._data = b"", bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._field).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _part_end(self) -> None:
        _, params = parse_options_header(self._disposition)
        filename, field = params.get(b"filename"), params.get(b"name")
        data, self._data = bytes(self._data), bytearray()
        if filename is None and not data:
            return  # an empty form field
        name = (filename or field or b"").decode("utf-8", "replace") or f"part {len(self.files)}"
        self.budget.add(data)
        self.files.append((name, data))

    def _end(self) -> None:
        self.ended = True
