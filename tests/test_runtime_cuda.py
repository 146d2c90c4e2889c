"""CUDA paths: pinned staging and IOBinding double buffering, exercised with a fake CUDA runtime here,
and the real GPU backends (ORT CUDA EP, TensorRT, torch CUDA), which run only where a GPU exists."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import types
from enum import Enum

import numpy as np
import pytest
from fixtures_images import pattern

from quasar.runtime import Scorer
from quasar.runtime.backends.cuda import CudaRuntime, StagingRing
from quasar.runtime.pipeline import Pipeline

pytest.importorskip("onnx")
from quasar.testing import write_tiny_model


class FakeCudart:
    """Just enough of cuda-python's runtime API, on host memory: copies happen at once."""

    class cudaError_t(Enum):
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind(Enum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    cudaStreamNonBlocking = 1
    cudaEventDisableTiming = 2

    def __init__(self) -> None:
        self.buffers: dict[int, ctypes.Array] = {}
        self.copies: list[tuple[str, int]] = []
        self.freed: list[int] = []
        self.recorded = 0

    def _alloc(self, n: int):
        buf = ctypes.create_string_buffer(n)
        self.buffers[ctypes.addressof(buf)] = buf
        return self.cudaError_t.cudaSuccess, ctypes.addressof(buf)

    def cudaSetDevice(self, d):
        return (self.cudaError_t.cudaSuccess,)

    def cudaGetErrorString(self, e):
        return self.cudaError_t.cudaSuccess, b"fake error"

    cudaMallocHost = cudaMalloc = _alloc

    def cudaFreeHost(self, p):
        self.freed.append(p)
        return (self.cudaError_t.cudaSuccess,)

    cudaFree = cudaFreeHost

    def cudaStreamCreateWithFlags(self, f):
        return self.cudaError_t.cudaSuccess, types.SimpleNamespace(kind="stream")

    def cudaEventCreateWithFlags(self, f):
        return self.cudaError_t.cudaSuccess, types.SimpleNamespace(kind="event")

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        self.copies.append((kind.name, n))
        return (self.cudaError_t.cudaSuccess,)

    def cudaEventRecord(self, ev, stream):
        self.recorded += 1
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamWaitEvent(self, stream, ev, flags):
        return (self.cudaError_t.cudaSuccess,)

    def cudaEventSynchronize(self, ev):
        return (self.cudaError_t.cudaSuccess,)

    def cudaEventDestroy(self, ev):
        return (self.cudaError_t.cudaSuccess,)

    cudaStreamDestroy = cudaEventDestroy


class FakeIOBinding:
    """ORT IOBinding look-alike: reads the 'device' input from the fake device pointer."""

    def __init__(self, session) -> None:
        self.session, self.inputs, self.outputs = session, {}, None

    def bind_input(self, name, device_type, device_id, element_type, shape, buffer_ptr):
        assert device_type == "cuda"
        n = int(np.prod(shape))
        raw = (ctypes.c_uint8 * n).from_address(buffer_ptr)
        self.inputs[name] = np.frombuffer(raw, dtype=element_type).reshape(shape).copy()

    def bind_output(self, name):
        pass

    def copy_outputs_to_cpu(self):
        return self.outputs


class FakeCudaSession:
    def __init__(self, real) -> None:
        self.real = real
        self.runs = 0

    def io_binding(self):
        return FakeIOBinding(self)

    def run_with_iobinding(self, binding):
        self.runs += 1
        binding.outputs = self.real.run(["scores", "margins"], binding.inputs)

    def run(self, *a, **k):
        return self.real.run(*a, **k)


def test_check_raises_with_cuda_message():
    cuda = CudaRuntime(rt=FakeCudart())
    with pytest.raises(RuntimeError, match="fake error"):
        cuda.check((FakeCudart.cudaError_t.cudaErrorMemoryAllocation, None))


def test_staging_ring_slots_views_and_teardown():
    rt = FakeCudart()
    ring = StagingRing(CudaRuntime(rt=rt), nslots=3, slot_bytes=1000)
    slots = [ring.acquire() for _ in range(3)]
    assert len({s.host_ptr for s in slots}) == 3
    v = ring.view(slots[1], (2, 10, 10, 3))
    v[:] = 7
    assert ring.slot_of(v) is slots[1] and ring.slot_of(np.zeros((2, 10, 10, 3), np.uint8)) is None
    assert ring.fits((1, 10, 10, 3)) and not ring.fits((2, 20, 10, 3))
    ring.release(slots[0])
    assert ring.acquire() is slots[0]
    ring.close()
    assert len(rt.freed) == 6  # 3 pinned + 3 device buffers


def test_ort_cuda_iobinding_path_with_fake_device(tiny):
    """The CUDA path (pinned slots, async H2D on a copy stream, IOBinding) gives the CPU path's scores."""
    imgs = [pattern(120 + 8 * (i % 3), 160, seed=i) for i in range(20)]
    with Scorer(tiny, batch_size=4, workers=2) as cpu:
        want = cpu.score(imgs)
    s = Scorer(tiny, batch_size=4, workers=2)
    backend = s.backend
    rt = FakeCudart()
    backend._cuda = CudaRuntime(rt=rt)
    backend._ring = StagingRing(backend._cuda, 5, 4 * 128 * 128 * 3)
    backend._copy_stream = backend._cuda.stream()
    fake = FakeCudaSession(backend.session)
    backend.session = fake
    backend.device = "cuda"
    s.pipeline = Pipeline(s.preparer, backend, batch_size=4, workers=2)
    assert s.pipeline.depth == 2
    got = s.score(imgs)
    assert [r.source for r in got] == [r.source for r in want]
    for a, b in zip(got, want, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)
    assert fake.runs >= 5 and all(kind == "cudaMemcpyHostToDevice" for kind, _ in rt.copies)
    assert backend._ring._free.qsize() == 5  # every slot came back
    # an abandoned run gives its staging slots back too
    it = s.score_iter(imgs * 5)
    next(it)
    it.close()
    assert backend._ring._free.qsize() == 5
    s.close()


def _has_cuda_ep() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda_ep(), reason="no CUDA execution provider (onnxruntime-gpu + a GPU) on this machine")
def test_ort_cuda_matches_cpu(tiny):
    imgs = [pattern(120, 160, seed=i) for i in range(12)]
    with Scorer(tiny, device="cpu") as cpu, Scorer(tiny, device="cuda", batch_size=4) as gpu:
        assert gpu.backend.name == "onnxruntime-cuda"
        for a, b in zip(cpu.score(imgs), gpu.score(imgs), strict=True):
            assert a.scores == pytest.approx(b.scores, abs=1e-4)


@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT is not installed and there is no GPU on this machine; the engine backend "
                           "(pinned staging, double-buffered copies, execute_async_v3) cannot run here")
def test_tensorrt_engine_matches_onnxruntime(tiny, tmp_path):  # pragma: no cover - GPU only
    """Build an engine with quasar.export.tensorrt (or take $QUASAR_TEST_ENGINE) and compare with ORT CPU."""
    engine, onnx_path = os.environ.get("QUASAR_TEST_ENGINE"), os.environ.get("QUASAR_TEST_ENGINE_ONNX", tiny)
    if not engine:
        from quasar.export.tensorrt import build_engine

        engine = build_engine(tiny, str(tmp_path / "tiny.engine"))
    imgs = [pattern(300 + 20 * (i % 3), 400, seed=i) for i in range(40)]
    with Scorer(onnx_path, device="cpu") as cpu, Scorer(engine, batch_size=8) as trt:
        assert trt.backend.name == "tensorrt"
        for a, b in zip(cpu.score(imgs), trt.score(imgs), strict=True):
            assert a.margins == pytest.approx(b.margins, abs=2e-3)  # fp16 tactics may drift a little


def test_tensorrt_ep_profile_covers_every_spec_shape(tiny, tmp_path):
    from quasar.runtime import load_model_info
    from quasar.runtime.backends.ort import trt_ep_options
    from quasar.testing import TINY_CROP_SPEC

    opts = trt_ep_options(load_model_info(tiny), 16)  # native, size 128, multiple 16, min 32
    assert opts["trt_profile_min_shapes"] == "images:1x32x32x3"
    assert opts["trt_profile_max_shapes"] == "images:16x128x128x3"
    assert opts["trt_engine_cache_enable"] == "True"
    crop = load_model_info(write_tiny_model(tmp_path / "c.onnx", spec=TINY_CROP_SPEC))
    assert trt_ep_options(crop, 4)["trt_profile_max_shapes"] == "images:4x64x64x3"
