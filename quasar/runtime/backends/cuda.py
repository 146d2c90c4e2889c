"""Pinned host memory, device buffers, streams and events through cuda-python, without torch.

Used by the TensorRT backend and by ONNX Runtime's CUDA path (IOBinding). ``cuda-python`` is
imported only when a CUDA backend is created. A batch is assembled by the pipeline directly in a
pinned *slot* (``StagingRing.view``), copied to the slot's device buffer on a dedicated copy stream
while the previous batch computes (double buffering), and the slot returns to the ring when its
batch's result has been read.

**Not yet run**: no TensorRT or CUDA code in this project has run yet (no GPU was available);
this is written against the library's documented API. ``bash .ci/gpu`` on a machine with an
NVIDIA GPU verifies it.
"""

from __future__ import annotations

import ctypes
import math
import queue
from dataclasses import dataclass, field

import numpy as np


def load_cudart():
    """cuda-python's runtime module (``cuda.bindings.runtime`` since 12.6, ``cuda.cudart`` before)."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt
        except ImportError as e:
            raise ImportError("CUDA staging needs cuda-python (pip install cuda-python)") from e
    return rt


class CudaRuntime:
    """Checked wrappers: every call raises RuntimeError with CUDA's message on failure."""

    def __init__(self, rt=None, device: int = 0) -> None:
        self.rt = rt if rt is not None else load_cudart()
        self._ok = self.rt.cudaError_t.cudaSuccess
        self.device = device
        self.check(self.rt.cudaSetDevice(device))

    def check(self, ret):
        ret = ret if isinstance(ret, tuple) else (ret,)
        if ret[0] != self._ok:
            msg = self.rt.cudaGetErrorString(ret[0])
            msg = msg[1] if isinstance(msg, tuple) else msg
            msg = msg.decode() if isinstance(msg, bytes) else str(msg)
            raise RuntimeError(f"CUDA error {ret[0]}: {msg}")
        rest = ret[1:]
        return None if not rest else rest[0] if len(rest) == 1 else rest

    def malloc_host(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMallocHost(nbytes)))

    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(nbytes)))

    def free_host(self, ptr: int) -> None:
        self.check(self.rt.cudaFreeHost(ptr))

    def free(self, ptr: int) -> None:
        self.check(self.rt.cudaFree(ptr))

    def stream(self):
        return self.check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking))

    def event(self):
        return self.check(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDisableTiming))

    def h2d(self, dst: int, src: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def d2h(self, dst: int, src: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def record(self, event, stream) -> None:
        self.check(self.rt.cudaEventRecord(event, stream))

    def wait(self, stream, event) -> None:
        """Make ``stream`` wait (on the device) until ``event`` has happened."""
        self.check(self.rt.cudaStreamWaitEvent(stream, event, 0))

    def sync_event(self, event) -> None:
        self.check(self.rt.cudaEventSynchronize(event))

    def destroy_event(self, event) -> None:
        self.check(self.rt.cudaEventDestroy(event))

    def destroy_stream(self, stream) -> None:
        self.check(self.rt.cudaStreamDestroy(stream))

    @staticmethod
    def host_array(ptr: int, nbytes: int) -> np.ndarray:
        """A uint8 numpy view of host memory at ``ptr`` (no copy; the memory must outlive the view)."""
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


@dataclass
class Slot:
    """One staging buffer: pinned host input, device input, and whatever the backend attaches."""

    index: int
    host_ptr: int
    host: np.ndarray
    dev_ptr: int
    copied: object  # event recorded after the host->device copy
    extra: dict = field(default_factory=dict)


class StagingRing:
    """A fixed set of (pinned host, device) input slots handed out in turn; bounded memory by design."""

    def __init__(self, cuda: CudaRuntime, nslots: int, slot_bytes: int) -> None:
        self.cuda = cuda
        self.slot_bytes = int(slot_bytes)
        self.slots: list[Slot] = []
        self._free: queue.Queue[Slot] = queue.Queue()
        try:
            for i in range(nslots):
                hp = cuda.malloc_host(self.slot_bytes)
                slot = Slot(i, hp, cuda.host_array(hp, self.slot_bytes), cuda.malloc(self.slot_bytes), cuda.event())
                self.slots.append(slot)
                self._free.put(slot)
        except Exception:
            self.close()
            raise
        self._by_addr = {s.host_ptr: s for s in self.slots}

    def fits(self, shape: tuple[int, ...]) -> bool:
        return math.prod(shape) <= self.slot_bytes

    def acquire(self) -> Slot:
        """Block until a slot is free (the consumer frees slots as it reads results)."""
        return self._free.get()

    def release(self, slot: Slot) -> None:
        self._free.put(slot)

    def view(self, slot: Slot, shape: tuple[int, ...]) -> np.ndarray:
        return slot.host[: math.prod(shape)].reshape(shape)

    def slot_of(self, arr: np.ndarray) -> Slot | None:
        """The slot whose pinned memory ``arr`` is (a view from :meth:`view`), else None."""
        if not arr.flags.c_contiguous:
            return None
        return self._by_addr.get(arr.ctypes.data)

    def close(self) -> None:
        for s in self.slots:
            for fn, arg in ((self.cuda.free_host, s.host_ptr), (self.cuda.free, s.dev_ptr),
                            (self.cuda.destroy_event, s.copied)):
                try:
                    fn(arg)
                except Exception:
                    pass
        self.slots = []
        self._by_addr = {}
