"""Read a model file's ``quasar.*`` metadata and refuse anything that is not a valid QUASAR model.

The one loader of fused models (the runtime, the exporter's re-reads, ``quasar export triton``, ``quasar
list`` and ``quasar perf`` all come through it). A fused model is an ONNX graph with ``metadata_props``
per the contract in docs/architecture.md (also converted to ONNX Runtime's ``.ort`` format, which keeps
them), or a TensorRT engine ``X.engine`` with the same keys in a JSON sidecar ``X.engine.json``.
Validation happens before any inference session exists, so a wrong file fails fast with a message
naming it. Shared floor: imports no stage (``quasar.runtime.model`` finds the model to load).
"""

from __future__ import annotations

import os
import stat

from quasar.contract import ORT_SUFFIX, ModelInfo, parse_metadata
from quasar.errors import QuasarError, one_line
from quasar.integrity import check_graph, check_spec_bounds
from quasar.onnx_meta import MetadataTooLarge, NotOnnx, read_metadata_props
from quasar.sidecars import (
    check_sha256_sidecar,
    engine_metadata,
    engine_sidecar_path,
    is_engine_path,
    read_engine_sidecar,
)

__all__ = ["ModelInfo", "load_model_info", "model_kind", "read_model_metadata", "verify_model"]


def model_kind(path: str) -> str:
    """``engine`` for TensorRT files (by suffix or an ``X.json`` sidecar), ``ort`` for ONNX Runtime's
    own format (``.ort``), else ``onnx``."""
    if is_engine_path(path):
        return "engine"
    return "ort" if os.fspath(path).lower().endswith(ORT_SUFFIX) else "onnx"


def read_ort_metadata(path: str) -> dict[str, str]:
    """An ``.ort`` file's metadata, through ONNX Runtime (``get_modelmeta().custom_metadata_map``): the
    flatbuffer format is not protobuf, so :mod:`quasar.onnx_meta` cannot read it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # metadata only: no optimising
    try:
        session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types
        raise QuasarError(one_line(f"{path}: not an ORT-format model ({str(e).strip()[:200]})")) from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_model_metadata(path: str) -> dict[str, str]:
    """Raw ``quasar.*`` metadata of an ONNX file or an engine's sidecar; QuasarError if unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        raise QuasarError(f"{path}: model file not found") from None
    if stat.S_ISDIR(st.st_mode):
        raise QuasarError(f"{path}: is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block the reader or never end
        raise QuasarError(f"{path}: not a regular file (a FIFO, socket or device), not a model file")
    if model_kind(path) == "engine":
        return engine_metadata(read_engine_sidecar(path), engine_sidecar_path(path))
    if model_kind(path) == "ort":
        check_sha256_sidecar(path)  # before ONNX Runtime parses the file: a damaged file fails as damaged
        return read_ort_metadata(path)
    try:
        return read_metadata_props(path)
    except MetadataTooLarge as e:
        raise QuasarError(f"{path}: {e}; refusing this model") from None
    except (NotOnnx, OSError) as e:
        raise QuasarError(f"{path}: not an ONNX model or TensorRT engine ({e})") from None


def load_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read, validate and cross-check a model file (see :func:`verify_model`)."""
    path = os.fspath(path)
    info = parse_metadata(read_model_metadata(path), path, model_kind(path))
    verify_model(info)
    return info


def verify_model(info: ModelInfo) -> None:
    """The file matches its recorded sha256 (when it has a ``.sha256`` sidecar) and, for ONNX files,
    the metadata agrees with the graph (:func:`quasar.integrity.check_graph`)."""
    check_sha256_sidecar(info.path)
    if info.kind == "onnx":
        check_graph(info.path, info.metadata, info.spec)
    else:  # an engine's or .ort file's graph cannot be read here (ONNX Runtime checks the .ort I/O at load)
        reason = check_spec_bounds(info.spec)
        if reason:
            raise QuasarError(f"{info.path}: {reason}; refusing this model")
