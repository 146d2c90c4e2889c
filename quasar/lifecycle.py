"""``Closeable``: the lifecycle every resource-holding class of the package shares — ``close()`` frees
what the object holds (idempotent), a ``with`` block closes it on the way out, and garbage collection
closes it too. Subclasses define :meth:`close` so that it works on a half-constructed object (an
``__init__`` that raised) and when called twice."""

from __future__ import annotations


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
