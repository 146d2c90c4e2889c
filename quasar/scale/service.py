"""One replica of the scoring service, without Ray or a web framework: a Scorer, the fair batcher,
the replica's stats and metrics. :mod:`quasar.scale.api` puts HTTP in front of it and
:mod:`quasar.scale.serve` deploys that on Ray Serve (see there for batching, memory and shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field

from quasar.constants import SCORE_RANGE
from quasar.runtime.heap import ARENAS_ENV, trim_heap
from quasar.scale.fair import FairBatcher
from quasar.scale.http import Limits, SlowReads
from quasar.scale.metrics import Metrics, instrument

log = logging.getLogger("quasar.serve")


@dataclass(frozen=True)
class ServiceOptions:
    """How one replica scores and answers. ``workers``/``threads``/``batch_size``/``backend``/``device`` go
    to its Scorer; ``token_digests`` (:mod:`quasar.scale.auth`) and ``cors_origins`` to its HTTP front."""

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
    token_digests: tuple[str, ...] = ()  # SHA-256 of the accepted bearer tokens; empty: no authentication
    cors_origins: tuple[str, ...] = ()  # origins browsers may call from; empty: CORS off
    access_log: str | None = None  # JSON-lines file of the access log; "-" or None: stderr (serve: Ray's log folder)

    @classmethod
    def from_dict(cls, options: dict) -> ServiceOptions:
        options = dict(options)
        limits = Limits(**options.pop("limits", {}))
        for key in ("token_digests", "cors_origins"):
            options[key] = tuple(options.get(key) or ())
        return cls(**options, limits=limits)


class ScoringService:
    """One replica: one Scorer, the fair batcher, stats and metrics; ``score_files`` scores a request's images."""

    def __init__(self, model: str | None, options: dict | ServiceOptions, replica: str | None = None) -> None:
        from quasar.runtime.scorer import Scorer

        self.options = options if isinstance(options, ServiceOptions) else ServiceOptions.from_dict(options)
        o = self.options
        self.scorer = Scorer(model, backend=o.backend, device=o.device, batch_size=o.batch_size, workers=o.workers,
                             threads=o.threads, max_pixels=o.limits.max_pixels)
        self.metrics = Metrics(replica)
        instrument(self.scorer, self.metrics)
        self.batching = o.max_batch_size > 1
        self.batcher = FairBatcher(self._score_now, o.max_batch_size, o.batch_wait_ms / 1000, o.batch_concurrency)
        self.slow_reads = SlowReads()
        self.metadata = self._metadata()
        self._stats_lock = threading.Lock()
        self.stats = {"scorer_calls": 0, "images": 0, "largest_batch": 0}
        self._running = 0  # batches being scored now (under _stats_lock)
        self._arrived: dict[int, float] = {}  # id(item) -> when its request reached the batcher
        self.closed = False

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

    def metadata_now(self) -> dict:
        with self._stats_lock:
            return {**self.metadata, "stats": {**self.stats, "rss_mb": _rss_mb()}}

    def not_ready(self) -> str | None:
        """Why this replica cannot score now, or None (its model is loaded and it is not shutting down)."""
        if self.closed:
            return "shutting down"
        return None

    async def score_files(self, client: str, files: list[tuple[str, bytes]]) -> list:
        """The ScoreRecords of a request's ``[(name, bytes)]``, through the fair batcher (or its own call)."""
        from quasar.runtime.sources import Item

        items = [Item(name, data=data) for name, data in files]
        if not self.batching:
            return await asyncio.to_thread(self._score_now, items)
        now = time.perf_counter()
        for item in items:
            self._arrived[id(item)] = now
        try:
            return await self.batcher.submit(client, items)
        finally:
            for item in items:
                self._arrived.pop(id(item), None)

    def _score_now(self, items: list) -> list:
        now = time.perf_counter()
        for item in items:
            t = self._arrived.get(id(item))
            self.metrics.stage("queue", now - t if t is not None else 0.0)
        self.metrics.batch_size.observe(len(items))
        with self._stats_lock:
            self.stats["scorer_calls"] += 1
            self.stats["images"] += len(items)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(items))
            self._running += 1
        try:
            records = list(self.scorer.score_items(items))
            self.metrics.scored(records)
            return records
        finally:
            with self._stats_lock:
                self._running -= 1
                last = self._running == 0
            if last and self.options.trim_heap:
                trim_heap()  # the batch's buffers are free now: back to the system, not kept at the peak

    def close(self) -> None:
        self.closed = True
        scorer = getattr(self, "scorer", None)
        if scorer is not None:
            scorer.close()

    def __del__(self) -> None:
        self.close()


def _rss_mb() -> float | None:
    """This replica's resident memory in MB (Linux), so load tests can see whether it stays flat."""
    try:
        with open("/proc/self/status") as f:
            return next(round(int(line.split()[1]) / 1024, 1) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None
