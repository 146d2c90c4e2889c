"""ONNX Runtime backend: CPU, or CUDA / TensorRT execution providers when onnxruntime-gpu is installed.

On CPU a batch is one ``session.run`` (ORT sessions are thread-safe for ``run``). With the CUDA or
TensorRT EP the batch goes through IOBinding: the pipeline assembles it in a pinned slot,
``submit`` enqueues the host->device copy on a copy stream and returns, and ``result`` runs the
graph on the device buffer. The copy of batch i+1 therefore overlaps the compute of batch i.
Without cuda-python the GPU path falls back to ``session.run`` with host arrays (ORT copies).

The CPU path is tested here; the CUDA and TensorRT execution-provider paths are **not yet run**
(no GPU was available). ``bash .ci/gpu`` on a machine with an NVIDIA GPU verifies them.
"""

from __future__ import annotations

import threading

import numpy as np

from quasar.contract import INPUT_NAME, OUTPUT_NAMES, ModelInfo
from quasar.errors import QuasarError
from quasar.integrity import check_input_shape
from quasar.runtime.backends.base import Backend, Done, Pending, run_in_fixed_batches

OPT_LEVELS = ("disable", "basic", "extended", "all")
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def best_device() -> str:
    """``cuda`` when the CUDA EP is present (onnxruntime-gpu), else ``cpu``."""
    return "cuda" if "CUDAExecutionProvider" in available_providers() else "cpu"


def memory_pattern(info: ModelInfo) -> bool:
    """Whether the session plans memory per input shape (ORT's ``enable_mem_pattern``): on only for
    graphs that see one shape. ORT keeps one plan per shape it has run and never drops one, so a
    graph that takes any size (``dynamic_size``: one shape per image size) would grow with the number
    of distinct sizes scored (peak RSS for 300 sizes, pattern on vs off:
    benchmarks/results/ort_memory.md)."""
    return not info.dynamic_size


def session_options(optimization: str = "all", threads: int | None = None, spin: bool = False,
                    mem_pattern: bool = False, shared_arena: bool = False,
                    overrides: dict[str, int] | None = None):
    """The runtime's ``SessionOptions``: graph optimisation level, intra-op threads (None: ORT's),
    no spinning unless ``spin`` (decode threads share the cores: ORT's idle workers would otherwise
    busy-wait on them), ORT's memory pattern only when asked, the process-wide arena
    (:func:`~quasar.runtime.backends.shapes.use_shared_arena`) and free dimensions fixed by name
    (``overrides``: name -> size). The benchmarks that time ORT sessions build theirs here too."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    so.enable_mem_pattern = mem_pattern
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if shared_arena:
        from quasar.runtime.backends.shapes import use_shared_arena

        use_shared_arena(so)
    for name, size in (overrides or {}).items():
        so.add_free_dimension_override_by_name(name, int(size))
    return so


def trt_ep_options(info: ModelInfo, max_batch: int) -> dict[str, str]:
    """TensorRT EP options: a persistent engine cache, and one optimisation profile covering every
    input the spec can produce, so the EP does not rebuild its engine for each new image shape."""
    from quasar.paths import cache_dir

    spec = info.spec
    opts = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir() / "ort-tensorrt"),
            "trt_timing_cache_enable": "True"}
    if spec.policy == "fixed":
        return opts  # a static graph: one shape, no profile to give
    if info.dynamic_size:
        m, s = max(spec.min_size, spec.size_multiple), spec.size
        opt_short = max(m, (s * 3 // 4) // spec.size_multiple * spec.size_multiple)
        opts.update(trt_profile_min_shapes=f"images:1x{m}x{m}x3",
                    trt_profile_opt_shapes=f"images:{max_batch}x{opt_short}x{s}x3",
                    trt_profile_max_shapes=f"images:{max_batch}x{s}x{s}x3")
    else:
        s = spec.size
        opts.update(trt_profile_min_shapes=f"images:1x{s}x{s}x3", trt_profile_opt_shapes=f"images:{max_batch}x{s}x{s}x3",
                    trt_profile_max_shapes=f"images:{max_batch}x{s}x{s}x3")
    return opts


class OrtBackend(Backend):
    """Args:
        device: ``cpu``, ``cuda`` or ``tensorrt`` (the EP); None picks CUDA when available.
        threads: intra-op threads (None: ORT's default, one per core).
        optimization: graph optimisation level, one of ``OPT_LEVELS``.
        device_id: GPU index for the CUDA/TensorRT EPs.
        staging_slots, slot_bytes: pinned staging ring for the CUDA path (see backends/cuda.py).
        spin: let idle intra-op threads busy-wait (off: they would steal the decode threads' cores).
        max_batch: largest batch expected; sizes the TensorRT EP's optimisation profile.
        shape_sessions: on CPU, run the input shapes a run keeps feeding on sessions with the graph's
            free dimensions fixed (:mod:`quasar.runtime.backends.shapes`; same scores, faster); off:
            every batch on the one dynamic session.
    """

    def __init__(self, info: ModelInfo, device: str | None = None, threads: int | None = None,
                 optimization: str = "all", device_id: int = 0, staging_slots: int = 5,
                 slot_bytes: int | None = None, spin: bool = False, max_batch: int = 32,
                 embeddings: bool = False, shape_sessions: bool = True) -> None:
        super().__init__(info)
        import onnxruntime as ort

        device = device or best_device()
        if device not in PROVIDERS:
            raise QuasarError(f"unknown onnxruntime device {device!r}; expected one of {sorted(PROVIDERS)}")
        missing = [p for p in PROVIDERS[device][:-1] if p not in ort.get_available_providers()]
        if missing:
            raise QuasarError(f"onnxruntime has no {missing[0]} here (install onnxruntime-gpu and CUDA)")
        if optimization not in OPT_LEVELS:
            raise QuasarError(f"unknown graph optimisation level {optimization!r}; expected one of {OPT_LEVELS}")
        self._shapes = None
        want_shapes = shape_sessions and device == "cpu"
        so = session_options(optimization, threads, spin, memory_pattern(info), shared_arena=want_shapes)
        providers: list = list(PROVIDERS[device])
        if device != "cpu":
            opts = {"CUDAExecutionProvider": {"device_id": str(device_id)},
                    "TensorrtExecutionProvider": {"device_id": str(device_id), **trt_ep_options(info, max_batch)}}
            providers = [(p, opts[p]) if p in opts else p for p in providers]
        source, self.embedding_output = info.path, None
        if embeddings:  # the unit embedding as a third output (quasar.runtime.embedding); the file is unchanged
            from quasar.runtime.embedding import embedding_session_source

            source, self.embedding_output = embedding_session_source(info.path)
        try:
            self.session = ort.InferenceSession(source, so, providers=providers)
        except Exception as e:  # ORT raises its own exception types
            raise QuasarError(f"{info.path}: ONNX Runtime cannot load this model ({str(e).strip()[:300]})") from None
        self.device = "cpu" if device == "cpu" else "cuda"
        self.name = f"onnxruntime-{device}"
        self.device_id = device_id
        self._check_io()
        if want_shapes:
            self._init_shape_sessions(optimization, threads, spin, source, providers)
        self._lock = threading.Lock()
        self._ring = None
        if self.device == "cuda":
            self._init_staging(staging_slots, slot_bytes)

    # ------------------------------------------------------------------ validation
    def _check_io(self) -> None:
        path, k = self.info.path, self.info.num_heads
        ins = self.session.get_inputs()
        if len(ins) != 1 or ins[0].name != INPUT_NAME:
            raise QuasarError(f"{path}: expected one input named 'images', found {[i.name for i in ins]}")
        x = ins[0]
        if x.type != "tensor(uint8)" or len(x.shape) != 4 or x.shape[3] != 3:
            raise QuasarError(f"{path}: input 'images' must be uint8 [N, H, W, 3] (NHWC), is {x.type} {x.shape}")
        self.fixed_batch = check_input_shape(path, x.shape, self.info)
        if self.fixed_batch:
            self.max_batch = self.fixed_batch
        outs = {o.name: o for o in self.session.get_outputs()}
        for name in OUTPUT_NAMES:
            o = outs.get(name)
            if o is None:
                raise QuasarError(f"{path}: the graph has no {name!r} output (outputs: {sorted(outs)})")
            if o.type != "tensor(float)" or len(o.shape) != 2:
                raise QuasarError(f"{path}: output {name!r} must be float32 [N, K], is {o.type} {o.shape}")
            if isinstance(o.shape[1], int) and o.shape[1] != k:
                raise QuasarError(f"{path}: output {name!r} has {o.shape[1]} columns but the metadata names "
                                  f"{k} heads {list(self.info.heads)}")

    def _init_shape_sessions(self, optimization: str, threads: int | None, spin: bool, source, providers) -> None:
        from quasar.runtime.backends.shapes import ShapeSessions, free_dims

        dims = free_dims(self.session.get_inputs()[0].shape)
        if not dims:  # a static graph (nothing to fix) or unnamed free dimensions (cannot be fixed by name)
            return
        import onnxruntime as ort

        def make(overrides: dict[str, int]):
            # No memory pattern: its plan is one block per shape that the shared arena cannot reuse across
            # shapes (tried: RSS grew by about one batch's activations per shape, for no measurable speed).
            o = session_options(optimization, threads, spin, False, shared_arena=True, overrides=overrides)
            try:
                return ort.InferenceSession(source, o, providers=providers)
            except Exception as e:  # ORT raises its own exception types
                raise QuasarError(f"{self.info.path}: ONNX Runtime cannot specialise this model to {overrides} "
                                  f"({str(e).strip()[:300]})") from None

        self._shapes = ShapeSessions(make, dims)

    # ------------------------------------------------------------------ CPU
    def session_for(self, shape: tuple[int, ...]):
        """The session a batch of this shape runs on: a specialised one when held (or due), else the dynamic one."""
        if self._shapes is not None:
            s = self._shapes.session_for(shape)
            if s is not None:
                return s
        return self.session

    def _run_host(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.fixed_batch and batch.shape[0] != self.fixed_batch:
            return run_in_fixed_batches(self._run_host, batch, self.fixed_batch)
        session = self.session_for(batch.shape)
        if self.embedding_output is not None:
            scores, margins, emb = session.run([*OUTPUT_NAMES, self.embedding_output], {INPUT_NAME: batch})
            return (*self.check_outputs(scores, margins, batch.shape[0]), self._check_embedding(emb, batch.shape[0]))
        scores, margins = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return self.check_outputs(scores, margins, batch.shape[0])

    def _check_embedding(self, emb: np.ndarray, n: int) -> np.ndarray:
        if emb.ndim != 2 or emb.shape[0] != n:
            raise QuasarError(f"{self.info.path}: embedding output has shape {emb.shape}, expected ({n}, D)")
        return np.asarray(emb, dtype=np.float32)

    def accepts(self, image_shape: tuple[int, ...]) -> str | None:
        """Always None: oNNX Runtime runs any size the preprocessing spec produces."""
        return None

    def submit(self, batch: np.ndarray) -> Pending:
        if self._ring is None:
            return Done(*self._run_host(batch))
        return self._submit_cuda(batch)

    # ------------------------------------------------------------------ CUDA (IOBinding, pinned, double-buffered)
    def _init_staging(self, nslots: int, slot_bytes: int | None) -> None:
        try:
            from quasar.runtime.backends.cuda import CudaRuntime, StagingRing

            self._cuda = CudaRuntime(device=self.device_id)
            spec = self.info.spec
            self._ring = StagingRing(self._cuda, nslots, slot_bytes or 32 * spec.size * spec.size * 3)
            self._copy_stream = self._cuda.stream()
        except ImportError:
            self._ring = None  # no cuda-python: plain session.run, ORT copies from pageable memory

    def batch_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        if self._ring is not None and self._ring.fits(shape):
            return self._ring.view(self._ring.acquire(), shape)
        return super().batch_buffer(shape)

    def release(self, buffer: np.ndarray) -> None:
        if self._ring is not None:
            slot = self._ring.slot_of(buffer)
            if slot is not None:
                self._ring.release(slot)

    def _submit_cuda(self, batch: np.ndarray) -> Pending:
        if self.fixed_batch and batch.shape[0] != self.fixed_batch:
            try:
                return Done(*self._run_host(batch))  # padded or split: rare (a short final batch)
            finally:
                self.release(batch)
        ring = self._ring
        slot = ring.slot_of(batch)
        if slot is None:
            if not ring.fits(batch.shape):
                return Done(*self._run_host(batch))  # oversized batch: let ORT copy it
            slot = ring.acquire()
            np.copyto(ring.view(slot, batch.shape), batch)
        with self._lock:
            self._cuda.h2d(slot.dev_ptr, slot.host_ptr, batch.nbytes, self._copy_stream)
            self._cuda.record(slot.copied, self._copy_stream)
        return _OrtCudaPending(self, slot, tuple(batch.shape))

    def _finish_cuda(self, slot, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        try:
            with self._lock:
                self._cuda.sync_event(slot.copied)  # usually long done: it was enqueued a batch earlier
                binding = self.session.io_binding()
                binding.bind_input(INPUT_NAME, "cuda", self.device_id, np.uint8, list(shape), slot.dev_ptr)
                binding.bind_output(OUTPUT_NAMES[0])
                binding.bind_output(OUTPUT_NAMES[1])
                if self.embedding_output is not None:
                    binding.bind_output(self.embedding_output)
                self.session.run_with_iobinding(binding)
                outs = binding.copy_outputs_to_cpu()
        finally:
            self._ring.release(slot)
        checked = self.check_outputs(outs[0], outs[1], shape[0])
        if self.embedding_output is not None:
            return (*checked, self._check_embedding(outs[2], shape[0]))
        return checked

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._shapes is not None:
            self._shapes.clear()
        self.session = None


class _OrtCudaPending(Pending):
    def __init__(self, backend: OrtBackend, slot, shape: tuple[int, ...]) -> None:
        self.backend, self.slot, self.shape = backend, slot, shape

    def result(self) -> tuple[np.ndarray, ...]:
        return self.backend._finish_cuda(self.slot, self.shape)
