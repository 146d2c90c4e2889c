"""The system under test that LoadGen drives: the engine, end to end or model only.

LoadGen calls :meth:`SUT.issue` with a query (one sample in SingleStream and Server, eight in
MultiStream, all of them at once in Offline). ``issue`` only queues the query; one dispatcher thread
takes everything waiting (so a busy Server gets batches), hands it to a runner, and answers LoadGen
sample by sample as results come out:

* :class:`EndToEnd`: the encoded bytes through :meth:`quasar.runtime.Scorer.score_items`, i.e. the
  runtime's own pipeline (decode threads, shape buckets of up to ``batch``, the backend);
* :class:`ModelOnly`: the runtime-preprocessed uint8 tensors, stacked per shape into batches of up
  to ``batch`` and run on the Scorer's backend (two batches in flight on CUDA backends);
* the native library's own two runners (``--backend native``) are in :mod:`quasar.perf.native`.

Besides LoadGen's own statistics, the SUT keeps every sample's latency as it saw it (query received
-> answered) for the plots, tagged with the LoadGen run it belongs to (LoadGen calls :meth:`flush`
after each run; the Server search makes several).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quasar.lifecycle import Closeable

_STOP = object()


@dataclass(frozen=True)
class Entry:
    """One sample of one query: LoadGen's response id, the sample's index, when its query arrived."""

    id: int
    index: int
    t0: float
    query: int
    segment: int


Done = Callable[[list[Entry], int, "str | None"], None]  # (entries, failed count, first error)


class Runner:
    """Process a group of samples, calling ``done`` for each finished sub-group."""

    mode = "runner"
    note: str | None = None  # a caveat every test of this runner records (e.g. a batch the graph cannot take)

    def run(self, group: list[Entry], done: Done) -> None:
        raise NotImplementedError


class EndToEnd(Runner):
    """Encoded files -> scores through the runtime's pipeline (``scorer.score_items``)."""

    mode = "end-to-end"

    def __init__(self, scorer, workload) -> None:
        from quasar.runtime.sources import Item

        self.scorer = scorer
        self.items = [Item(lab, data=d) for lab, d in zip(workload.labels, workload.data, strict=True)]

    def run(self, group: list[Entry], done: Done) -> None:
        records = self.scorer.score_items(self.items[e.index] for e in group)
        for e, rec in zip(group, records, strict=True):
            done([e], 0 if rec.ok else 1, None if rec.ok else f"{rec.source}: {rec.error}")


class ModelOnly(Runner):
    """Preprocessed uint8 tensors -> scores on the backend alone, batches of up to ``batch`` per shape."""

    mode = "model-only"

    def __init__(self, backend, tensors: list[np.ndarray], batch: int) -> None:
        self.backend = backend
        self.tensors = tensors
        self.batch = batch
        self.depth = 2 if getattr(backend, "device", "cpu") == "cuda" else 1

    def run(self, group: list[Entry], done: Done) -> None:
        by_shape: dict[tuple, list[Entry]] = {}
        for e in group:
            by_shape.setdefault(self.tensors[e.index].shape, []).append(e)
        pending: deque = deque()

        def collect() -> None:
            chunk, handle = pending.popleft()
            scores, margins = handle.result()
            bad = int(len(chunk) - np.count_nonzero(np.isfinite(scores).all(axis=1) & np.isfinite(margins).all(axis=1)))
            done(chunk, bad, "non-finite scores" if bad else None)

        for entries in by_shape.values():
            for i in range(0, len(entries), self.batch):
                chunk = entries[i : i + self.batch]
                batch = np.stack([self.tensors[e.index] for e in chunk])
                pending.append((chunk, self.backend.submit(batch)))
                if len(pending) >= self.depth:
                    collect()
        while pending:
            collect()


class SUT(Closeable):
    """LoadGen's callbacks around a runner; see the module docstring. Use as a context manager."""

    def __init__(self, runner: Runner, complete: Callable[[list[Entry]], None] | None = None) -> None:
        self.runner = runner
        self._complete = complete  # LoadGen's QuerySamplesComplete wrapper (None in calibration)
        self.samples: list[tuple[int, int, float]] = []  # (segment, query, latency seconds)
        self.failed = 0
        self.first_error: str | None = None
        self.failure: BaseException | None = None
        self._segment = 0
        self._queries = 0
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="quasar-perf-sut", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- LoadGen callbacks
    def issue(self, query_samples) -> None:
        t0, q, seg = time.perf_counter(), self._queries, self._segment
        self._queries += 1
        self._q.put([Entry(s.id, s.index, t0, q, seg) for s in query_samples])

    def flush(self) -> None:
        self._segment += 1

    # -------------------------------------------------------------- dispatcher
    def _loop(self) -> None:
        while True:
            group = self._q.get()
            if group is _STOP:
                return
            stop = False
            while True:  # everything waiting goes in one group: a busy server batches
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                group.extend(more)
            finished: set[int] = set()

            def done(entries: list[Entry], failed: int, error: str | None, finished=finished) -> None:
                t = time.perf_counter()
                if self._complete is not None:
                    self._complete(entries)
                finished.update(e.id for e in entries)
                self.samples.extend((e.segment, e.query, t - e.t0) for e in entries)
                if failed:
                    self.failed += failed
                    self.first_error = self.first_error or error

            try:
                self.runner.run(group, done)
            except BaseException as e:  # answer every sample anyway, or LoadGen waits for ever
                self.failure = self.failure or e
                rest = [x for x in group if x.id not in finished]
                if rest:
                    done(rest, len(rest), f"{type(e).__name__}: {e}")
            if stop:
                return

    def close(self) -> None:
        """Stop the issuing thread (a second call finds it stopped)."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join()

    # -------------------------------------------------------------- results
    def latencies(self, per_query: bool = False, last_segment_only: bool = True) -> np.ndarray:
        """Latencies in ms of the last LoadGen run (or all); ``per_query``: a query ends with its last sample."""
        rows = self.samples
        if last_segment_only and rows:
            last = max(s for s, _, _ in rows)
            rows = [r for r in rows if r[0] == last]
        if per_query:
            by_q: dict[int, float] = {}
            for _, q, lat in rows:
                by_q[q] = max(by_q.get(q, 0.0), lat)
            return np.array(sorted(by_q.values())) * 1e3
        return np.array([lat for _, _, lat in rows]) * 1e3

    def run_direct(self, indices: list[int]) -> float:
        """Calibration without LoadGen: process ``indices`` as one query; seconds it took."""
        ids = range(-len(indices), 0)
        t0 = time.perf_counter()
        before = len(self.samples)
        self._q.put([Entry(i, idx, t0, -1, -1) for i, idx in zip(ids, indices, strict=True)])
        while len(self.samples) - before < len(indices) and self._thread.is_alive():
            time.sleep(0.001)
        dt = time.perf_counter() - t0
        del self.samples[before:]
        if self.failure is not None:
            raise self.failure
        return dt


@dataclass(frozen=True)
class Estimate:
    """Warm-up measurements that size LoadGen's settings: one sample alone, and a full group."""

    latency_s: float  # median of single-sample queries
    throughput: float  # samples/s of one group of ``group`` samples
    group: int


CALIBRATION_S = 0.3
MAX_CALIBRATION_GROUP = 1 << 14


def calibrate(sut: SUT, n_samples: int, batch: int) -> Estimate:
    """Warm up (every sample once), time three single samples, then groups of ``max(2*batch, 8)``
    samples, doubled until one takes at least 0.3 s (so fixed per-call costs do not dominate)."""
    sut.run_direct(list(range(n_samples)))
    singles = sorted(sut.run_direct([i % n_samples]) for i in range(3))
    k = max(2 * batch, 8)
    while True:
        dt = sut.run_direct([i % n_samples for i in range(k)])
        if dt >= CALIBRATION_S or k >= MAX_CALIBRATION_GROUP:
            return Estimate(singles[1], k / dt, k)
        k *= 2
