"""``--backend native``: the project's C++ library (libquasar) as a perf target, through :mod:`quasar.nativelib`.

What an app embedding libquasar gets, measured with the same LoadGen scenarios as the Python runtime:

* :class:`NativeEndToEnd`: encoded bytes -> ``quasar_prepare_buffer`` (the library's own decoding and
  preprocessing) on ``--workers`` threads (default: one per core) -> ``quasar_score_images`` on the
  dispatcher thread, in batches of up to ``batch``, in order, with a bounded number of images in flight;
* :class:`NativeModelOnly`: every image prepared once by ``quasar_prepare_buffer`` before the tests,
  then only ``quasar_score_images`` batches run (and are timed).

The graph decides the batch: a static graph takes exactly :attr:`NativeTarget.batch_size` images per
inference call (``quasar_batch_size``; the library pads a short batch). A larger ``--batch`` is run as
that size, a smaller one is padded by the library; either way each test's notes say so.
Python's runtime is not used for inference here: the model's metadata for the report comes from
:func:`quasar.runtime.model.load_model_info` (no torch, no ONNX Runtime session).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

from quasar.errors import QuasarError
from quasar.nativelib import NativeScorer, Status
from quasar.perf.sut import Done, Entry, Runner


class NativeTarget:
    """One model loaded by the native library, its prepare threads and (once asked) its prepared images."""

    def __init__(self, path: str, library: str | None, *, threads: int | None, workers: int | None) -> None:
        from quasar.machine import usable_cores
        from quasar.runtime.model import load_model_info

        self.info = load_model_info(path)  # the report's model metadata; a foreign file fails here, in one line
        try:  # a model the library cannot run (a dynamic graph for its OpenCV backend) is refused here
            self.scorer = NativeScorer(path, threads=threads or 0, library=library)
        except QuasarError as e:
            raise QuasarError(f"backend native: {e}") from None
        self.batch_size = max(1, self.scorer.batch_size)
        self.workers = workers or usable_cores()
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="quasar-perf-native")
        self._images: dict[str, object] = {}  # label -> Image prepared by the library

    @property
    def backend_name(self) -> str:
        lib = self.scorer.lib
        return f"native {self.scorer.backend_name} (libquasar {lib.version}, {lib.path}; graph batch {self.batch_size})"

    def prepare(self, data: bytes, label: str):
        return self.scorer.prepare_buffer(data, label)

    def refused(self, workload) -> dict[str, str]:
        """Prepare every image of ``workload`` with the library (on the prepare threads; kept for model
        only); label -> "label: reason" for those it cannot prepare (a format its OpenCV cannot decode)."""
        todo = [(lab, d) for lab, d in zip(workload.labels, workload.data, strict=True) if lab not in self._images]
        futures = [(lab, self.pool.submit(self.prepare, d, lab)) for lab, d in todo]
        out = {}
        for lab, f in futures:
            try:
                self._images[lab] = f.result()
            except QuasarError as e:
                out[lab] = str(e)
        return out

    def prepared(self, workload) -> list:
        """Every image of ``workload`` as prepared by the library (before any test)."""
        if self.refused(workload):
            raise QuasarError("backend native: images the library cannot prepare were not left out")  # run() does
        return [self._images[lab] for lab in workload.labels]

    def runner_note(self, batch: int) -> str | None:
        n = self.batch_size
        if batch > n:
            return (f"the native library runs this graph {n} image(s) per inference call (fixed in the graph): "
                    f"batch {batch} ran as batches of {n}")
        if batch < n:
            return f"the graph takes exactly {n} images per call: the library padded each batch of {batch} to {n}"
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for im in self._images.values():
            im.close()
        self._images.clear()
        self.scorer.close()


def _statuses_done(chunk: list[Entry], statuses: list[Status], done: Done) -> None:
    bad = sum(s != Status.OK for s in statuses)
    done(chunk, bad, "non-finite scores (the native library's status non-finite)" if bad else None)


class NativeEndToEnd(Runner):
    """Encoded bytes -> scores through the library: prepare on the worker threads, score batches here."""

    mode = "end-to-end"

    def __init__(self, target: NativeTarget, workload, batch: int) -> None:
        self.target = target
        self.labels, self.data = workload.labels, workload.data
        self.batch = min(batch, target.batch_size)
        self.window = max(2 * target.workers, 2 * self.batch)  # images being prepared or waiting for inference
        self.note = target.runner_note(batch)

    def run(self, group: list[Entry], done: Done) -> None:
        pending: deque = deque()
        todo = iter(group)

        def fill() -> None:
            while len(pending) < self.window:
                e = next(todo, None)
                if e is None:
                    return
                pending.append((e, self.target.pool.submit(self.target.prepare, self.data[e.index],
                                                           self.labels[e.index])))

        try:
            fill()
            while pending:
                chunk, images = [], []
                while pending and len(images) < self.batch:
                    e, fut = pending.popleft()
                    fill()
                    try:
                        images.append(fut.result())
                        chunk.append(e)
                    except QuasarError as err:  # this image only: answered as failed, the run goes on
                        done([e], 1, str(err))
                if not images:
                    continue
                try:
                    _, _, statuses = self.target.scorer.score_images(images)
                finally:
                    for im in images:
                        im.close()
                _statuses_done(chunk, statuses, done)
        finally:  # a batch that could not run: free what is still being prepared
            for _, fut in pending:
                try:
                    fut.result().close()
                except QuasarError:
                    pass


class NativeModelOnly(Runner):
    """Images prepared by the library before the test -> ``quasar_score_images`` in batches of up to ``batch``."""

    mode = "model-only"

    def __init__(self, target: NativeTarget, workload, batch: int) -> None:
        self.target = target
        self.images = target.prepared(workload)
        self.batch = min(batch, target.batch_size)
        self.note = target.runner_note(batch)

    def run(self, group: list[Entry], done: Done) -> None:
        for i in range(0, len(group), self.batch):
            chunk = group[i : i + self.batch]
            _, _, statuses = self.target.scorer.score_images([self.images[e.index] for e in chunk])
            _statuses_done(chunk, statuses, done)
