"""``quasar export ort``: a fused ONNX graph in ONNX Runtime's own format (``.ort``), for ORT Mobile.

ORT Mobile's reduced builds load only ``.ort`` files. The conversion is ONNX Runtime's: the graph is
optimised at the *basic* level (standard-op folding and fusions only, so the file runs with any
execution provider, NNAPI and CoreML included) and saved as a flatbuffer; ``metadata_props`` are
kept, so the runtime reads the contract's keys through ``onnxruntime`` (``get_modelmeta()``)
and scores ``.ort`` files like ``.onnx`` ones. The file's sha256 is recorded beside it
(``X.ort.sha256``): the head initializers of a flatbuffer cannot be re-hashed without a parser, so
the whole file is.
"""

from __future__ import annotations

import os
import tempfile

from quasar.contract import ORT_SUFFIX
from quasar.errors import QuasarError
from quasar.integrity import check_graph
from quasar.sidecars import write_sha256_sidecar


def default_ort_path(onnx_path: str) -> str:
    base, ext = os.path.splitext(onnx_path)
    return (base if ext.lower() == ".onnx" else onnx_path) + ORT_SUFFIX


def export_ort(onnx_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> str:
    """Convert a QUASAR ``.onnx`` model to ``.ort`` (metadata kept); returns the path."""
    import onnxruntime as ort

    from quasar.export.metadata import load_info
    from quasar.export.onnx_export import check_output_path

    src = os.fspath(onnx_path)
    if not os.path.isfile(src):
        raise QuasarError(f"{src}: no such ONNX file")
    info = load_info(src)  # a QUASAR model with the contract's I/O ...
    check_graph(src, info.metadata, info.spec)  # ... whose metadata and head agree, else one line
    out = check_output_path(out_path or default_ort_path(src))
    if not out.lower().endswith(ORT_SUFFIX):
        raise QuasarError(f"{out}: an ORT-format model must be named *{ORT_SUFFIX} (that is how it is recognised)")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out), prefix=".quasar-ort-") as tmp:
        tmp_out = os.path.join(tmp, "model.ort")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = tmp_out
        so.add_session_config_entry("session.save_model_format", "ORT")
        so.log_severity_level = 3
        try:
            ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types
            raise QuasarError(f"{src}: ONNX Runtime cannot convert this model ({str(e).strip()[:300]})") from None
        meta = ort.InferenceSession(tmp_out, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        if dict(meta) != info.metadata:
            raise QuasarError(f"{src}: the .ort conversion lost or changed the QUASAR metadata")
        os.replace(tmp_out, out)
    write_sha256_sidecar(out)
    return out
