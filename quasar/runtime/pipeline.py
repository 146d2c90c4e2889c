"""The batched scoring pipeline: decode workers -> shape buckets -> bounded queue -> backend.

Threads, not processes: OpenCV's decode and resize release the GIL, so ``workers`` threads decode in
parallel while the calling thread runs inference, and nothing is pickled. A feeder thread walks the
(lazy) input stream, keeps at most ``2 * workers + 2`` decode jobs in flight, groups the
preprocessed images into batches and puts them on a queue of at most ``queue_size`` messages. The
caller's thread takes batches off the queue and runs the backend, so CPU work overlaps inference
and memory is bounded whatever the number of files.

**Bucketing rule** (models with dynamic H/W, e.g. the ``native`` policy): a batch only ever holds
images of *identical* preprocessed shape, so no image is padded or resized for the sake of its
batch, and an image's score does not depend on what it was batched with. Shapes are already
quantised by the spec (``size_multiple``: 32 for effnet-lite0, so typical photos fall into a few
shapes such as 384x512 or 512x384). A partial bucket is flushed when it is full, at the end, or
when its oldest image is ``window`` inputs behind the newest one (default ``4 * batch_size``),
which bounds both the memory held in buckets and how long results wait. Fixed-size models have one
bucket, so batches are simply consecutive images.

Results come out in input order (a small reorder buffer bridges the bucket window).

**Repeated calls are cheap.** The decode workers belong to the ``Pipeline``, not to a run: they are
started on the first run and kept until :meth:`Pipeline.close`, so a caller that scores 32 paths
per call (Ray Data's ``map_batches``, a server, a user's loop) does not start and join a thread pool
every time. Concurrent runs share the workers (each run still bounds its own decode jobs in flight),
so while one caller's batch is on the backend, another caller's images are being decoded. A run
that is abandoned cancels its queued decode jobs and waits for the running ones before it returns.

**Failures keep no pixels.** A decode worker returns ``(array, None)`` or ``(None, reason)``, never an
exception: an exception kept in its future would keep its traceback, the traceback the decoder's
frames, and those frames the decoded image (gigabytes for a large file refused after decoding)
until the feeder gets to it. **Scores must be finite**: a NaN or infinite score or margin (corrupted
weights, a NaN logit scale) is that image's error, naming the model as the suspect, never a number.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from quasar.io.decode import ImageError
from quasar.lifecycle import LazyPool
from quasar.runtime.backends.base import Backend, Pending, check_backend
from quasar.runtime.sources import Item


@dataclass(frozen=True)
class Result:
    """Scores of one input (``scores``/``margins`` are [K] arrays), or the reason it has none.

    ``warning``: scored, but with a caveat (a tiny image upscaled many times), one line."""

    index: int
    label: str
    scores: np.ndarray | None = None
    margins: np.ndarray | None = None
    error: str | None = None
    warning: str | None = None
    embedding: np.ndarray | None = None  # [D], when the backend returns embeddings


@dataclass
class _Batch:
    indices: list[int]
    labels: list[str]
    array: np.ndarray


@dataclass
class _Failed:
    index: int
    label: str
    error: str


@dataclass
class _Fatal:
    exc: BaseException


_END = object()


def non_finite_reason(backend: Backend) -> str:
    """The error of an image whose score or margin is NaN or infinite: the model is the suspect."""
    info = getattr(backend, "info", None)
    model = getattr(info, "path", None) or "the model"
    return (f"the model gave a non-finite score (NaN or infinity); suspect the model file {model} "
            "(corrupted weights or logit scale), not the image")


class _Stopped(Exception):
    """The consumer went away; the feeder unwinds."""


class Pipeline:
    """Run ``prepare`` on ``workers`` threads and ``backend`` on batches of up to ``batch_size``.

    One ``Pipeline`` may run several times, also concurrently from several threads: each ``run``
    has its own feeder thread and queue; the backend and the decode workers are shared. ``close``
    stops the workers (the backend is the owner's to close).
    """

    def __init__(self, prepare: Callable[[Item], np.ndarray], backend: Backend, batch_size: int = 8,
                 workers: int = 2, window: int | None = None, queue_size: int = 4, depth: int | None = None) -> None:
        if batch_size < 1 or workers < 1:
            raise ValueError("batch_size and workers must be at least 1")
        check_backend(backend)
        self.prepare = prepare
        self.backend = backend
        self.batch_size = batch_size
        self.workers = workers
        self.window = window if window is not None else 4 * batch_size
        self.queue_size = queue_size
        # Batches in flight on the device: 2 lets batch i+1's copy overlap batch i's compute.
        self.depth = depth if depth is not None else (2 if backend.device == "cuda" else 1)
        self._decode = LazyPool(self.workers, "quasar-decode")

    def _decode_pool(self) -> ThreadPoolExecutor:
        """The decode workers, started on first use and kept across runs until :meth:`close`."""
        return self._decode.get()

    def close(self) -> None:
        """Stop the decode workers (idempotent). Runs still in progress fail; later runs raise."""
        self._decode.close()

    def _prepare_one(self, item: Item) -> tuple[np.ndarray | None, str | None, str | None]:
        """``(array, None, warning)`` or ``(None, reason, None)``; the exception (and the pixels its
        traceback holds) dies here. ``prepare`` may return ``(array, warning)`` instead of an array."""
        try:
            out = self.prepare(item)
        except ImageError as e:
            return None, str(e), None
        except MemoryError:
            return None, "out of memory while decoding (use fewer --workers or a lower --max-pixels)", None
        except Exception as e:
            return None, f"unexpected {type(e).__name__}: {e}", None
        if isinstance(out, tuple):
            return out[0], None, out[1]
        return out, None, None

    # ------------------------------------------------------------------ feeder (its own thread)
    def _feed(self, items: Iterator[Item], out_q: queue.Queue, stop: threading.Event,
              warnings: dict[int, str] | None = None, pool: ThreadPoolExecutor | None = None) -> None:
        def put(msg) -> None:
            while not stop.is_set():
                try:
                    out_q.put(msg, timeout=0.1)
                    return
                except queue.Full:
                    continue
            if isinstance(msg, _Batch):
                self.backend.release(msg.array)
            raise _Stopped

        buckets: dict[tuple[int, ...], list[tuple[int, str, np.ndarray]]] = {}

        def emit(shape: tuple[int, ...]) -> None:
            entries = buckets.pop(shape)
            buf = self.backend.batch_buffer((len(entries), *shape))
            np.stack([e[2] for e in entries], out=buf)
            put(_Batch([e[0] for e in entries], [e[1] for e in entries], buf))

        def take(fut: Future, index: int, label: str) -> None:
            arr, reason, warning = fut.result()
            if warning is not None and arr is not None and warnings is not None:
                warnings[index] = warning  # set before the image's batch is queued, read when it is scored
            if reason is not None:
                put(_Failed(index, label, reason))
            refused = None if arr is None else self.backend.accepts(arr.shape)
            if refused:
                put(_Failed(index, label, refused))
            elif arr is not None:
                bucket = buckets.setdefault(arr.shape, [])
                bucket.append((index, label, arr))
                if len(bucket) >= self.batch_size:
                    emit(arr.shape)
            for shape, b in list(buckets.items()):  # the window rule: old partial buckets go now
                if index - b[0][0] >= self.window:
                    emit(shape)

        pool = pool if pool is not None else self._decode_pool()
        inflight: deque[tuple[Future, int, str]] = deque()
        try:
            max_inflight = 2 * self.workers + 2
            for index, item in enumerate(items):
                if stop.is_set():
                    raise _Stopped
                inflight.append((pool.submit(self._prepare_one, item), index, item.label))
                while len(inflight) >= max_inflight:
                    take(*inflight.popleft())
            while inflight:
                take(*inflight.popleft())
            for shape in list(buckets):
                emit(shape)
            put(_END)
        except _Stopped:
            pass
        except BaseException as e:  # the input iterator failed: hand the exception to the consumer
            try:
                put(_Fatal(e))
            except _Stopped:
                pass
        finally:  # an abandoned run: drop its queued decode jobs, wait for the running ones
            futures = [f for f, _, _ in inflight]
            for f in futures:
                f.cancel()
            wait(futures)

    # ------------------------------------------------------------------ consumer (the caller's thread)
    def run(self, items: Iterable[Item]) -> Iterator[Result]:
        """Score ``items`` lazily; yields one :class:`Result` per item, in input order."""
        out_q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        stop = threading.Event()
        warnings: dict[int, str] = {}
        pool = self._decode_pool()  # a closed pipeline raises here, in the caller's thread
        feeder = threading.Thread(target=self._feed, args=(iter(items), out_q, stop, warnings, pool),
                                  name="quasar-feeder", daemon=True)
        pending: deque[tuple[_Batch, Pending]] = deque()
        ready: dict[int, Result] = {}
        next_index = 0

        def collect() -> None:
            batch, handle = pending.popleft()
            out = handle.result()
            scores, margins = out[0], out[1]
            emb = out[2] if len(out) > 2 else None  # backends return embeddings when asked for them
            finite = np.isfinite(scores).all(axis=1) & np.isfinite(margins).all(axis=1)
            if emb is not None:
                finite &= np.isfinite(emb).all(axis=1)
            for j, (i, label) in enumerate(zip(batch.indices, batch.labels, strict=True)):
                warning = warnings.pop(i, None)
                if finite[j]:
                    ready[i] = Result(i, label, scores[j].copy(), margins[j].copy(), warning=warning,
                                      embedding=None if emb is None else emb[j].copy())
                else:
                    ready[i] = Result(i, label, error=self._non_finite_reason())

        def next_message():
            """The next message; None when a pending batch should be collected first."""
            while True:
                try:
                    # With a batch on the device, only wait briefly for the next one, then collect.
                    return out_q.get(timeout=0.02 if pending else 0.5)
                except queue.Empty:
                    if pending:
                        return None
                    if not feeder.is_alive() and out_q.empty():
                        raise RuntimeError("the pipeline's feeder thread ended without finishing") from None

        feeder.start()
        try:
            while True:
                msg = next_message()
                if msg is None:
                    collect()
                if msg is _END:
                    break
                if isinstance(msg, _Fatal):
                    raise msg.exc
                if isinstance(msg, _Failed):
                    ready[msg.index] = Result(msg.index, msg.label, error=msg.error)
                elif isinstance(msg, _Batch):
                    pending.append((msg, self.backend.submit(msg.array)))
                    if len(pending) >= self.depth:
                        collect()
                while next_index in ready:
                    yield ready.pop(next_index)
                    next_index += 1
            while pending:
                collect()
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1
        finally:
            stop.set()
            self._cleanup(out_q, pending, feeder)

    def _non_finite_reason(self) -> str:
        return non_finite_reason(self.backend)

    def _cleanup(self, out_q: queue.Queue, pending: deque, feeder: threading.Thread) -> None:
        """Return staging buffers of batches that will never run, and let the feeder exit."""
        for _, handle in pending:
            try:
                handle.result()
            except Exception:
                pass
        pending.clear()
        while True:
            alive = feeder.is_alive()
            while True:  # drain without blocking: a feeder blocked on a full queue can then finish
                try:
                    msg = out_q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(msg, _Batch):
                    self.backend.release(msg.array)
            if not alive:
                break
            feeder.join(0.005)
