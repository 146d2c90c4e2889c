"""Inference backends and the rule that picks one.

``auto``: a TensorRT engine file -> ``tensorrt``; an ONNX file -> ONNX Runtime on CUDA when the CUDA
execution provider is installed (onnxruntime-gpu), else ONNX Runtime on CPU. ``torch`` is never
picked automatically (it needs the export extras); each backend module is imported only when chosen,
so ``import quasar.runtime`` loads neither TensorRT, cuda-python nor torch.
"""

from __future__ import annotations

from quasar.contract import ModelInfo
from quasar.errors import QuasarError
from quasar.runtime.backends.base import Backend, Done, Pending

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")
# Where each backend and device has run (``quasar list`` shows it; README and docs/architecture.md say the same):
# "tested" = run by this project's tests on a CPU machine; "not yet run" = written against the library's API,
# never executed (no GPU was available); ``python -m benchmarks.gpu_check`` is the one command that runs them.
VERIFIED = {
    "onnxruntime/cpu": "tested",
    "onnxruntime/cuda": "not yet run",
    "onnxruntime/tensorrt": "not yet run",
    "tensorrt/cuda": "not yet run",
    "torch/cpu": "tested",
    "torch/cuda": "not yet run",
}

__all__ = ["BACKENDS", "VERIFIED", "Backend", "Done", "Pending", "create_backend", "resolve_backend"]


def resolve_backend(info: ModelInfo, backend: str = "auto", device: str | None = None) -> tuple[str, str | None]:
    """(backend, device) that ``create_backend`` will use; QuasarError for impossible combinations."""
    if backend not in BACKENDS:
        raise QuasarError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if info.kind == "engine":
        if backend not in ("auto", "tensorrt"):
            raise QuasarError(f"{info.path}: a TensorRT engine runs only on the tensorrt backend, not {backend}")
        if device not in (None, "cuda"):
            raise QuasarError(f"{info.path}: a TensorRT engine runs on cuda, not {device}")
        return "tensorrt", "cuda"
    if info.kind == "ort" and backend not in ("auto", "onnxruntime"):
        raise QuasarError(f"{info.path}: an ORT-format model runs only on the onnxruntime backend, not {backend}")
    if backend == "tensorrt":
        raise QuasarError(f"{info.path}: the tensorrt backend needs an engine file (X.engine + X.engine.json); "
                          "for an ONNX file use --backend onnxruntime --device tensorrt (TensorRT EP)")
    if backend == "torch":
        return "torch", device
    if backend == "auto" and device is None:
        from quasar.runtime.backends.ort import best_device

        device = best_device()
    return "onnxruntime", device


def create_backend(info: ModelInfo, backend: str = "auto", device: str | None = None, *,
                   threads: int | None = None, optimization: str = "all", device_id: int = 0,
                   batch_size: int | None = None, embeddings: bool = False, shape_sessions: bool = True,
                   torch_options=None) -> Backend:
    """Load ``info``'s model on the chosen backend (see the module docstring for ``auto``).

    ``embeddings``: also return each image's unit embedding (ONNX Runtime only, see
    :mod:`quasar.runtime.embedding`). ``shape_sessions``: ONNX Runtime on CPU runs the input shapes it
    keeps seeing on sessions with the graph's free dimensions fixed (:mod:`quasar.runtime.backends.shapes`).
    ``torch_options``: a :class:`~quasar.runtime.backends.torch_options.TorchOptions`, for the torch
    backend only."""
    name, device = resolve_backend(info, backend, device)
    if torch_options is not None and name != "torch":
        raise QuasarError(f"torch options (precision, compile, CUDA graphs, device decoding) apply to the torch "
                          f"backend, not {name}")
    if embeddings and name != "onnxruntime":
        raise QuasarError(f"{info.path}: embeddings are read from ONNX graphs on the onnxruntime backend, "
                          f"not the {name} backend")
    if name == "tensorrt":
        from quasar.runtime.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(info, device_id=device_id)
    if name == "torch":
        from quasar.runtime.backends.torch_backend import TorchBackend

        return TorchBackend(info, device=device, threads=threads, options=torch_options)
    from quasar.runtime.backends.ort import OrtBackend

    return OrtBackend(info, device=device, threads=threads, optimization=optimization, device_id=device_id,
                      max_batch=batch_size or 32, embeddings=embeddings, shape_sessions=shape_sessions)
