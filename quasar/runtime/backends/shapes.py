"""Shape-specialised ONNX Runtime sessions: the dynamic graph with its free dimensions fixed.

The shipped graph takes any [batch, height, width, 3]; ONNX Runtime then computes every Shape, Ceil
and Pad of it at run time and plans no memory. A session made with
``SessionOptions.add_free_dimension_override_by_name`` (batch, height and width fixed to one input's)
folds all of that when it loads, like a static export, but from the same file, so the light install
(no ``onnx`` package) gets it and the scores are those of the dynamic session (the same kernels on the
same graph; the tests compare them to 1e-6 on real photos).

:class:`ShapeSessions` keeps such sessions for the shapes a run actually feeds: a shape gets its own
session once it has been seen ``promote_after`` times (camera photos come in a few buckets: 384x512,
512x384, 288x512 for the default model), at most ``max_sessions`` of them, least recently used
dropped first; every other batch (a rare size, a short last batch) runs on the dynamic session. A
short batch is not padded up to a specialised batch: padding 3 images to 4 costs a third more work
for what specialisation saves. Memory: every session, the dynamic one included, allocates from one
process-wide ONNX Runtime arena (``session.use_env_allocators``), so activations are not held once
per session, and no session plans a memory pattern (its one block per shape would not be shared);
what a specialised session adds is its own copy of the (layout-converted) weights and graph, about
twice the model file's size (``benchmarks/shape_sessions.py`` measures the peak RSS with and without;
sharing the initializers with ``SessionOptions.add_initializer`` saved nothing, ONNX Runtime converts
them per session).

Needs named free dimensions (the exporter names them batch, height, width); a graph whose free
dimensions are unnamed cannot be specialised by name, and runs on its dynamic session only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

MAX_SESSIONS = 4
PROMOTE_AFTER = 2
MAX_COUNTED = 256  # distinct shapes counted before the counts start over (bounds the counter's memory)

_env_lock = threading.Lock()
_env_registered = False


def use_shared_arena(so) -> None:
    """Make session options ``so`` allocate CPU memory from the process-wide arena (registered once)."""
    global _env_registered
    import onnxruntime as ort

    with _env_lock:
        if not _env_registered:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            try:
                ort.create_and_register_allocator(info, None)
            except Exception as e:  # already registered by someone else in this process: use theirs
                if "already" not in str(e).lower():
                    raise
            _env_registered = True
    so.add_session_config_entry("session.use_env_allocators", "1")


def free_dims(shape: Sequence) -> tuple[tuple[int, str], ...] | None:
    """(axis, name) of the input's named free dimensions among batch, height and width; None when one
    of them is free but unnamed (it cannot be fixed by name), () when the graph has none."""
    out = []
    for axis, d in enumerate(shape[:3]):
        if isinstance(d, int):
            continue
        if not isinstance(d, str) or not d or d.startswith("unk__"):
            return None
        out.append((axis, d))
    return tuple(out)


class ShapeSessions:
    """Specialised sessions by input shape, made lazily by ``make(overrides)`` (a dict name -> size).

    ``session_for(shape)`` returns the session for a (N, H, W, 3) batch, or None: run it on the dynamic
    session. Thread-safe; a session is made under the lock (other batches wait for it once).
    """

    def __init__(self, make: Callable[[dict[str, int]], object], dims: tuple[tuple[int, str], ...],
                 max_sessions: int = MAX_SESSIONS, promote_after: int = PROMOTE_AFTER) -> None:
        self.make, self._dims = make, dims
        self.max_sessions, self.promote_after = max_sessions, promote_after
        self._sessions: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._seen: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()
        self.made = 0  # sessions made so far (evicted ones included)
        self.hits = self.misses = 0  # batches run on a specialised / the dynamic session

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The shapes held now, least recently used first."""
        with self._lock:
            return list(self._sessions)

    def session_for(self, shape: Sequence[int]):
        key = tuple(int(v) for v in shape)
        with self._lock:
            s = self._sessions.get(key)
            if s is not None:
                self._sessions.move_to_end(key)
                self.hits += 1
                return s
            if len(self._seen) >= MAX_COUNTED and key not in self._seen:
                self._seen.clear()
            n = self._seen[key] = self._seen.get(key, 0) + 1
            if n < self.promote_after or self.max_sessions < 1:
                self.misses += 1
                return None
            s = self.make({name: key[axis] for axis, name in self._dims})
            self._sessions[key] = s
            self._seen.pop(key, None)
            self.made += 1
            self.hits += 1
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return s

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._seen.clear()
