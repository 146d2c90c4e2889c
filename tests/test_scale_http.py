"""The service's request rules (quasar.scale.http), without Ray: what is accepted, what is refused and how."""

from __future__ import annotations

import pytest

from quasar.runtime.scorer import ScoreRecord
from quasar.scale.http import Limits, RequestError, check_length, parse_multipart, record_json, split_files

BOUNDARY = "----quasar-test-7d1f"
CT = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body: (field name, filename or None, data) per part."""
    out = []
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: application/octet-stream\r\n\r\n"
                   .encode() + data + b"\r\n")
    return b"".join(out) + f"--{boundary}--\r\n".encode()


def refused(status: int, match: str, *args):
    with pytest.raises(RequestError, match=match) as e:
        split_files(*args)
    assert e.value.status == status


def test_one_image_body_and_content_types():
    assert split_files("image/jpeg", b"\xff\xd8abc", Limits()) == [("image", b"\xff\xd8abc")]
    assert split_files("application/octet-stream", b"x", Limits()) == [("image", b"x")]
    assert split_files(None, b"x", Limits()) == [("image", b"x")]
    refused(415, "unsupported content type 'text/plain'", "text/plain", b"x", Limits())
    refused(415, "unsupported content type 'application/json'", "application/json; charset=utf-8", b"{}", Limits())
    refused(400, "^empty body", "image/png", b"", Limits())


def test_size_limits():
    limits = Limits(max_body_bytes=10)
    refused(413, "request body over 10 bytes", "image/png", b"x" * 11, limits)
    assert split_files("image/png", b"x" * 10, limits)
    with pytest.raises(RequestError, match="over 10 bytes") as e:
        check_length("11", limits)  # refused from the header, before the body is read
    assert e.value.status == 413
    check_length("10", limits)
    check_length(None, limits)
    with pytest.raises(RequestError, match="bad Content-Length"):
        check_length("ten", limits)


def test_multipart_files_keep_their_bytes_and_names():
    blob = bytes(range(256)) * 8 + b"\r\n--not-the-boundary\r\n\r\n"  # binary, with CRLFs and dashes inside
    body = multipart([("a", "one.jpg", blob), ("b", None, b"field value"), ("note", None, b""), ("c", "two.png", b"2")])
    files = split_files(CT, body, Limits())
    assert files == [("one.jpg", blob), ("b", b"field value"), ("two.png", b"2")]  # empty form field skipped
    quoted = f'multipart/form-data; boundary="{BOUNDARY}"'
    assert split_files(quoted, body, Limits()) == files
    preamble = b"ignored preamble\r\n" + body
    assert split_files(CT, preamble, Limits()) == files


def test_multipart_refusals():
    refused(400, "too many files: more than 2", CT, multipart([("f", f"{i}.png", b"x") for i in range(3)]),
            Limits(max_files=2))
    assert len(split_files(CT, multipart([("f", f"{i}.png", b"x") for i in range(2)]), Limits(max_files=2))) == 2
    refused(400, "no boundary", "multipart/form-data", b"--x\r\n", Limits())
    refused(400, "boundary not found", CT, b"no delimiter here", Limits())
    refused(400, "no closing boundary", CT, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nxx".encode(),
            Limits())
    refused(400, "no header/body separator", CT, f"--{BOUNDARY}\r\nxx\r\n--{BOUNDARY}--".encode(), Limits())
    refused(400, "no file parts", CT, multipart([("note", None, b"")]), Limits())


def test_many_tiny_parts_are_counted_before_parsing():
    # the first part is malformed: a parser that walked the parts before counting would say so
    body = f"--{BOUNDARY}\r\nno separator\r\n".encode() + multipart([("f", "x", b"")] * 50_000)
    with pytest.raises(RequestError, match="too many files"):
        parse_multipart(CT, body, 64)
    with pytest.raises(RequestError, match="no header/body separator"):
        parse_multipart(CT, body, 100_000)


def test_record_json():
    ok = ScoreRecord("a", {"quality": 0.5}, {"quality": 0.1}, warning="tiny image")
    assert record_json(ok) == {"scores": {"quality": 0.5}, "warning": "tiny image"}
    assert record_json(ok, margins=True)["margins"] == {"quality": 0.1}
    assert record_json(ScoreRecord("b", error="not an image")) == {"error": "not an image"}
