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

    def __init__(self, info: ModelInfo, device: str | None = None, threads: int | None = None) -> None:
        super().__init__(info)
        if info.kind != "onnx":
            raise QuasarError(f"{info.path}: the torch backend rebuilds models from ONNX files, not engines")
        try:
            import torch

            from quasar.encoders import create_encoder
        except ImportError as e:
            raise QuasarError(f"the torch backend needs torch and the export extras ({e})") from None
        self.torch = torch
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
        if threads:
            torch.set_num_threads(int(threads))
        self.device = device
        self.name = f"torch-{device}"
        # The exporter's own module (quasar.export.fused), so both compute exactly the same function.
        from quasar.export.fused import FusedScorer

        self.module = FusedScorer(encoder, cents, scales, list(info.heads), head_biases=biases,
                                  combine=combine).to(device).eval()
        if device == "cuda":
            self._copy_stream = torch.cuda.Stream()
            self._pinned: dict[int, object] = {}

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
        with torch.inference_mode():
            if self.device == "cpu":
                scores, margins = self.module(torch.from_numpy(np.ascontiguousarray(batch)))
                return Done(*self.check_outputs(scores.numpy(), margins.numpy(), batch.shape[0]))
            host = self._pinned.pop(batch.ctypes.data, None)
            if host is None:
                host = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory()
            compute = torch.cuda.current_stream()
            with torch.cuda.stream(self._copy_stream):
                x = host.to("cuda", non_blocking=True)
            compute.wait_stream(self._copy_stream)
            x.record_stream(compute)
            scores, margins = self.module(x)
            return _TorchPending(self, scores, margins, batch.shape[0])

    def close(self) -> None:
        self.module = None


class _TorchPending(Pending):
    def __init__(self, backend: TorchBackend, scores, margins, n: int) -> None:
        self.backend, self.scores, self.margins, self.n = backend, scores, margins, n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.backend.check_outputs(self.scores.float().cpu().numpy(), self.margins.float().cpu().numpy(),
                                          self.n)

