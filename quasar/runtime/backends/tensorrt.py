"""TensorRT backend: a serialized engine ``X.engine`` plus its metadata sidecar ``X.engine.json``.

TensorRT (10.x tensor API) and cuda-python are imported only when this backend is created. Each
batch uses one staging slot (pinned host + device input, device and pinned host outputs):
``submit`` enqueues host->device copy (copy stream), ``execute_async_v3`` and device->host copies of
the outputs (compute stream, after an event wait) and returns at once; ``result`` waits for the
slot's "done" event. With two or more batches in flight the next batch's copy overlaps compute.
One execution context is shared; enqueues are serialised by a lock and ordered on one stream.

**Not yet run**: no TensorRT or CUDA code in this project has run yet (no GPU was available);
this is written against the library's documented API. ``bash .ci/gpu`` on a machine with an
NVIDIA GPU verifies it.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from quasar.contract import INPUT_NAME, OUTPUT_NAMES, ModelInfo
from quasar.errors import QuasarError
from quasar.runtime.backends.base import Backend, Pending
from quasar.sidecars import check_engine, read_engine_sidecar


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, info: ModelInfo, device_id: int = 0, staging_slots: int = 5) -> None:
        super().__init__(info)
        try:
            import tensorrt as trt
        except ImportError:
            raise QuasarError(f"{info.path}: the TensorRT backend needs the tensorrt Python package") from None
        from quasar.runtime.backends.cuda import CudaRuntime, StagingRing

        self.trt = trt
        self.cuda = CudaRuntime(device=device_id)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with open(info.path, "rb") as f:
            data = f.read()
        self._check_sidecar(trt, data, device_id)
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise QuasarError(f"{info.path}: TensorRT cannot deserialize this engine (built with another "
                              "TensorRT version or for another GPU?)")
        self._check_io()
        lo, _, hi = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.min_shape, self.max_shape = tuple(lo), tuple(hi)
        self.max_batch = int(hi[0])
        self.context = self.engine.create_execution_context()
        k = info.num_heads
        self.ring = StagingRing(self.cuda, staging_slots, math.prod(self.max_shape))
        for slot in self.ring.slots:
            nbytes = self.max_batch * k * 4
            slot.extra.update(
                dev_scores=self.cuda.malloc(nbytes), dev_margins=self.cuda.malloc(nbytes),
                host_scores_ptr=self.cuda.malloc_host(nbytes), host_margins_ptr=self.cuda.malloc_host(nbytes),
                done=self.cuda.event(),
            )
            slot.extra["host_scores"] = self.cuda.host_array(slot.extra["host_scores_ptr"], nbytes).view(np.float32)
            slot.extra["host_margins"] = self.cuda.host_array(slot.extra["host_margins_ptr"], nbytes).view(np.float32)
        self.copy_stream = self.cuda.stream()
        self.compute_stream = self.cuda.stream()
        self._lock = threading.Lock()

    def _check_sidecar(self, trt, data: bytes, device_id: int) -> None:
        """An engine only loads on the TensorRT version and GPU it was built for; say so before TensorRT fails."""
        path = self.info.path
        check_engine(path, data, read_engine_sidecar(path), str(trt.__version__), device=device_id)

    def _check_io(self) -> None:
        trt, eng, path = self.trt, self.engine, self.info.path
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        want = {INPUT_NAME: (trt.TensorIOMode.INPUT, trt.DataType.UINT8),
                OUTPUT_NAMES[0]: (trt.TensorIOMode.OUTPUT, trt.DataType.FLOAT),
                OUTPUT_NAMES[1]: (trt.TensorIOMode.OUTPUT, trt.DataType.FLOAT)}
        for name, (mode, dtype) in want.items():
            if name not in names:
                raise QuasarError(f"{path}: engine has no tensor {name!r} (tensors: {names})")
            if eng.get_tensor_mode(name) != mode or eng.get_tensor_dtype(name) != dtype:
                raise QuasarError(f"{path}: engine tensor {name!r} is {eng.get_tensor_mode(name)} "
                                  f"{eng.get_tensor_dtype(name)}, expected {mode} {dtype}")
        k = tuple(eng.get_tensor_shape(OUTPUT_NAMES[0]))[-1]
        if k not in (-1, self.info.num_heads):
            raise QuasarError(f"{path}: engine outputs {k} columns but the sidecar names {self.info.num_heads} heads")

    def accepts(self, image_shape: tuple[int, ...]) -> str | None:
        (lo_h, lo_w), (hi_h, hi_w) = self.min_shape[1:3], self.max_shape[1:3]
        h, w = image_shape[:2]
        if not (lo_h <= h <= hi_h and lo_w <= w <= hi_w):
            return (f"preprocessed size {h}x{w} is outside the engine's profile "
                    f"({lo_h}x{lo_w} to {hi_h}x{hi_w}); rebuild the engine for larger inputs")
        return None

    def batch_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.ring.fits(shape):
            return self.ring.view(self.ring.acquire(), shape)
        return super().batch_buffer(shape)

    def release(self, buffer: np.ndarray) -> None:
        slot = self.ring.slot_of(buffer)
        if slot is not None:
            self.ring.release(slot)

    def submit(self, batch: np.ndarray) -> Pending:
        shape = tuple(batch.shape)
        if any(s < lo or s > hi for s, lo, hi in zip(shape, self.min_shape, self.max_shape, strict=True)):
            raise QuasarError(f"{self.info.path}: batch shape {shape} is outside the engine's optimisation "
                              f"profile {self.min_shape}..{self.max_shape}; rebuild the engine or lower the batch size")
        slot = self.ring.slot_of(batch)
        if slot is None:
            slot = self.ring.acquire()
            np.copyto(self.ring.view(slot, shape), batch)
        cuda, x = self.cuda, slot.extra
        k = self.info.num_heads
        n = shape[0]
        with self._lock:
            cuda.h2d(slot.dev_ptr, slot.host_ptr, batch.nbytes, self.copy_stream)
            cuda.record(slot.copied, self.copy_stream)
            cuda.wait(self.compute_stream, slot.copied)
            ctx = self.context
            ctx.set_input_shape(INPUT_NAME, shape)
            ctx.set_tensor_address(INPUT_NAME, slot.dev_ptr)
            ctx.set_tensor_address(OUTPUT_NAMES[0], x["dev_scores"])
            ctx.set_tensor_address(OUTPUT_NAMES[1], x["dev_margins"])
            if not ctx.execute_async_v3(int(self.compute_stream)):
                self.ring.release(slot)
                raise QuasarError(f"{self.info.path}: TensorRT failed to enqueue a batch of shape {shape}")
            cuda.d2h(x["host_scores_ptr"], x["dev_scores"], n * k * 4, self.compute_stream)
            cuda.d2h(x["host_margins_ptr"], x["dev_margins"], n * k * 4, self.compute_stream)
            cuda.record(x["done"], self.compute_stream)
        return _TrtPending(self, slot, n)

    def _finish(self, slot, n: int) -> tuple[np.ndarray, np.ndarray]:
        k = self.info.num_heads
        try:
            self.cuda.sync_event(slot.extra["done"])
            scores = slot.extra["host_scores"][: n * k].reshape(n, k).copy()
            margins = slot.extra["host_margins"][: n * k].reshape(n, k).copy()
        finally:
            self.ring.release(slot)
        return self.check_outputs(scores, margins, n)

    def close(self) -> None:
        for slot in getattr(self.ring, "slots", []):
            x = slot.extra
            for fn, key in ((self.cuda.free, "dev_scores"), (self.cuda.free, "dev_margins"),
                            (self.cuda.free_host, "host_scores_ptr"), (self.cuda.free_host, "host_margins_ptr")):
                try:
                    fn(x[key])
                except Exception:
                    pass
        self.ring.close()
        self.context = self.engine = None


class _TrtPending(Pending):
    def __init__(self, backend: TensorRTBackend, slot, n: int) -> None:
        self.backend, self.slot, self.n = backend, slot, n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.backend._finish(self.slot, self.n)
