"""The scoring service on Ray Serve, with dynamic batching (imports Ray: call ``require_ray`` first).

Each replica is a :class:`~quasar.scale.service.ScoringService` with the FastAPI app of
:mod:`quasar.scale.api` as its Serve ingress (``@serve.ingress``, the app built in the replica, after
the model is loaded). Endpoints (:mod:`quasar.scale.http` says what a request may be and how it is refused):

* ``POST /score``: one image as the body -> ``{"scores": {head: P(good)}}`` (``?margins=1`` adds
  ``margins``), or several as ``multipart/form-data`` -> ``{"results": [{"name", "scores"|"error"}]}``.
* ``GET /healthz`` -> ``{"status": "ok"}``; ``GET /readyz`` -> ``{"status": "ready", "replicas": ...}``
  or 503 with why not; ``GET /metrics`` (Prometheus); ``GET /openapi.json``, ``GET /docs``.
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

**Scale.** ``replicas`` fixed replicas, or Ray Serve autoscaling between ``min_replicas`` and
``max_replicas`` on ``target_ongoing_requests`` per replica (:func:`build_app`). :func:`app_builder` is
the same app from a Serve config file's ``args`` (``serve deploy``, docs/serve.yaml); changing the
model there and deploying again rolls replicas over to it one by one.

The scorer runs in a worker thread, so ``/healthz`` answers while a batch is scored. Shutdown is
graceful: Ray Serve stops routing to a replica and waits up to ``graceful_shutdown_s`` for the
requests it holds before it stops it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

from ray import serve

from quasar.runtime.heap import ARENAS_ENV
from quasar.scale.service import ScoringService, ServiceOptions

__all__ = ["APP_NAME", "DEPLOYMENT", "ScoringService", "ServiceOptions", "app_builder", "build_app", "start", "stop"]

APP_NAME = "quasar"
DEPLOYMENT = "QuasarScorer"
MAX_ONGOING = 256  # requests one replica holds at once (more wait in Serve's proxy)
ACCESS_LOG_NAME = "quasar-access.jsonl"  # in Ray's serve log folder of each replica's node, unless access_log says


@serve.ingress()
class ScoringReplica:
    """One Ray Serve replica: a ScoringService, and the FastAPI app built on it once its model is loaded."""

    def __init__(self, model: str | None, options: dict) -> None:
        from ray.serve import get_replica_context

        try:
            replica = get_replica_context().replica_tag
        except Exception:  # not in a replica (never under Serve)
            replica = None
        if not options.get("access_log"):
            options = {**options, "access_log": default_access_log()}
        self.service = ScoringService(model, options, replica=replica)

    def __serve_build_asgi_app__(self):
        from quasar.scale.api import build_api

        # Serve's proxy already returns X-Request-Id (the one it forwarded to us)
        return build_api(self.service, replicas=_replica_counts, echo_request_id=False)

    def check_health(self) -> None:
        why = self.service.not_ready()
        if why:
            raise RuntimeError(f"quasar replica not ready: {why}")


def default_access_log() -> str:
    """``quasar-access.jsonl`` in Ray Serve's log folder of this node (``<session>/logs/serve/``)."""
    from ray.serve._private.logging_utils import get_serve_logs_dir

    return os.path.join(get_serve_logs_dir(), ACCESS_LOG_NAME)


def _replica_counts() -> dict | None:
    """``{"running", "total"}`` replicas of this app's deployment, from Serve's controller (None if unknown)."""
    details = serve.status().applications.get(APP_NAME)
    if details is None or DEPLOYMENT not in details.deployments:
        return None
    states = {str(getattr(k, "value", k)): int(v) for k, v in details.deployments[DEPLOYMENT].replica_states.items()}
    return {"running": states.get("RUNNING", 0), "total": sum(states.values())}


def deployment_options(o: ServiceOptions, *, replicas: int = 1, replica_cpus: float = 1,
                       graceful_shutdown_s: float = 30.0, max_ongoing_requests: int | None = None,
                       min_replicas: int | None = None, max_replicas: int | None = None,
                       target_ongoing_requests: float | None = None) -> dict:
    """Ray Serve's deployment options for the service (autoscaling when ``min_replicas``/``max_replicas`` are given)."""
    # requests a replica holds at once: reading bodies and waiting for batches costs it a coroutine
    # each (the slow ones are bounded by max_slow_reads), so it takes many, and /healthz is never queued
    ongoing = max_ongoing_requests or max(MAX_ONGOING, 2 * o.max_batch_size * o.batch_concurrency)
    actor: dict = {"num_cpus": replica_cpus}
    if o.malloc_arenas:  # set before the replica's process starts: glibc reads it once
        actor["runtime_env"] = {"env_vars": {ARENAS_ENV: str(o.malloc_arenas)}}
    options = {"name": DEPLOYMENT, "max_ongoing_requests": ongoing, "ray_actor_options": actor,
               "graceful_shutdown_wait_loop_s": 0.2, "graceful_shutdown_timeout_s": graceful_shutdown_s}
    if min_replicas is None and max_replicas is None:
        options["num_replicas"] = replicas
    else:
        lo = 1 if min_replicas is None else min_replicas
        hi = max(lo, 1) if max_replicas is None else max_replicas
        # a replica is busy at full batches: max_batch_size one-image requests in each of its concurrent batches
        target = target_ongoing_requests or o.max_batch_size * o.batch_concurrency
        options["num_replicas"] = "auto"
        options["autoscaling_config"] = {"min_replicas": lo, "max_replicas": hi, "initial_replicas": max(lo, 1),
                                         "target_ongoing_requests": target}
    return options


def build_app(model: str | None = None, options: ServiceOptions | None = None, **deployment):
    """The Serve application (``serve.run(build_app(...))``); nothing starts until it is run.
    ``deployment``: :func:`deployment_options`' keywords (replicas, autoscaling, drain time)."""
    o = options or ServiceOptions()
    return serve.deployment(ScoringReplica, **deployment_options(o, **deployment)).bind(model, asdict(o))


def app_builder(args: dict):
    """The app from a Serve config file's ``args`` (``import_path: quasar.scale.serve:app_builder``): ``model``,
    ``token_file``, ``cors_origins`` and any :class:`ServiceOptions` field (``limits`` a mapping); replicas
    and autoscaling belong to the file's ``deployments`` section (Serve applies them over these defaults)."""
    from quasar.runtime.model import default_model_path, load_model_info
    from quasar.scale.auth import read_token_digests

    args = dict(args or {})
    model = load_model_info(args.pop("model", None) or default_model_path()).path  # a bad model: one line, now
    token_file = args.pop("token_file", None)
    if token_file:
        args["token_digests"] = read_token_digests(token_file)
    return build_app(model, ServiceOptions.from_dict(args))


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
