"""Write a fused model's metadata into an ONNX proto, read it back, and check the graph's I/O.

The contract itself (keys, parsing, validation, hashes) is :mod:`quasar.contract`; this module is
the part that needs the ``onnx`` package: setting ``metadata_props`` on a ``ModelProto`` and checking
the graph's inputs and outputs against the contract. Never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import onnx

from quasar.contract import (
    INPUT_NAME,
    KEYS,
    MODEL_SHA256_KEY,
    OUTPUT_NAMES,
    MetadataError,
    ModelInfo,
    parse_metadata,
)
from quasar.integrity import seal_model_bytes

# Bumped whenever the exporter's output changes for the same inputs, so that cached exports (the
# default model) made by older code are redone; recorded as the ONNX producer_version.
EXPORT_REVISION = 3  # 3: quasar.model_sha256


def producer_version() -> str:
    from quasar import __version__

    return f"{__version__}+export.{EXPORT_REVISION}"


def write_metadata(model: onnx.ModelProto, meta: Mapping[str, str]) -> None:
    """Set ``meta`` on ``model`` in place; keys already there are replaced, others kept.

    Rewrites every entry because quantisation and other tools may copy, drop or duplicate props.
    """
    props = {p.key: p.value for p in model.metadata_props}
    props.update({str(k): str(v) for k, v in meta.items()})
    del model.metadata_props[:]
    for k in sorted(props):
        model.metadata_props.add(key=k, value=props[k])


def seal_model(path: str) -> None:
    """Write the model digest (``quasar.model_sha256``, :func:`quasar.integrity.model_sha256`) into the
    finished file, as its last step, and check the file as the runtime will load it."""
    from quasar.model_file import load_model_info

    model = onnx.load(path)
    props = [(p.key, p.value) for p in model.metadata_props if p.key != MODEL_SHA256_KEY]
    del model.metadata_props[:]
    for k, v in props:
        model.metadata_props.add(key=k, value=v)
    data = seal_model_bytes(model.SerializeToString())
    with open(path, "wb") as f:
        f.write(data)
    load_model_info(path)


def _load_header(source: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        return source
    path = os.fspath(source)
    if not os.path.exists(path):
        raise MetadataError(f"{path}: no such ONNX file")
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError, onnx its own types
        raise MetadataError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None


def read_onnx_metadata(source: str | os.PathLike | onnx.ModelProto) -> dict[str, str]:
    """All ``metadata_props`` of a model or ONNX file, as a plain dict."""
    return {p.key: p.value for p in _load_header(source).metadata_props}


def load_info(source: str | os.PathLike | onnx.ModelProto) -> ModelInfo:
    """Read and validate the metadata (every key the exporter writes) and the I/O of a fused model (file or proto)."""
    name = "<model>" if isinstance(source, onnx.ModelProto) else os.fspath(source)
    model = _load_header(source)
    info = parse_metadata({p.key: p.value for p in model.metadata_props}, name, required=KEYS)
    check_io(model, info, name)
    return info


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check_io(model: onnx.ModelProto, info: ModelInfo | None = None, source: str = "<model>") -> None:
    """Check the graph's inputs and outputs against the contract (uint8 NHWC in, float32 [N, K] out)."""
    g = model.graph
    init_names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise MetadataError(f"{source}: expected one input {INPUT_NAME!r}, found {[i.name for i in inputs]}")
    x = inputs[0]
    if x.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        raise MetadataError(f"{source}: input must be uint8, is "
                            f"{onnx.TensorProto.DataType.Name(x.type.tensor_type.elem_type)}")
    dims = _dims(x)
    if len(dims) != 4 or dims[3] != 3:
        raise MetadataError(f"{source}: input must be NHWC with 3 channels, has shape {dims}")
    if info is not None and not info.dynamic_size and not all(isinstance(d, int) and d > 0 for d in dims[1:3]):
        raise MetadataError(f"{source}: a fixed-size model must have a fixed height and width, has {dims}")
    if tuple(o.name for o in g.output) != OUTPUT_NAMES:
        raise MetadataError(f"{source}: outputs must be {list(OUTPUT_NAMES)}, are {[o.name for o in g.output]}")
    for o in g.output:
        if o.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise MetadataError(f"{source}: output {o.name} must be float32")
        odims = _dims(o)
        if len(odims) != 2 or (info is not None and odims[1] != info.num_heads):
            raise MetadataError(f"{source}: output {o.name} must be [N, K], is {odims}")
