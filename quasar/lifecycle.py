"""``Closeable``: the lifecycle every resource-holding class of the package shares — ``close()`` frees
what the object holds (idempotent), a ``with`` block closes it on the way out, and garbage collection
closes it too. Subclasses define :meth:`close` so that it works on a half-constructed object (an
``__init__`` that raised) and when called twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


class Closeable:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown or a half-built object: nothing left to free
            pass


class LazyPool:
    """Worker threads started on first use (:meth:`get`) and kept across runs until :meth:`close`
    (idempotent); after it, :meth:`get` raises, so a closed pipeline refuses work in the caller's thread."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers, self.name = workers, name
        self.pool: ThreadPoolExecutor | None = None
        self.closed = False
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self.closed:
                raise RuntimeError("this scorer is closed; create a new one")
            if self.pool is None:
                self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
            return self.pool

    def close(self) -> None:
        with self._lock:
            self.closed = True
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
