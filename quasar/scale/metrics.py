"""What the scoring service tells Prometheus (``GET /metrics``) and its access log, per replica.

Each replica has its own :class:`Metrics` (its own registry; nothing global, so several services in
one process, as in tests, never clash). Every series carries a ``replica`` label: behind Ray Serve a
scrape of ``/metrics`` is answered by whichever replica takes it, so with several replicas each
scrape sees one of them, and the label keeps their series apart (docs/scaling.md, "Metrics").

Stages: ``queue`` is an image's wait from its request's arrival in the batcher to the start of its
batch; ``decode`` is one image read, decoded and resized by a decode worker; ``model`` is one batch on
the model (submit to result).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

ACCESS_LOG = "quasar.serve.access"
STAGES = ("queue", "decode", "model")
ENDPOINTS = ("/score", "/healthz", "/readyz", "/metadata", "/metrics", "/openapi.json", "/docs")
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The service's Prometheus series for one replica (``replica`` names it in every series)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, replica: str | None = None) -> None:
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        r = self.registry = CollectorRegistry()
        self.requests = Counter("quasar_requests", "HTTP requests answered, by endpoint and status",
                                ["replica", "endpoint", "status"], registry=r)
        self.latency = Histogram("quasar_request_seconds", "Time from a request's arrival to its answer, by endpoint",
                                 ["replica", "endpoint"], buckets=_SECONDS, registry=r)
        self.in_flight = Gauge("quasar_requests_in_flight", "Requests being handled now",
                               ["replica"], registry=r).labels(self.replica)
        self.images = Counter("quasar_images_scored", "Images scored, by outcome (ok: scores; error: a reason)",
                              ["replica", "outcome"], registry=r)
        self.stages = Histogram("quasar_stage_seconds", "Seconds per stage: queue (an image waiting for its batch), "
                                "decode (one image decoded and resized), model (one batch on the model)",
                                ["replica", "stage"], buckets=_SECONDS, registry=r)
        self.batch_size = Histogram("quasar_batch_size", "Images per scorer call (one dynamic batch)", ["replica"],
                                    buckets=_BATCH, registry=r).labels(self.replica)
        self._stage = {s: self.stages.labels(self.replica, s) for s in STAGES}
        for outcome in ("ok", "error"):  # present (at 0) before the first image
            self.images.labels(self.replica, outcome)

    def stage(self, name: str, seconds: float) -> None:
        self._stage[name].observe(seconds)

    def request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"  # bounded label values, whatever clients ask for
        self.requests.labels(self.replica, endpoint, str(status)).inc()
        self.latency.labels(self.replica, endpoint).observe(seconds)

    def scored(self, records: list) -> None:
        ok = sum(1 for r in records if r.ok)
        self.images.labels(self.replica, "ok").inc(ok)
        self.images.labels(self.replica, "error").inc(len(records) - ok)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def instrument(scorer, metrics: Metrics) -> None:
    """Time the decode and model stages of ``scorer``'s pipeline into ``metrics`` (wrapping its prepare
    function and its backend's ``submit``; nothing else changes)."""
    pipeline = scorer.pipeline
    prepare = pipeline.prepare

    def timed_prepare(item):
        t = time.perf_counter()
        try:
            return prepare(item)
        finally:
            metrics.stage("decode", time.perf_counter() - t)

    pipeline.prepare = timed_prepare
    pipeline.backend = _TimedBackend(pipeline.backend, metrics)


class _TimedBackend:
    """A backend whose batches are timed from ``submit`` to their ``result()``; the rest is the backend's."""

    def __init__(self, backend, metrics: Metrics) -> None:
        self._backend, self._metrics = backend, metrics

    def submit(self, array):
        return _TimedPending(self._backend.submit(array), self._metrics, time.perf_counter())

    def __getattr__(self, name):
        return getattr(self._backend, name)


class _TimedPending:
    def __init__(self, pending, metrics: Metrics, start: float) -> None:
        self._pending, self._metrics, self._start, self._seen = pending, metrics, start, False

    def result(self):
        try:
            return self._pending.result()
        finally:
            if not self._seen:
                self._seen = True
                self._metrics.stage("model", time.perf_counter() - self._start)

    def __getattr__(self, name):
        return getattr(self._pending, name)


def access_logger(path: str | None = None) -> logging.Logger:
    """The access log: one JSON object a line, appended to ``path`` (``-`` or None: stderr); set up once
    per process (the first caller's ``path`` wins). Each line is one ``write``, so the replicas of a node
    can share one file."""
    log = logging.getLogger(ACCESS_LOG)
    if not log.handlers:
        if path and path != "-":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handler: logging.Handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        else:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def access_line(**fields) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
