"""``quasar.client`` against a tiny scripted stdlib HTTP server (no Ray): retries honouring Retry-After,
the bearer token, batching bounds, per-file errors, one-line failures, and ``quasar score --url``'s checks.
The real service: tests/test_client_serve.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quasar.cli import main
from quasar.client import ServiceClient
from quasar.client.multipart import encode, part_name
from quasar.client.transport import retry_after
from quasar.errors import QuasarError

HEADS = {"heads": ["quality", "sharpness", "noise"], "summary_heads": ["quality"],
         "explain_heads": ["sharpness", "noise"], "model": "fake.onnx"}


def split_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """A test's own multipart reader (the client's encoder is what is under test)."""
    boundary = content_type.split("boundary=", 1)[1].encode()
    out = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        name = head.decode().split('filename="', 1)[1].split('"', 1)[0]
        out.append((name, data[:-2]))
    return out


def score_of(data: bytes) -> dict:
    if data.startswith(b"bad"):
        return {"error": "not an image: starts with b'bad'"}
    return {"scores": {"quality": len(data) / 1000, "sharpness": 0.5, "noise": 0.25}}


class Fake:
    """The server's script: ``answers`` (status, headers, body) for the next POSTs, then real-looking scores."""

    def __init__(self, limits: dict | None = None) -> None:
        self.answers: list[tuple[int, dict, dict]] = []
        self.requests: list[dict] = []  # method, path, headers, files
        self.limits = limits or {"max_files": 64, "max_body_bytes": 1 << 20, "max_request_pixels": 10**9}
        self.lock = threading.Lock()
        self.drop_idle = False
        self.decide = None  # files -> (status, headers, body), instead of the script


@pytest.fixture
def fake():
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the service's proxy

        def log_message(self, *a):
            pass

        def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if state.drop_idle:  # as an idle timeout does: closed after the answer, without saying so
                self.close_connection = True

        def do_GET(self):
            with state.lock:
                state.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
            if self.path == "/metadata":
                return self._answer(200, {**HEADS, "limits": state.limits})
            return self._answer(200, {"status": "ok"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            files = split_parts(self.headers["Content-Type"], body)
            with state.lock:
                state.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers),
                                       "files": files})
                scripted = state.answers.pop(0) if state.answers else None
            if state.decide is not None:
                scripted = state.decide(files)
            if scripted is not None:
                return self._answer(scripted[0], scripted[2], scripted[1])
            if any(d.startswith(b"whole") for _, d in files):
                return self._answer(413, {"error": "request over 10 pixels in all"})
            self._answer(200, {"results": [{"name": n, **score_of(d)} for n, d in files]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def client(fake, **kw) -> ServiceClient:
    c = ServiceClient(fake.url, **kw)
    c.waits = []
    c.transport.sleep = c.waits.append
    return c


def posts(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST"]


def test_503_then_200_waits_retry_after_and_scores(fake, tmp_path):
    fake.answers = [(503, {"Retry-After": "3"}, {"error": "busy: too many request bodies arriving slowly"}),
                    (429, {"Retry-After": "1"}, {"error": "too many requests"})]
    (tmp_path / "a.jpg").write_bytes(b"x" * 500)
    with client(fake) as c:
        (rec,) = c.score([str(tmp_path / "a.jpg")])
    assert c.waits == [3.0, 1.0]  # the service's Retry-After, not the client's own backoff
    assert rec.ok and rec.scores == {"quality": 0.5, "sharpness": 0.5, "noise": 0.25}
    assert rec.source == str(tmp_path / "a.jpg") and len(posts(fake)) == 3


def test_without_retry_after_the_backoff_doubles_and_gives_up_in_one_line(fake):
    fake.answers = [(503, {}, {"error": "busy"})] * 4
    with client(fake, retries=3, backoff_s=1.0, max_backoff_s=3.0) as c:
        with pytest.raises(QuasarError) as e:
            c.score([b"x" * 10])
    assert len(c.waits) == 3  # jittered: half to all of 1, 2, 4 s, capped at max_backoff_s
    assert 0.5 <= c.waits[0] <= 1.0 and 1.0 <= c.waits[1] <= 2.0 and 2.0 <= c.waits[2] <= 3.0
    msg = str(e.value)
    assert "\n" not in msg and "503 busy" in msg and "gave up after 4 tries" in msg and fake.url in msg


def test_retry_after_forms():
    assert retry_after("2") == 2.0 and retry_after(" 0 ") == 0.0 and retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: at once


def test_bearer_token_is_sent_and_none_without_one(fake):
    with client(fake, token="s3cret") as c:
        c.score([b"x" * 10])
    assert {r["headers"].get("Authorization") for r in fake.requests} == {"Bearer s3cret"}
    fake.requests.clear()
    with client(fake) as c:
        c.score([b"x" * 10])
    assert all("Authorization" not in r["headers"] for r in fake.requests)


def test_refused_token_is_one_line(fake):
    fake.answers = [(401, {}, {"error": "unauthorized"})]
    with client(fake, token="wrong") as c:
        with pytest.raises(QuasarError, match=r"401 unauthorized \(give the service's token with --token-file"):
            c.score([b"x" * 10])


def test_batches_are_bounded_by_files_and_bytes_and_the_service_limits(fake):
    fake.limits = {"max_files": 3, "max_body_bytes": 1 << 20}
    data = [bytes([65 + i]) * 1000 for i in range(7)]
    with client(fake, batch_files=10) as c:  # the service's max_files (3) wins
        recs = c.score(data)
    assert sorted(len(r["files"]) for r in posts(fake)) == [1, 3, 3]  # two requests in flight: any order
    assert [r.scores["quality"] for r in recs] == [1.0] * 7 and [r.source for r in recs] == [
        f"<bytes {i}>" for i in range(7)]
    fake.requests.clear()
    with client(fake, batch_files=10, batch_bytes=2500) as c:  # two 1000-byte files (+ headers) per request
        c.score(data)
    assert sorted(len(r["files"]) for r in posts(fake)) == [1, 2, 2, 2]


def test_a_bad_file_gets_its_error_and_the_rest_score_in_order(fake, tmp_path):
    paths = []
    for i, data in enumerate([b"x" * 100, b"bad one", b"y" * 300, None, b"whole request refused", b"z" * 50]):
        p = tmp_path / f"{i}.jpg"
        if data is not None:
            p.write_bytes(data)
        paths.append(str(p))
    with client(fake, concurrency=3) as c:
        recs = c.score(paths)
    assert [r.source for r in recs] == paths
    assert [r.ok for r in recs] == [True, False, True, False, False, True]
    assert recs[1].error == "not an image: starts with b'bad'"
    assert recs[3].error == "file not found"  # read here, as local scoring says it
    assert recs[4].error == "request over 10 pixels in all"  # refused as a whole: resent alone
    assert [r.scores["quality"] for r in recs if r.ok] == [0.1, 0.3, 0.05]


def test_too_large_a_file_is_not_sent(fake):
    fake.limits = {"max_files": 4, "max_body_bytes": 4000}
    with client(fake) as c:
        big, small = c.score([b"x" * 5000, b"y" * 100])
    assert "over the service's request limit" in big.error and small.ok
    assert [len(r["files"]) for r in posts(fake)] == [1]


def test_multipart_names_and_boundary():
    assert part_name("/a/b/ph\u00f6to \"1\".jpg", 0) == "ph_to__1_.jpg" and part_name("", 3) == "part-3"
    ct, body = encode([("a.jpg", b"1"), ("b.png", b"22")])
    assert split_parts(ct, body) == [("a.jpg", b"1"), ("b.png", b"22")]


def test_unreachable_service_is_one_line():
    with pytest.raises(QuasarError, match="not an http"):
        ServiceClient("ftp://example/x")
    c = ServiceClient("http://127.0.0.1:9", retries=1)  # the discard port: nothing listens
    c.transport.sleep = lambda s: None
    with pytest.raises(QuasarError) as e:
        c.health()
    assert "\n" not in str(e.value) and "gave up after 2 tries" in str(e.value)


def test_score_url_writes_csv_and_resumes(fake, tmp_path, capsys):
    paths = []
    for i, data in enumerate([b"x" * 100, b"bad", b"y" * 200]):
        (tmp_path / f"{i}.jpg").write_bytes(data)
        paths.append(str(tmp_path / f"{i}.jpg"))
    out = tmp_path / "out.csv"
    assert main(["score", "--url", fake.url, "-q", "-o", str(out), *paths[:2]]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "path,quality,error" and lines[1] == f"{paths[0]},0.100000,"
    assert lines[2] == f"{paths[1]},,not an image: starts with b'bad'"
    n = len(posts(fake))
    assert main(["score", "--url", fake.url, "-q", "--resume", "-o", str(out), *paths]) == 0
    assert out.read_text().splitlines()[3:] == [f"{paths[2]},0.200000,"]
    assert [f for r in posts(fake)[n:] for f, _ in r["files"]] == ["2.jpg"]  # only the new path was sent
    out2 = tmp_path / "out.jsonl"
    assert main(["score", "--url", fake.url, "-q", "--explain", "-o", str(out2), paths[0]]) == 0
    row = json.loads(out2.read_text())
    assert row == {"path": paths[0], "quality": 0.1, "sharpness": 0.5, "noise": 0.25, "reason": "noise", "error": None}


def test_score_url_token_file_and_option_checks(fake, tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(b"x" * 10)
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    assert main(["score", "--url", fake.url, "--token-file", str(token), "-q", str(tmp_path / "a.jpg")]) == 0
    assert fake.requests[-1]["headers"]["Authorization"] == "Bearer tok-1"
    capsys.readouterr()
    for argv, text in [(["--token-file", str(token)], "--token-file needs --url"),
                       (["--url", fake.url, "--model", "m.onnx"], "--model cannot be combined with --url"),
                       (["--url", fake.url, "--ray"], "--ray cannot be combined with --url"),
                       (["--url", fake.url, "--token-file", str(tmp_path / "none")], "cannot read it")]:
        assert main(["score", *argv, str(tmp_path / "a.jpg")]) == 2
        err = capsys.readouterr().err.strip()
        assert text in err and "\n" not in err, err



def test_a_fatal_answer_stops_the_other_requests_at_once(fake):
    """The first file's request gets a 500 (fatal) once the second's was answered 503 with a 30 s Retry-After:
    score() raises the 500 and the second's wait is cut short (cancelled), not sat out."""
    busy_sent = threading.Event()

    def decide(files):
        if files[0][1].startswith(b"b"):
            busy_sent.set()
            return 503, {"Retry-After": "30"}, {"error": "busy"}
        busy_sent.wait(20)
        return 500, {}, {"error": "internal error: boom"}

    fake.limits = {"max_files": 1, "max_body_bytes": 1 << 20}
    fake.decide = decide
    completed = []
    with ServiceClient(fake.url, concurrency=2) as c:
        orig = c.transport.sleep

        def sleep(s):
            orig(s)
            completed.append(s)

        c.transport.sleep = sleep
        with pytest.raises(QuasarError, match="500 internal error: boom"):
            c.score([b"a" * 10, b"b" * 10])
    assert completed == []


def test_a_kept_alive_connection_closed_by_the_service_is_replaced_without_a_retry(fake):
    fake.drop_idle = True
    with client(fake) as c:
        c.health()
        (a,) = c.score([b"x" * 10])
        (b,) = c.score([b"y" * 20])
    assert a.ok and b.ok and c.waits == []  # every request on a fresh connection, none counted as failed
