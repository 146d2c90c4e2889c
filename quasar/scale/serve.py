"""The scoring service on Ray Serve, with dynamic batching (imports Ray: call ``require_ray`` first).

Endpoints (:mod:`quasar.scale.http` says what a request may be and how it is refused):

* ``POST /score``: one image as the body -> ``{"scores": {head: P(good)}}`` (``?margins=1`` adds
  ``margins``), or several as ``multipart/form-data`` -> ``{"results": [{"name", "scores"|"error"}]}``.
* ``GET /healthz`` -> ``{"status": "ok"}``.
* ``GET /metadata`` -> model, heads, precision, preprocessing spec, batching and limits, and the
  answering replica's ``stats`` (scorer calls, images, largest batch: is batching happening?; its
  resident memory ``rss_mb``); ``memory`` says how the replica keeps its heap bounded.

**Dynamic batching, fairly.** Every image of every request waits in one
:class:`~quasar.scale.fair.FairBatcher`: images that arrive within ``batch_wait_ms`` of each other
(up to ``max_batch_size``) are scored by one :meth:`Scorer.score_items` call, and each batch takes
one image from each waiting client (each request) in turn, so a request of many large images
cannot hold the others back (head of line). ``batch_concurrency`` batches run at once on the
replica's one :class:`~quasar.runtime.Scorer` (decode workers and session kept for the replica's
life), so the next batch is decoded while the current one is on the model. ``max_batch_size=1``
turns batching off: each request is then scored by its own call, concurrently with the others.

**Slow and greedy clients** (:mod:`quasar.scale.http`): bodies are read with a deadline and only
``max_slow_reads`` slow ones at once (408 / 503 with ``Retry-After``); a request's images may add
up to ``max_request_pixels`` (413). A replica holds up to ``max_ongoing_requests`` requests (256),
so clients that hold a request open do not keep ``/healthz`` or anyone's ``/score`` waiting.

**Memory.** Two glibc settings keep a replica's heap from creeping up (:mod:`quasar.runtime.heap`): its
process runs with ``MALLOC_ARENA_MAX=2`` (``malloc_arenas``), so the many threads that decode and
score share two heaps instead of up to eight per core, and the freed memory of a batch is given back
to the system when no other batch is running (``trim_heap``). Without them its RSS rose with every
round of the same load; with them it is flat after the second (``benchmarks/serve_memory.py``).

The scorer runs in a worker thread, so ``/healthz`` answers while a batch is scored. Shutdown is
graceful: Ray Serve stops routing to a replica and waits up to ``graceful_shutdown_s`` for the
requests it holds before it stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import asdict, dataclass, field

from ray import serve
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from quasar.constants import SCORE_RANGE
from quasar.runtime.heap import ARENAS_ENV, trim_heap
from quasar.scale.fair import FairBatcher
from quasar.scale.http import (
    Limits,
    RequestError,
    SlowReads,
    check_length,
    check_request_pixels,
    read_body,
    record_json,
    split_files,
    truthy,
)

log = logging.getLogger("quasar.serve")
APP_NAME = "quasar"
MAX_ONGOING = 256  # requests one replica holds at once (more wait in Serve's proxy)


@dataclass(frozen=True)
class ServiceOptions:
    """How one replica scores. ``workers``/``threads``/``batch_size``/``backend``/``device`` go to its Scorer."""

    max_batch_size: int = 16
    batch_wait_ms: float = 10.0
    batch_concurrency: int = 2
    workers: int | None = None
    threads: int | None = None
    batch_size: int | None = None
    backend: str = "auto"
    device: str | None = None
    limits: Limits = field(default_factory=Limits)
    trim_heap: bool = True  # give freed heap memory back after each batch when none other runs (runtime.heap)
    malloc_arenas: int | None = 2  # MALLOC_ARENA_MAX of the replica's process (None: glibc's 8 per core)


class ScoringService:
    """One Ray Serve replica: one Scorer, the three endpoints, per-request error handling."""

    def __init__(self, model: str | None, options: dict) -> None:
        from quasar.runtime.scorer import Scorer

        limits = Limits(**options.pop("limits"))
        self.options = ServiceOptions(**options, limits=limits)
        o = self.options
        self.scorer = Scorer(model, backend=o.backend, device=o.device, batch_size=o.batch_size, workers=o.workers,
                             threads=o.threads, max_pixels=limits.max_pixels)
        self.batching = o.max_batch_size > 1
        self.batcher = FairBatcher(self._score_now, o.max_batch_size, o.batch_wait_ms / 1000, o.batch_concurrency)
        self.slow_reads = SlowReads()
        self.metadata = self._metadata()
        self._stats_lock = threading.Lock()
        self.stats = {"scorer_calls": 0, "images": 0, "largest_batch": 0}
        self._running = 0  # batches being scored now (under _stats_lock)

    def _metadata(self) -> dict:
        info, o = self.scorer.info, self.options
        return {"model": os.path.basename(info.path), "encoder": info.encoder, "pack_hash": info.pack_hash,
                "heads": list(info.heads), "summary_heads": list(info.summary_heads),
                "explain_heads": list(info.explain_heads), "precision": info.precision,
                "preprocess": info.preprocess, "dynamic_size": info.dynamic_size, "score_range": list(SCORE_RANGE),
                "higher_is_better": True, "backend": self.scorer.backend.name, "device": self.scorer.backend.device,
                "batching": {"max_batch_size": o.max_batch_size, "batch_wait_ms": o.batch_wait_ms,
                             "batch_concurrency": o.batch_concurrency},
                "limits": asdict(o.limits),
                "memory": {"trim_heap": o.trim_heap, "malloc_arena_max": os.environ.get(ARENAS_ENV)}}

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/") or "/"
        try:
            if path == "/score":
                _method(request, "POST")
                return await self._score(request)
            if path == "/healthz":
                _method(request, "GET")
                return JSONResponse({"status": "ok"})
            if path == "/metadata":
                _method(request, "GET")
                with self._stats_lock:
                    return JSONResponse({**self.metadata, "stats": {**self.stats, "rss_mb": _rss_mb()}})
            raise RequestError(404, f"no endpoint {path!r}: POST /score, GET /healthz, GET /metadata")
        except RequestError as e:
            return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)
        except ClientDisconnect:  # nobody to answer
            return JSONResponse({"error": "client disconnected"}, status_code=400)
        except Exception as e:  # a bug here, not the client's input: say so, keep the replica up
            log.exception("quasar serve: internal error")
            return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, status_code=500)

    async def _read_body(self, request: Request) -> bytes:
        limits = self.options.limits
        check_length(request.headers.get("content-length"), limits)
        return await read_body(request.stream(), limits, self.slow_reads)

    async def _score(self, request: Request) -> JSONResponse:
        from quasar.runtime.sources import Item

        body = await self._read_body(request)
        multipart = request.headers.get("content-type", "").lower().startswith("multipart/")
        files = split_files(request.headers.get("content-type"), body, self.options.limits)
        check_request_pixels(files, self.options.limits)
        items = [Item(name, data=data) for name, data in files]
        if self.batching:
            records = await self.batcher.submit(request.client.host if request.client else "", items)
        else:
            records = await asyncio.to_thread(self._score_now, items)
        margins = truthy(request.query_params.get("margins"))
        if multipart:
            return JSONResponse({"results": [{"name": name, **record_json(r, margins)}
                                             for (name, _), r in zip(files, records, strict=True)]})
        (rec,) = records
        return JSONResponse(record_json(rec, margins), status_code=200 if rec.ok else 400)

    def _score_now(self, items: list) -> list:
        with self._stats_lock:
            self.stats["scorer_calls"] += 1
            self.stats["images"] += len(items)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(items))
            self._running += 1
        try:
            return list(self.scorer.score_items(items))
        finally:
            with self._stats_lock:
                self._running -= 1
                last = self._running == 0
            if last and self.options.trim_heap:
                trim_heap()  # the batch's buffers are free now: back to the system, not kept at the peak

    def __del__(self) -> None:
        scorer = getattr(self, "scorer", None)
        if scorer is not None:
            scorer.close()


def _rss_mb() -> float | None:
    """This replica's resident memory in MB (Linux), so load tests can see whether it stays flat."""
    try:
        with open("/proc/self/status") as f:
            return next(round(int(line.split()[1]) / 1024, 1) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None


def _method(request: Request, want: str) -> None:
    if request.method != want:
        raise RequestError(405, f"{request.method} not allowed here: use {want}")


def build_app(model: str | None = None, options: ServiceOptions | None = None, *, replicas: int = 1,
              replica_cpus: float = 1, graceful_shutdown_s: float = 30.0, max_ongoing_requests: int | None = None):
    """The Serve application (``serve.run(build_app(...))``); nothing starts until it is run."""
    o = options or ServiceOptions()
    # requests a replica holds at once: reading bodies and waiting for batches costs it a coroutine
    # each (the slow ones are bounded by max_slow_reads), so it takes many, and /healthz is never queued
    ongoing = max_ongoing_requests or max(MAX_ONGOING, 2 * o.max_batch_size * o.batch_concurrency)
    actor: dict = {"num_cpus": replica_cpus}
    if o.malloc_arenas:  # set before the replica's process starts: glibc reads it once
        actor["runtime_env"] = {"env_vars": {ARENAS_ENV: str(o.malloc_arenas)}}
    deployment = serve.deployment(
        ScoringService, name="QuasarScorer", num_replicas=replicas, max_ongoing_requests=ongoing,
        ray_actor_options=actor, graceful_shutdown_wait_loop_s=0.2,
        graceful_shutdown_timeout_s=graceful_shutdown_s)
    return deployment.bind(model, asdict(o))


def start(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start Serve's HTTP proxy on ``host:port`` (one, on the head node) and deploy ``app`` there.
    Serve's own INFO lines on stderr ("Started Serve", "Connecting to existing Serve app ... will not be
    applied", "Deleting app") are not the user's business: its driver-side logger is set to WARNING."""
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)


def stop() -> None:
    """Stop the service gracefully: delete the app first, while the HTTP proxy still runs, so Serve
    stops routing to the replicas and lets each answer the requests it holds (``graceful_shutdown_s``
    at most) and the proxy deliver those answers; then shut Serve down. (``serve.shutdown()`` alone
    stops the proxy at once and drops the connections in flight.)"""
    serve.delete(APP_NAME, _blocking=True)
    serve.shutdown()
