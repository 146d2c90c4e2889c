"""The fused model's ``metadata_props``: write them, read them back, and check them and the graph I/O.

Why a module of its own: the metadata is the contract between the exporter and every consumer of a
fused graph (the runtime, the TensorRT builder, tests), see "Fused model contract" in
``docs/architecture.md``. It imports numpy and onnx only, never torch, so anything may use it. The
runtime keeps its own reader (it must not need ``onnx``); this one is the reference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx

from quasar.errors import QuasarError

FORMAT = "quasar-fused-model"
# 2: head weights [K, D] (+ biases, combine heads) instead of the v1 centroid matrix [2K, D]
FORMAT_VERSION = 2
INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "margins")
INPUT_LAYOUT = "NHWC_uint8"
PRECISIONS = ("fp32", "fp16", "int8")
CENTROIDS_INITIALIZER = "quasar.centroids"  # format version 1
HEAD_WEIGHTS_INITIALIZER = "quasar.head_weights"  # [K_base, D]
HEAD_BIASES_INITIALIZER = "quasar.head_biases"  # [K_base], only where a bias is non-zero
COMBINE_BIASES_INITIALIZER = "quasar.combine_biases"  # [K_combine], likewise
COMBINE_KEY = "quasar.combine"  # JSON [[rule, [base columns]], ...], one per combine head (format 2)
LOGIT_SCALES_INITIALIZER = "quasar.logit_scales"

# Bumped whenever the exporter's output changes for the same inputs, so that cached exports (the
# default model) made by older code are redone; recorded as the ONNX producer_version.
EXPORT_REVISION = 2

KEYS = (
    "quasar.format",
    "quasar.format_version",
    "quasar.heads",
    "quasar.preprocess",
    "quasar.encoder",
    "quasar.pack_hash",
    "quasar.logit_scales",
    "quasar.input_layout",
    "quasar.dynamic_size",
    "quasar.precision",
    "quasar.project_version",
)


class MetadataError(QuasarError):
    """An ONNX file is not a QUASAR fused model, or one of a newer format, or its I/O breaks the contract."""


@dataclass(frozen=True)
class FusedModelInfo:
    """Typed view of the metadata (``preprocess`` stays a dict: turning it into a ``PreprocessSpec`` needs cv2)."""

    format_version: int
    heads: list[str]
    preprocess: dict
    encoder: str
    pack_hash: str
    logit_scales: list[float]
    input_layout: str
    dynamic_size: bool
    precision: str
    project_version: str

    @property
    def num_heads(self) -> int:
        return len(self.heads)


def producer_version() -> str:
    from quasar import __version__

    return f"{__version__}+export.{EXPORT_REVISION}"


def fused_metadata(*, encoder: str, pack_hash: str, heads: Sequence[str], logit_scales: Sequence[float],
                   preprocess: Mapping, dynamic_size: bool, precision: str,
                   project_version: str | None = None,
                   combine: Sequence[tuple[str, Sequence[int]]] = ()) -> dict[str, str]:
    """The contract's key/value strings for one (encoder, pack, precision) graph."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if len(heads) != len(logit_scales):
        raise ValueError(f"{len(heads)} heads but {len(logit_scales)} logit scales")
    if project_version is None:
        from quasar import __version__ as project_version
    return {
        "quasar.format": FORMAT,
        "quasar.format_version": str(FORMAT_VERSION),
        "quasar.heads": json.dumps(list(heads)),
        "quasar.preprocess": json.dumps(dict(preprocess), sort_keys=True),
        "quasar.encoder": encoder,
        "quasar.pack_hash": pack_hash,
        "quasar.logit_scales": json.dumps([float(s) for s in logit_scales]),
        "quasar.input_layout": INPUT_LAYOUT,
        "quasar.dynamic_size": "true" if dynamic_size else "false",
        "quasar.precision": precision,
        "quasar.project_version": project_version,
        COMBINE_KEY: json.dumps([[str(r), [int(i) for i in idx]] for r, idx in combine]),
    }


def write_metadata(model: onnx.ModelProto, meta: Mapping[str, str]) -> None:
    """Set ``meta`` on ``model`` in place; keys already there are replaced, others kept.

    Rewrites every entry because quantisation and other tools may copy, drop or duplicate props.
    """
    props = {p.key: p.value for p in model.metadata_props}
    props.update({str(k): str(v) for k, v in meta.items()})
    del model.metadata_props[:]
    for k in sorted(props):
        model.metadata_props.add(key=k, value=props[k])


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


def read_metadata(source: str | os.PathLike | onnx.ModelProto) -> dict[str, str]:
    """All ``metadata_props`` of a model or ONNX file, as a plain dict."""
    return {p.key: p.value for p in _load_header(source).metadata_props}


def parse_metadata(meta: Mapping[str, str], source: str = "<model>") -> FusedModelInfo:
    """Validate the contract's keys and decode the JSON ones; raises :class:`MetadataError`."""
    if meta.get("quasar.format") != FORMAT:
        raise MetadataError(f"{source}: not a QUASAR fused model (quasar.format={meta.get('quasar.format')!r})")
    try:
        version = int(meta.get("quasar.format_version", ""))
    except ValueError:
        raise MetadataError(f"{source}: bad quasar.format_version {meta.get('quasar.format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise MetadataError(f"{source}: fused model format version {version} is newer than this QUASAR "
                            f"(reads <= {FORMAT_VERSION})")
    missing = [k for k in KEYS if k not in meta]
    if missing:
        raise MetadataError(f"{source}: metadata lacks {missing}")
    try:
        heads = json.loads(meta["quasar.heads"])
        scales = [float(s) for s in json.loads(meta["quasar.logit_scales"])]
        preprocess = json.loads(meta["quasar.preprocess"])
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise MetadataError(f"{source}: malformed JSON in metadata ({e})") from None
    if not isinstance(heads, list) or not heads or len(heads) != len(scales):
        raise MetadataError(f"{source}: quasar.heads and quasar.logit_scales do not match ({heads!r}, {scales!r})")
    if meta["quasar.input_layout"] != INPUT_LAYOUT:
        raise MetadataError(f"{source}: input layout {meta['quasar.input_layout']!r} is not {INPUT_LAYOUT}")
    if meta["quasar.dynamic_size"] not in ("true", "false"):
        raise MetadataError(f"{source}: quasar.dynamic_size must be true or false")
    if meta["quasar.precision"] not in PRECISIONS:
        raise MetadataError(f"{source}: unknown precision {meta['quasar.precision']!r}")
    return FusedModelInfo(format_version=version, heads=[str(h) for h in heads], preprocess=dict(preprocess),
                          encoder=meta["quasar.encoder"], pack_hash=meta["quasar.pack_hash"], logit_scales=scales,
                          input_layout=meta["quasar.input_layout"], dynamic_size=meta["quasar.dynamic_size"] == "true",
                          precision=meta["quasar.precision"], project_version=meta["quasar.project_version"])


def load_info(source: str | os.PathLike | onnx.ModelProto) -> FusedModelInfo:
    """Read and validate the metadata of a fused model (file or proto)."""
    name = "<model>" if isinstance(source, onnx.ModelProto) else os.fspath(source)
    model = _load_header(source)
    info = parse_metadata({p.key: p.value for p in model.metadata_props}, name)
    check_io(model, info, name)
    return info


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check_io(model: onnx.ModelProto, info: FusedModelInfo | None = None, source: str = "<model>") -> None:
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
