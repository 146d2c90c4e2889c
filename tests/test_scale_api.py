"""The service's HTTP API (quasar.scale.api) without Ray: the FastAPI app of one ScoringService on the tiny
model, served by uvicorn in a thread on a free local port. Schema, metrics, access log and request id,
tokens, CORS, readiness, curl's default content type. (On Ray Serve: tests/test_scale_serve.py.)"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from fixtures_images import encode, pattern
from test_scale_http import CT, multipart

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

TOKEN = "tok-" + "x" * 28


def call(url: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, headers with lower-case names, body bytes)."""
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def jcall(*args, **kw) -> tuple[int, dict]:
    status, _, body = call(*args, **kw)
    return status, json.loads(body)


class Served:
    """A ScoringService behind the API on uvicorn, on a free port, until ``stop()``."""

    def __init__(self, model: str, **options) -> None:
        import uvicorn

        from quasar.scale.api import build_api
        from quasar.scale.service import ScoringService, ServiceOptions

        self.service = ScoringService(model, ServiceOptions(max_batch_size=8, batch_wait_ms=20, workers=1, threads=1,
                                                            **options))
        config = uvicorn.Config(build_api(self.service), host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.service.close()


@pytest.fixture(scope="module")
def plain(tiny):
    s = Served(tiny)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def guarded(tiny):
    s = Served(tiny, token_digests=(__import__("quasar.scale.auth", fromlist=["digest"]).digest(TOKEN),),
               cors_origins=("https://photos.example",))
    yield s
    s.stop()


PNG = encode(pattern(120, 160), ".png")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "replica"))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_count_requests_images_stages_batches_and_in_flight(tiny):
    """A fresh service: 2 one-image requests, a multipart of 3 (one not an image), a 415, then /metrics."""
    s = Served(tiny)
    try:
        assert call(s.url + "/score", PNG, {"Content-Type": "image/png"})[0] == 200
        assert call(s.url + "/score", PNG, {"Content-Type": "image/png"})[0] == 200
        body = multipart([("a", "a.png", PNG), ("b", "b.png", b"not an image"), ("c", "c.png", PNG)])
        assert call(s.url + "/score", body, {"Content-Type": CT})[0] == 200
        assert call(s.url + "/score", b"{}", {"Content-Type": "application/json"})[0] == 415
        status, headers, text = call(s.url + "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        m = samples(text.decode())
        calls = s.service.stats["scorer_calls"]
    finally:
        s.stop()
    assert m[("quasar_requests_total", (("endpoint", "/score"), ("status", "200")))] == 3
    assert m[("quasar_requests_total", (("endpoint", "/score"), ("status", "415")))] == 1
    assert m[("quasar_images_scored_total", (("outcome", "ok"),))] == 4
    assert m[("quasar_images_scored_total", (("outcome", "error"),))] == 1
    assert m[("quasar_stage_seconds_count", (("stage", "queue"),))] == 5
    assert m[("quasar_stage_seconds_count", (("stage", "decode"),))] == 5
    assert 1 <= m[("quasar_stage_seconds_count", (("stage", "model"),))] <= calls
    assert m[("quasar_batch_size_count", ())] == calls and m[("quasar_batch_size_sum", ())] == 5
    assert m[("quasar_requests_in_flight", ())] == 1  # the /metrics request itself
    assert m[("quasar_request_seconds_count", (("endpoint", "/score"),))] == 4


def test_openapi_documents_score_with_examples(plain):
    status, schema = jcall(plain.url + "/openapi.json")
    assert status == 200
    post = schema["paths"]["/score"]["post"]
    body = post["requestBody"]["content"]
    assert {"image/jpeg", "application/octet-stream", "multipart/form-data"} <= set(body)
    assert body["multipart/form-data"]["example"] and body["image/jpeg"]["example"]
    ok = post["responses"]["200"]["content"]["application/json"]
    assert set(ok["examples"]) == {"one image", "multipart"}
    assert {"400", "401", "408", "413", "415", "503"} <= set(post["responses"])
    assert post["responses"]["413"]["content"]["application/json"]["example"]["error"].startswith("request body over")
    assert {"ScoreResult", "MultiResult", "ErrorBody"} <= set(schema["components"]["schemas"])
    assert {"/healthz", "/readyz", "/metadata", "/metrics"} <= set(schema["paths"])
    status, headers, page = call(plain.url + "/docs")
    assert status == 200 and b"swagger" in page.lower()


def test_request_id_header_and_one_json_access_log_line_per_request(plain):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("quasar.serve.access")
    log.addHandler(handler)
    try:
        status, headers, _ = call(plain.url + "/score", PNG, {"Content-Type": "image/png", "X-Request-Id": "job-7.1"})
        status2, headers2, _ = call(plain.url + "/nope")
    finally:
        log.removeHandler(handler)
    assert status == 200 and headers["x-request-id"] == "job-7.1"
    assert status2 == 404 and re.fullmatch(r"[0-9a-f]{32}", headers2["x-request-id"])
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    assert records[0]["request_id"] == "job-7.1" and records[0]["status"] == 200 and records[0]["images"] == 1
    assert records[0]["path"] == "/score" and records[0]["method"] == "POST" and records[0]["ms"] > 0
    assert records[1]["request_id"] == headers2["x-request-id"] and records[1]["status"] == 404


def test_bearer_token_401_without_details_200_with_the_right_one(guarded):
    url = guarded.url + "/score"
    answers = [call(url, PNG, {"Content-Type": "image/png", **h}) for h in
               ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": TOKEN},
                {"Authorization": "Basic " + TOKEN})]
    for status, headers, body in answers:
        assert status == 401 and json.loads(body) == {"error": "unauthorized"}
        assert headers["www-authenticate"] == "Bearer"
    status, body = jcall(url, PNG, {"Content-Type": "image/png", "Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and set(body["scores"]) == {"quality", "aesthetics"}
    assert call(guarded.url + "/metrics")[0] == 401 and call(guarded.url + "/metadata")[0] == 401
    assert call(guarded.url + "/healthz")[0] == 200 and call(guarded.url + "/readyz")[0] == 200  # probes stay open


def test_cors_is_off_by_default_and_on_for_the_given_origin(plain, guarded):
    preflight = {"Origin": "https://photos.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    _, headers, _ = call(plain.url + "/score", None, preflight, method="OPTIONS")
    assert "access-control-allow-origin" not in headers
    _, headers, _ = call(plain.url + "/healthz", None, {"Origin": "https://photos.example"})
    assert "access-control-allow-origin" not in headers
    status, headers, _ = call(guarded.url + "/score", None, preflight, method="OPTIONS")  # no token: preflight
    assert status == 200 and headers["access-control-allow-origin"] == "https://photos.example"
    status, headers, _ = call(guarded.url + "/score", None, {**preflight, "Origin": "https://evil.example"},
                              method="OPTIONS")
    assert "access-control-allow-origin" not in headers


def test_readyz_says_ready_and_not_ready_when_the_replica_shuts_down(tiny):
    s = Served(tiny)
    try:
        assert jcall(s.url + "/readyz") == (200, {"status": "ready", "replicas": None})
        s.service.close()  # what Serve's shutdown of the replica does
        status, body = jcall(s.url + "/readyz")
        assert status == 503 and body["status"] == "not ready: shutting down"
        assert jcall(s.url + "/healthz") == (200, {"status": "ok"})  # alive, just not ready
    finally:
        s.stop()


def test_urlencoded_body_that_is_an_image_is_scored(plain):
    """``curl --data-binary @photo.png URL`` without -H: application/x-www-form-urlencoded."""
    want = jcall(plain.url + "/score", PNG, {"Content-Type": "image/png"})
    got = jcall(plain.url + "/score", PNG, {"Content-Type": "application/x-www-form-urlencoded"})
    assert got == want and want[0] == 200
    status, body = jcall(plain.url + "/score", b"name=photo.png", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "-H 'Content-Type: image/jpeg'" in body["error"]


def test_errors_stay_one_line_json_under_the_framework(plain):
    assert jcall(plain.url + "/score") == (405, {"error": "GET not allowed here: use POST"})
    status, body = jcall(plain.url + "/nope", b"x", {"Content-Type": "image/png"})
    assert status == 404 and body["error"].startswith("no endpoint '/nope'") and "\n" not in body["error"]
    status, body = jcall(plain.url + "/score", b"no boundary in here", {"Content-Type": CT})
    assert status == 400 and body["error"].startswith("malformed multipart body")
