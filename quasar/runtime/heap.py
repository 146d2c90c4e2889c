"""Give the C heap's free memory back to the system (glibc's ``malloc_trim``), for long-lived processes.

A scoring process allocates and frees large buffers all the time: decoded photos (tens of MB each),
resized arrays, ONNX Runtime's intermediates for each input shape, request bodies. glibc keeps
what was freed in its heaps for reuse instead of returning it, one heap ("arena") per thread that
ever allocated at the same time as another, so a replica that has seen a burst of large, varied
images stays at its high-water mark and creeps up as new thread/arena pairings fragment the heaps
(``benchmarks/results/serve_memory.md``). :func:`trim_heap` returns the free pages at the top of
every arena and the free whole pages inside them; it costs a walk of the free lists (milliseconds).

Only where the C library is glibc (Linux); elsewhere it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

ARENAS_ENV = "MALLOC_ARENA_MAX"  # glibc: most heaps its threads share (read when the process starts)


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return free heap memory to the system; False where there is no ``malloc_trim`` (not glibc)."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
