"""The service's request rules (quasar.scale.http), without Ray: what is accepted, what is refused and how."""

from __future__ import annotations

import asyncio

import pytest
from fixtures_images import png_header_only

from quasar.runtime.scorer import ScoreRecord
from quasar.scale.fair import FairBatcher, FairQueue
from quasar.scale.http import (
    Limits,
    RequestError,
    SlowReads,
    check_length,
    check_request_pixels,
    read_body,
    record_json,
    split_files,
)

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


def test_multipart_refusals():
    refused(400, "too many files: more than 2", CT, multipart([("f", f"{i}.png", b"x") for i in range(3)]),
            Limits(max_files=2))
    assert len(split_files(CT, multipart([("f", f"{i}.png", b"x") for i in range(2)]), Limits(max_files=2))) == 2
    refused(400, "no boundary", "multipart/form-data", b"--x\r\n", Limits())
    refused(400, "does not start with the boundary", CT, b"no delimiter here", Limits())
    refused(400, "no closing boundary", CT, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nxx".encode(),
            Limits())
    refused(400, "^malformed multipart body: .*header", CT, f"--{BOUNDARY}\r\nxx\r\n--{BOUNDARY}--".encode(), Limits())
    refused(400, "no file parts", CT, multipart([("note", None, b"")]), Limits())
    refused(400, "^empty body", CT, b"", Limits())


async def _counted(parts: list[bytes], seen: list[int]):
    """A body stream that records how many of its chunks were taken."""
    for i, p in enumerate(parts):
        seen.append(i)
        yield p


def _stream_multipart(chunks: list[bytes], limits: Limits, seen: list[int]):
    from quasar.scale.multipart import MultipartReader

    reader = MultipartReader(CT, limits)
    asyncio.run(read_body(_counted(chunks, seen), limits, SlowReads(), sink=reader.feed))
    return reader.finish()


def _parts(bodies: list[bytes]) -> list[bytes]:
    """One chunk per part (its delimiter and headers and data), then the closing delimiter."""
    close = f"--{BOUNDARY}--\r\n".encode()
    return [b[: b.rindex(close)] for b in bodies] + [close]


def test_many_tiny_parts_are_refused_while_reading_not_after():
    """The part after the max_files-th is refused as it begins: the body's later chunks are never read
    (the hand-written parser had the whole body in memory before it counted)."""
    chunks = _parts([multipart([("f", "x.png", b"x")])] * 50_000)
    seen: list[int] = []
    with pytest.raises(RequestError, match="too many files: more than 64") as e:
        _stream_multipart(chunks, Limits(), seen)
    assert e.value.status == 400 and len(seen) == 65
    seen.clear()
    assert len(_stream_multipart(chunks[:64] + chunks[-1:], Limits(), seen)) == 64


def test_multipart_pixel_budget_is_applied_as_each_part_ends():
    limits = Limits(max_request_pixels=3_000_000, max_pixels=20_000_000)
    chunks = _parts([multipart([("f", f"{i}.png", png_header_only(1000, 1000))]) for i in range(10)])
    seen: list[int] = []
    with pytest.raises(RequestError, match="request over 3000000 pixels in all") as e:
        _stream_multipart(chunks, limits, seen)
    assert e.value.status == 413 and len(seen) == 5  # the 4th part ends when the 5th chunk's delimiter arrives


def test_urlencoded_body_that_is_an_image_is_accepted_else_refused_with_the_curl_fix():
    """What ``curl --data-binary @photo.jpg`` sends without -H: before, a 415 for every such body."""
    png = png_header_only(10, 10)
    assert split_files("application/x-www-form-urlencoded", png, Limits()) == [("image", png)]
    jpg = b"\xff\xd8\xff\xe0" + b"\0" * 20
    assert split_files("application/x-www-form-urlencoded; charset=utf-8", jpg, Limits()) == [("image", jpg)]
    refused(415, "Content-Type: image/jpeg", "application/x-www-form-urlencoded", b"a=1&b=2", Limits())


def test_record_json():
    ok = ScoreRecord("a", {"quality": 0.5}, {"quality": 0.1}, warning="tiny image")
    assert record_json(ok) == {"scores": {"quality": 0.5}, "warning": "tiny image"}
    assert record_json(ok, margins=True)["margins"] == {"quality": 0.1}
    assert record_json(ScoreRecord("b", error="not an image")) == {"error": "not an image"}


# ---------------------------------------------------------------- slow bodies, pixel budget (issue 21, 11-12)

async def _chunks(parts: list[bytes], stall: asyncio.Event | None = None):
    """A body stream: ``parts`` at once, then (``stall``) nothing more until the event is set."""
    for p in parts:
        yield p
    if stall is not None:
        await stall.wait()


def test_slow_bodies_get_408_or_503_with_retry_after_and_quick_ones_are_read():
    limits = Limits(read_grace_s=0.05, read_timeout_s=0.5, max_slow_reads=1)

    async def scenario():
        slow, never = SlowReads(), asyncio.Event()
        first = asyncio.ensure_future(read_body(_chunks([b"a"], never), limits, slow))  # a byte, then silence
        await asyncio.sleep(0.2)  # past its grace: it holds the one slow-read place
        assert slow.count == 1
        results = await asyncio.gather(read_body(_chunks([b"b"], never), limits, slow),  # slow too: no place
                                       read_body(_chunks([b"x" * 10, b"y" * 5]), limits, slow),  # all there
                                       first, return_exceptions=True)
        return results, slow.count

    (busy, quick, timed_out), left = asyncio.run(scenario())
    assert quick == b"x" * 10 + b"y" * 5 and left == 0
    assert isinstance(busy, RequestError) and busy.status == 503 and busy.reason.startswith("busy")
    assert isinstance(timed_out, RequestError) and timed_out.status == 408
    assert "request body not received" in timed_out.reason
    assert busy.headers["Retry-After"] == timed_out.headers["Retry-After"] == "1"


def test_body_over_the_limit_is_413_while_reading():
    limits = Limits(max_body_bytes=8)
    with pytest.raises(RequestError, match="request body over") as e:
        asyncio.run(read_body(_chunks([b"12345", b"67890"]), limits, SlowReads()))
    assert e.value.status == 413


def test_request_pixel_budget_is_413_from_the_headers():
    limits = Limits(max_request_pixels=3_000_000, max_pixels=2_000_000)
    parts = [("a", png_header_only(1000, 1000)), ("b", png_header_only(1000, 1000)), ("c", b"not an image"),
             ("bomb", png_header_only(5000, 5000))]
    check_request_pixels(parts, limits)  # 2 MP; the unreadable part and the bomb fail on their own
    with pytest.raises(RequestError, match="request over 3000000 pixels in all") as e:
        check_request_pixels([*parts, ("d", png_header_only(2000, 1000))], limits)
    assert e.value.status == 413 and "\n" not in e.value.reason


def test_fair_queue_takes_from_each_client_and_request_in_turn():
    q = FairQueue()
    q.put("10.0.0.1", [f"big{i}" for i in range(64)])  # one client's 64-image request first
    q.put("10.0.0.2", ["small"])  # then another client's one image
    q.put("10.0.0.1", ["second"])  # and a second request of the first client
    assert q.take(3) == ["big0", "small", "second"]
    assert q.take(2) == ["big1", "big2"] and q.size == 61


def test_fair_batcher_scores_a_late_small_request_before_a_big_one_is_done():
    batches: list[list] = []

    def score(items: list) -> list:
        batches.append(items)
        return [f"scored {x}" for x in items]

    async def scenario():
        b = FairBatcher(score, max_batch=4, wait_s=0.01, concurrency=1)
        big = asyncio.ensure_future(b.submit("a", [f"big{i}" for i in range(32)]))
        await asyncio.sleep(0)  # the big request is queued first
        small = await b.submit("b", ["small"])
        return small, big.done(), await big

    small, big_done_first, big = asyncio.run(scenario())
    assert small == ["scored small"] and not big_done_first
    assert big == [f"scored big{i}" for i in range(32)]
    assert any("small" in batch for batch in batches[:2]), batches[:3]  # not behind all 32


def test_a_body_with_no_bytes_in_yet_is_not_slow_but_ends_at_the_read_timeout():
    """A busy machine can deliver a normal body late: before its first bytes it takes no slow-read place."""
    limits = Limits(read_grace_s=0.05, read_timeout_s=0.3, max_slow_reads=0)  # no place at all

    async def scenario():
        slow = SlowReads()
        return await read_body(_chunks([], asyncio.Event()), limits, slow), slow.count

    with pytest.raises(RequestError) as e:
        asyncio.run(scenario())
    assert e.value.status == 408  # not 503: it was never counted slow
