"""Torch backend (CPU/CUDA): rebuild the fused model in torch from an ONNX file's metadata.

Useful where ONNX Runtime is missing or to debug an export: the encoder comes from its id
(``quasar.encoder``) with the graph's preprocessing spec, and the heads from the graph's
initializers ``quasar.head_weights`` [K_base, D], ``quasar.head_biases`` (if any) and
``quasar.logit_scales`` [K], plus ``quasar.combine`` from the metadata (format version 1 graphs
have ``quasar.centroids`` [2K, D] instead, rows good_0, bad_0, ..., whose row differences are the
weights). The forward pass is computed by the exporter's own :class:`quasar.export.fused.FusedScorer`.

This is the only runtime module that imports torch (and ``onnx``, to read the initializers), and it
is imported only when ``backend="torch"`` is requested. ``threads`` sets torch's process-wide
intra-op thread count. On CUDA a batch is copied from pinned memory on a side stream, and the compute
stream waits for it, so the copy of batch i+1 overlaps the compute of batch i.

:class:`~quasar.runtime.backends.torch_options.TorchOptions` choose the encoder's precision
(fp32/fp16/bf16; the heads stay float32), channels-last, ``torch.compile`` or one CUDA graph per batch
shape (CUDA only), and whether images are decoded and resized on the device
(:mod:`quasar.runtime.backends.torch_device`: the default on CUDA). **The CUDA side is not yet run**
(no GPU was available); the same code runs and is tested with ``device="cpu"``.
"""

from __future__ import annotations

import numpy as np

from quasar.contract import (
    CENTROIDS_INITIALIZER,
    COMBINE_BIASES_INITIALIZER,
    HEAD_BIASES_INITIALIZER,
    HEAD_WEIGHTS_INITIALIZER,
    LOGIT_SCALES_INITIALIZER,
    ModelInfo,
)
from quasar.errors import QuasarError
from quasar.runtime.backends.base import Backend, Done, Pending
from quasar.runtime.backends.torch_options import TorchOptions

MAX_CUDA_GRAPHS = 64  # batch shapes captured before further shapes run eagerly (each graph holds its buffers)


def read_head_initializers(path: str, num_heads: int, combine: list | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head weights [K_base, D], logit_scales [K], biases [K]) from the graph; QuasarError if absent
    or misshapen."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise QuasarError("the torch backend needs the onnx package (pip install quasar-engine[export])") from None
    model = onnx.load(path, load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    weights_name = HEAD_WEIGHTS_INITIALIZER if HEAD_WEIGHTS_INITIALIZER in inits else CENTROIDS_INITIALIZER
    missing = [n for n in (weights_name, LOGIT_SCALES_INITIALIZER) if n not in inits]
    if missing:
        raise QuasarError(f"{path}: the graph has no initializer {missing[0]!r}; the torch backend cannot "
                          "rebuild this model (use onnxruntime)")
    w = numpy_helper.to_array(inits[weights_name]).astype(np.float32)
    scales = numpy_helper.to_array(inits[LOGIT_SCALES_INITIALIZER]).astype(np.float32).reshape(-1)
    k_base = num_heads - len(combine or [])
    if weights_name == CENTROIDS_INITIALIZER and w.ndim == 2 and w.shape[0] == 2 * k_base:
        w = w[0::2] - w[1::2]
    biases = np.zeros(num_heads, np.float32)
    for name, part in ((HEAD_BIASES_INITIALIZER, slice(0, k_base)), (COMBINE_BIASES_INITIALIZER, slice(k_base, None))):
        if name in inits:
            values = numpy_helper.to_array(inits[name]).astype(np.float32).reshape(-1)
            if values.shape != biases[part].shape:
                raise QuasarError(f"{path}: {name} has shape {values.shape}, expected {biases[part].shape}")
            biases[part] = values
    if w.ndim != 2 or w.shape[0] != k_base or scales.shape != (num_heads,):
        raise QuasarError(f"{path}: {weights_name} {w.shape} / {LOGIT_SCALES_INITIALIZER} {scales.shape} do not "
                          f"fit {num_heads} heads")
    return w, scales, biases


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, info: ModelInfo, device: str | None = None, threads: int | None = None,
                 options: TorchOptions | None = None) -> None:
        super().__init__(info)
        if info.kind != "onnx":
            raise QuasarError(f"{info.path}: the torch backend rebuilds models from ONNX files, not engines")
        try:
            import torch

            from quasar.encoders import create_encoder
        except ImportError as e:
            raise QuasarError(f"the torch backend needs torch and the export extras ({e})") from None
        self.torch = torch
        self.options = options = options or TorchOptions()
        combine = [(r, list(idx)) for r, idx in info.combine]
        cents, scales, biases = read_head_initializers(info.path, info.num_heads, combine)
        try:
            encoder = create_encoder(info.encoder, info.spec)
        except (ValueError, ImportError, FileNotFoundError) as e:
            raise QuasarError(f"{info.path}: cannot rebuild encoder {info.encoder!r} in torch ({e})") from None
        if getattr(encoder, "embed_dim", cents.shape[1]) != cents.shape[1]:
            raise QuasarError(f"{info.path}: encoder {info.encoder} embeds to {encoder.embed_dim} dims but the "
                              f"centroids have {cents.shape[1]}")
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise QuasarError(f"the torch backend runs on cpu or cuda, not {device}")
        if device == "cuda" and not torch.cuda.is_available():
            raise QuasarError("torch has no CUDA device here")
        options.check_device(device)
        if device == "cuda" and options.precision == "fp32":
            # fp32 means fp32: cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere and later, as
            # coarse as fp16, which the parity with ONNX Runtime (1e-3) would not survive. Process-wide flags.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        if threads:
            torch.set_num_threads(int(threads))
        self.device = device
        self.name = f"torch-{device}" + ("" if options.precision == "fp32" else f"-{options.precision}")
        # The exporter's own module (quasar.export.fused), so both compute exactly the same function.
        from quasar.export.fused import FusedScorer

        module = FusedScorer(encoder, cents, scales, list(info.heads), head_biases=biases, combine=combine).eval()
        dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[options.precision]
        if dtype is not None:
            module.encoder.to(dtype)  # the heads (and the embedding's normalisation) stay float32
        channels_last = options.channels_last if options.channels_last is not None else device == "cuda"
        module = module.to(device, memory_format=torch.channels_last) if channels_last else module.to(device)
        module.head.place_constants(device)  # no host->device copy inside forward (CUDA graphs)
        self.module = module
        self._forward = torch.compile(module) if options.compile else module
        self._graphs = CudaGraphs(torch, module) if options.cuda_graphs else None
        if device == "cuda":
            self._copy_stream = torch.cuda.Stream()
            self._pinned: dict[int, object] = {}

    def forward(self, x):
        """(scores, margins) float32 device tensors for a uint8 NHWC batch already on the device."""
        with self.torch.inference_mode():
            if self._graphs is not None:
                return self._graphs(x)
            scores, margins = self._forward(x)
            return scores.float(), margins.float()

    def make_pipeline(self, preparer, *, batch_size: int, workers: int, window: int | None = None):
        """The device-side pipeline (:mod:`~quasar.runtime.backends.torch_device`) when the options ask
        for decoding on the device; None: the runtime's CPU pipeline."""
        if not self.options.decodes_on_device(self.device):
            return None
        from quasar.runtime.backends.torch_device import DevicePipeline, device_resize_unsupported

        why = device_resize_unsupported(self.info.spec)
        if why is not None:  # auto: the CPU pipeline does it; asked for explicitly: say why not
            if self.options.device_decode == "on":
                raise QuasarError(f"{self.info.path}: cannot preprocess on the device: {why}")
            return None
        try:
            return DevicePipeline(preparer, self, batch_size=batch_size, workers=workers, window=window,
                                  pinned=self.options.pinned)
        except ImportError as e:
            raise QuasarError(f"decoding on the device needs torchvision ({e}); or use --device-decode off") from None

    def batch_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.device != "cuda":
            return super().batch_buffer(shape)
        t = self.torch.empty(shape, dtype=self.torch.uint8).pin_memory()
        arr = t.numpy()
        self._pinned[arr.ctypes.data] = t  # keep the pinned tensor alive until submit
        return arr

    def release(self, buffer: np.ndarray) -> None:
        if self.device == "cuda":
            self._pinned.pop(buffer.ctypes.data, None)

    def accepts(self, image_shape: tuple[int, ...]) -> str | None:
        """Always None: the torch module runs any size the preprocessing spec produces."""
        return None

    def submit(self, batch: np.ndarray) -> Pending:
        torch = self.torch
        if self.device == "cpu":
            scores, margins = self.forward(torch.from_numpy(np.ascontiguousarray(batch)))
            return Done(*self.check_outputs(scores.numpy(), margins.numpy(), batch.shape[0]))
        host = self._pinned.pop(batch.ctypes.data, None)
        if host is None:
            host = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory()
        compute = torch.cuda.current_stream()
        with torch.cuda.stream(self._copy_stream):
            x = host.to("cuda", non_blocking=True)
        compute.wait_stream(self._copy_stream)
        x.record_stream(compute)
        scores, margins = self.forward(x)
        return TorchPending(self, scores, margins, batch.shape[0])

    def close(self) -> None:
        self.module = self._forward = self._graphs = None


class CudaGraphs:
    """One CUDA graph per input shape, captured on first use (after a warm-up on a side stream, both in
    inference mode): a replay is one launch instead of hundreds. Past ``MAX_CUDA_GRAPHS`` shapes, new
    shapes run eagerly. Returns fresh float32 tensors (safe to keep). ``benchmarks/quasar_bench/gpu.py``
    times the same runner."""

    def __init__(self, torch, module) -> None:
        import threading

        self.torch, self.module = torch, module
        self.graphs: dict[tuple[int, ...], tuple] = {}
        self.lock = threading.Lock()

    def _capture(self, shape: tuple[int, ...]):
        torch = self.torch
        static_in = torch.zeros(shape, dtype=torch.uint8, device="cuda")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # cuDNN autotuning and lazy initialisation before the capture
                self.module(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return graph, static_in, static_out

    def __call__(self, x):
        shape = tuple(x.shape)
        with self.lock:
            if shape not in self.graphs:
                if len(self.graphs) >= MAX_CUDA_GRAPHS:
                    scores, margins = self.module(x)
                    return scores.float(), margins.float()
                self.graphs[shape] = self._capture(shape)
            graph, static_in, static_out = self.graphs[shape]
            static_in.copy_(x, non_blocking=True)
            graph.replay()
            return tuple(o.float().clone() for o in static_out)


class TorchPending(Pending):
    def __init__(self, backend: TorchBackend, scores, margins, n: int) -> None:
        self.backend, self.scores, self.margins, self.n = backend, scores, margins, n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.backend.check_outputs(self.scores.float().cpu().numpy(), self.margins.float().cpu().numpy(),
                                          self.n)
