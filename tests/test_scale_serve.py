"""The scoring service on Ray Serve: real images and bad requests over HTTP on a free local port.

One Serve instance for the module, on the session's Ray cluster (tests/conftest.py); its last test
stops it while a request is in flight and checks that the request is still answered.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fixtures_images import jpeg, pattern, png_header_only, truncated
from test_scale_http import multipart

from quasar.runtime import Scorer
from quasar.runtime.model import default_model_path
from quasar.scale.http import Limits, MiB

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

CT = "multipart/form-data; boundary=----quasar-test-7d1f"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_serve(address: str, args: list[str], log_path: Path):
    """``quasar serve`` as a user runs it: a subprocess joining the Ray cluster at ``address`` on a free local
    port, its output in ``log_path``; returns ``(process, url)`` once ``/healthz`` answers (3 min at most)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    log = open(log_path, "w+")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "quasar.cli", "serve", "--address", address,
                             "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    log.close()  # the child holds its own descriptor
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if request(url + "/healthz", timeout=5)[0] == 200:
                return proc, url
        except OSError:
            pass
        exited, late = proc.poll() is not None, time.monotonic() >= deadline
        if late and not exited:  # the caller never gets the process: stop it here
            proc.kill()
            proc.wait()
        assert not exited, Path(log_path).read_text()
        assert not late, "quasar serve did not come up"
        time.sleep(0.5)


def request(url: str, body: bytes | None = None, content_type: str | None = None, method: str | None = None,
            timeout: float = 60) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:  # not from the service (Serve's proxy answering for it): keep the text
            return e.code, {"not_json": text.decode("utf-8", "replace")}


def deploy(options, port: int | None = None) -> str:
    from quasar.scale import serve as service

    service.start(service.build_app(None, options, graceful_shutdown_s=30), "127.0.0.1", port or free_port())
    url = f"http://127.0.0.1:{_port()}"
    deadline = time.monotonic() + 120
    while True:
        try:
            status, body = request(url + "/healthz", timeout=5)
            if status == 200:
                return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the service did not answer /healthz within 120 s")
        time.sleep(0.25)


def _port() -> int:
    from ray.serve.context import _get_global_client

    return _get_global_client().http_config.port


@pytest.fixture(scope="module")
def service(ray_cluster):
    from quasar.scale.serve import ServiceOptions

    options = ServiceOptions(max_batch_size=8, batch_wait_ms=20,
                             limits=Limits(max_body_bytes=2 * MiB, max_files=4, max_pixels=20_000_000))
    url = deploy(options)
    yield url
    from ray import serve

    serve.shutdown()


@pytest.fixture(scope="module")
def images(photos):
    """Encoded real photos (JPEG and PNG) and what the local scorer says about them."""
    data = []
    for i, p in enumerate(photos[:6]):
        raw = open(p.path, "rb").read()
        data.append(raw if i % 2 else jpeg(__import__("cv2").imread(p.path)[:, :, ::-1]))
    with Scorer() as s:
        return data, [r.scores for r in s.score(data)]


def close(a: dict, b: dict, tol: float = 1e-5) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= tol for k in a)


def test_health_and_metadata(service):
    assert request(service + "/healthz") == (200, {"status": "ok"})
    status, meta = request(service + "/metadata")
    with Scorer() as s:
        assert meta["heads"] == list(s.heads) and meta["preprocess"] == s.info.preprocess
        assert meta["precision"] == s.info.precision and meta["model"] in s.model_path
    assert meta["batching"]["max_batch_size"] == 8 and meta["limits"]["max_files"] == 4


def test_ingress_serves_schema_metrics_readyz_and_request_ids(service, images):
    """The FastAPI ingress on Serve's port: /openapi.json, /metrics counting what was asked, /readyz with
    the app's replicas, one X-Request-Id (Serve's proxy's, the client's when it sends one)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, schema = request(service + "/openapi.json")
    assert status == 200 and "/score" in schema["paths"] and "multipart/form-data" in \
        schema["paths"]["/score"]["post"]["requestBody"]["content"]
    assert request(service + "/readyz") == (200, {"status": "ready", "replicas": {"running": 1, "total": 1}})
    data, _ = images
    req = urllib.request.Request(service + "/score", data=data[0], headers={"Content-Type": "image/jpeg",
                                                                           "X-Request-Id": "client-id-1"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200 and r.headers.get_all("X-Request-Id") == ["client-id-1"]
    assert request(service + "/score", b"", "image/jpeg")[0] == 400
    with urllib.request.urlopen(service + "/metrics", timeout=60) as r:
        text = r.read().decode()
    got = {(s.name, s.labels.get("endpoint") or s.labels.get("outcome"), s.labels.get("status")): s.value
           for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert got[("quasar_requests_total", "/score", "200")] >= 1 and got[("quasar_requests_total", "/score", "400")] >= 1
    assert got[("quasar_images_scored_total", "ok", None)] >= 1


def test_one_image_and_multipart_score_like_local(service, images):
    data, want = images
    status, body = request(service + "/score", data[0], "image/jpeg")
    assert status == 200 and close(body["scores"], want[0]) and "margins" not in body
    status, body = request(service + "/score?margins=1", data[1], "application/octet-stream")
    assert status == 200 and close(body["scores"], want[1]) and set(body["margins"]) == set(want[1])
    parts = [("a", "one.jpg", data[2]), ("b", "bad.png", b"not an image"), ("c", "three.png", data[3])]
    status, body = request(service + "/score", multipart(parts), CT)
    assert status == 200 and [r["name"] for r in body["results"]] == ["one.jpg", "bad.png", "three.png"]
    assert close(body["results"][0]["scores"], want[2]) and close(body["results"][2]["scores"], want[3])
    assert body["results"][1]["error"].startswith("not an image")


BAD = [  # (what, body, content type, status, reason starts with / contains)
    ("empty body", b"", "image/png", 400, "empty body"),
    ("not an image (a PDF)", b"%PDF-1.4\n" + b"x" * 200, "application/octet-stream", 400, "not an image"),
    ("plain text", b"hello", "image/jpeg", 400, "not an image"),
    ("truncated JPEG", truncated(jpeg(pattern(400, 600)), 0.3), "image/jpeg", 400, "truncated JPEG"),
    ("decompression bomb", png_header_only(50_000, 50_000), "image/png", 400, "decompression-bomb"),
    ("oversized body", b"\xff\xd8" + b"\0" * (3 * MiB), "image/jpeg", 413, "request body over"),
    ("wrong content type", b"{}", "application/json", 415, "unsupported content type"),
    ("too many files", multipart([("f", f"{i}.png", b"x") for i in range(5)]), CT, 400, "too many files"),
    ("malformed multipart", b"no boundary in here", CT, 400, "malformed multipart"),
]


@pytest.mark.parametrize("what,body,ctype,status,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_json_errors(service, what, body, ctype, status, reason):
    got, answer = request(service + "/score", body, ctype)
    assert got == status and set(answer) == {"error"} and reason in answer["error"], (what, answer)


def test_wrong_method_and_path_and_the_replica_survives(service, images):
    assert request(service + "/score")[0] == 405
    assert request(service + "/nope", b"x", "image/png")[0] == 404
    data, want = images
    for what, body, ctype, _, _ in BAD:  # all of them again, back to back
        assert request(service + "/score", body, ctype)[0] in (400, 413, 415), what
    status, body = request(service + "/score", data[0], "image/jpeg")
    assert status == 200 and close(body["scores"], want[0])


def test_concurrent_requests_are_batched_and_score_like_local(service, images):
    data, want = images
    jobs = [(data[i % len(data)], want[i % len(data)]) for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda j: request(service + "/score", j[0], "image/png"), jobs))
    for (status, body), (_, w) in zip(results, jobs, strict=True):
        assert status == 200 and close(body["scores"], w)
    stats = request(service + "/metadata")[1]["stats"]
    assert stats["largest_batch"] > 1, stats  # 12 clients at once: images were scored together


def _slow_client(port: int) -> socket.socket:
    """A client that sends its headers and 2 bytes of a 1000-byte body, then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=90)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
              b"Content-Length: 1000\r\n\r\n\xff\xd8")
    return s


def _status_and_headers(s: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def test_slow_bodies_get_408_or_503_while_others_are_answered(service, images):
    from quasar.scale.serve import ServiceOptions

    limits = Limits(read_timeout_s=5, read_grace_s=0.5, max_slow_reads=2)
    deploy(ServiceOptions(max_batch_size=8, batch_wait_ms=20, limits=limits), port=_port())
    slow = [_slow_client(_port()) for _ in range(6)]
    assert request(service + "/healthz", timeout=30) == (200, {"status": "ok"})  # not queued behind them
    data, want = images
    status, body = request(service + "/score", data[0], "image/jpeg", timeout=60)
    assert status == 200 and close(body["scores"], want[0])
    answers = sorted((_status_and_headers(s) for s in slow), key=lambda a: a[0])  # each given up, answered
    assert [a[0] for a in answers] == [408, 408, 503, 503, 503, 503], answers
    assert all(h.get("retry-after") == "1" for _, h in answers), answers


def test_a_big_request_does_not_hold_back_a_small_one(service, images):
    from quasar.scale.serve import ServiceOptions

    limits = Limits(max_body_bytes=32 * MiB, max_files=64, max_pixels=20_000_000, max_request_pixels=200_000_000)
    deploy(ServiceOptions(max_batch_size=2, batch_wait_ms=5, batch_concurrency=1, limits=limits), port=_port())
    bombs = multipart([("f", f"{i}.png", png_header_only(5000, 3900)) for i in range(11)])  # 11 x 19.5 MP
    status, body = request(service + "/score", bombs, CT)
    assert status == 413 and body["error"].startswith("request over 200000000 pixels in all"), body
    data, want = images
    big = multipart([("f", f"{i}.jpg", jpeg(pattern(1500, 2000, seed=i))) for i in range(48)])  # 144 MP
    finished: list[str] = []

    def send(name: str, body: bytes, ctype: str):
        out = request(service + "/score", body, ctype, timeout=300)
        finished.append(name)
        return out

    with ThreadPoolExecutor(2) as pool:
        big_done = pool.submit(send, "big", big, CT)
        deadline = time.monotonic() + 120
        while request(service + "/metadata")[1]["stats"]["scorer_calls"] == 0:  # the big one is being scored
            assert time.monotonic() < deadline and not big_done.done()
            time.sleep(0.05)
        small_done = pool.submit(send, "small", data[0], "image/jpeg")
        (bs, bb), (ss, sb) = big_done.result(), small_done.result()
    assert bs == 200 and len(bb["results"]) == 48 and all("scores" in r for r in bb["results"])
    assert ss == 200 and close(sb["scores"], want[0])
    assert finished == ["small", "big"], "the one-image request waited for all 48 images of the other"


def test_batching_off_scores_the_same(service, images):
    from quasar.scale.serve import ServiceOptions

    data, want = images
    deploy(ServiceOptions(max_batch_size=1), port=_port())  # replaces the app on the same port
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda d: request(service + "/score", d, "image/png"), data))
    assert all(s == 200 and close(b["scores"], w) for (s, b), w in zip(results, want, strict=True))
    assert request(service + "/metadata")[1]["stats"]["largest_batch"] == 1


def test_serve_yaml_deploys_and_rolls_to_a_new_model_while_answering(service, images, tiny):
    """docs/serve.yaml deployed as `serve run`/`serve deploy` do (Serve's client.deploy_apps), then deployed
    again with another model while a client keeps sending: every request is answered 200 and the app
    ends on the new model."""
    import yaml
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    raw = yaml.safe_load((ROOT / "docs" / "serve.yaml").read_text())
    app = raw["applications"][0]
    app["args"].pop("model")  # the built-in model first
    app["deployments"][0]["autoscaling_config"]["max_replicas"] = 1  # the test cluster has 2 CPUs
    client = _get_global_client()

    def deploy_yaml(wait_for_model: str) -> None:
        client.deploy_apps(ServeDeploySchema.model_validate(raw), _blocking=False)
        deadline = time.monotonic() + 180
        while True:
            try:
                status, meta = request(service + "/metadata", timeout=10)
                if status == 200 and meta["model"] == wait_for_model and request(service + "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the app never served {wait_for_model}"
            time.sleep(0.25)

    deploy_yaml(os.path.basename(default_model_path()))
    data, want = images
    answers: list[int] = []
    stop_sending = threading.Event()

    def keep_sending() -> None:
        while not stop_sending.is_set():
            answers.append(request(service + "/score", data[0], "image/jpeg", timeout=120)[0])

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        time.sleep(1.0)
        app["args"]["model"] = tiny
        deploy_yaml(os.path.basename(tiny))
        time.sleep(1.0)
    finally:
        stop_sending.set()
        sender.join(120)
    assert len(answers) >= 2 and set(answers) == {200}, answers


def test_shutdown_answers_requests_in_flight(service, images):
    from quasar.scale.serve import ServiceOptions, stop

    data, want = images
    # a batch waits 3 s for company, so the request is surely in flight when shutdown starts
    deploy(ServiceOptions(max_batch_size=64, batch_wait_ms=3000), port=_port())
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(r=request(service + "/score", data[0], "image/jpeg")))
    t.start()
    time.sleep(1.0)
    assert t.is_alive(), "the request finished before shutdown began; the test proves nothing"
    stop()
    t.join(60)
    status, body = out["r"]
    assert status == 200 and close(body["scores"], want[0])
