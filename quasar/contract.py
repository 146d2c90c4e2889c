"""The fused-model contract in one place: keys, parsing, validation, integrity hashes, engine sidecar.

A fused model is an ONNX graph whose ``metadata_props`` follow "Fused model contract" in
``docs/architecture.md``, or a TensorRT engine ``X.engine`` with the same keys in a JSON sidecar
``X.engine.json``. The exporter writes through this module (:func:`fused_metadata`,
:func:`head_sha256_of_protos`, :func:`engine_sidecar`), the runtime reads through it
(:func:`parse_metadata`, :func:`check_graph`, :func:`read_engine_sidecar`, :func:`check_engine`) and
the tests build their hand-written graph from it. Standard library only (plus :mod:`quasar.onnx_meta`, a
dependency-free protobuf reader; :class:`~quasar.preprocess.PreprocessSpec` is imported when a spec is
parsed): no ``onnx``, torch, ONNX Runtime or TensorRT, so the runtime, the exporter and a native
port can all read the same rules.

Integrity (checked when the runtime loads a model; catches corruption and careless edits, it is no
signature: whoever rewrites graph, metadata and hashes together is not detected):

* ``quasar.model_sha256`` = ``sha256:`` + the sha256 of the whole model but this one entry
  (:func:`model_sha256`): ``quasar-model-sha256/1\n``, then every top-level ``ModelProto`` field other
  than ``metadata_props`` as its bytes in the file (tag, length, payload: graph with nodes, every
  initializer, inputs and outputs; opsets; producer; doc string), in file order, then the number of
  metadata entries other than the digest and each such entry, sorted by (key, value) bytes, as
  ``len(key) | key | len(value) | value`` (lengths 8-byte little-endian). Every byte that gives the
  outputs their meaning (heads, pack hash, encoder, spec, scales) is covered, and a re-save that keeps
  the content (``onnx.load`` then ``onnx.save``) keeps the digest. A file without it is refused
  (exported before it existed: re-export it). The exporter appends it last (:func:`seal_model_bytes`, through :func:`quasar.export.metadata.seal_model`);
* no float initializer holds NaN, none is kept in an external file (the digest would not cover it);
* ``quasar.head_sha256`` = ``sha256:`` + the sha256 over every initializer whose name starts with
  ``quasar.``, in name order, each fed as ``len(name) | name (UTF-8) | len(data) | data`` with the
  lengths as 8-byte little-endian integers and ``data`` the tensor's values as raw little-endian
  bytes in C order (:func:`head_sha256`);
* the ``quasar.logit_scales`` initializer equals the metadata list (as float32), each scale finite
  with 0 < s <= ``MAX_LOGIT_SCALE``; the spec's sizes are sane (:func:`check_spec_bounds`);
  ``quasar.precision`` fits the weight types (:func:`graph_precision`); ``quasar.pack_hash`` is
  ``sha256:<64 hex>``; ``quasar.encoder`` a short printable id;
* a model with a ``X.onnx.sha256`` sidecar (``sha256sum`` format) hashes to it
  (:func:`check_sha256_sidecar`);
* an engine's sidecar names the engine's sha256, the TensorRT version, the GPU name and its compute
  capability it was built for (:func:`check_engine`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quasar.constants import SHIPPED_MODEL, SHIPPED_PACK
from quasar.errors import QuasarError, one_line
from quasar.limits import MAX_LOGIT_SCALE, MAX_SPEC_SIZE, MIN_SPEC_SIZE
from quasar.onnx_meta import (
    DTYPE_NAMES,
    NotOnnx,
    Tensor,
    model_layout,
    open_model,
    parse_tensor,
    read_initializers,
)

if TYPE_CHECKING:
    from quasar.preprocess import PreprocessSpec

# ----------------------------------------------------------------------------------------- the keys

FORMAT = "quasar-fused-model"
# 2: head weights [K, D] (+ biases, combine heads) instead of the v1 centroid matrix [2K, D];
# 3: explanation heads (quasar.explain), written only by models that have them. All three are read.
FORMAT_VERSION = 3
EXPLAIN_FORMAT_VERSION = 3  # the version a model with quasar.explain declares
HEADS_FORMAT_VERSION = 2  # the version every other model the exporter writes declares
INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "margins")
# Optional third output (opt-in at export): float32 [N, D], the L2-normalised embedding the heads read.
EMBEDDING_OUTPUT = "embedding"
INPUT_LAYOUT = "NHWC_uint8"
PRECISIONS = ("fp32", "fp16", "int8")
COMBINE_RULES = ("min", "mean", "softmin")

HEAD_PREFIX = "quasar."  # every initializer of the scoring head; hashed by quasar.head_sha256
CENTROIDS_INITIALIZER = "quasar.centroids"  # [2K, D], format version 1
HEAD_WEIGHTS_INITIALIZER = "quasar.head_weights"  # [K_base, D]
HEAD_BIASES_INITIALIZER = "quasar.head_biases"  # [K_base], only where a bias is non-zero
COMBINE_BIASES_INITIALIZER = "quasar.combine_biases"  # [K_combine], likewise
LOGIT_SCALES_INITIALIZER = "quasar.logit_scales"  # [K]

LOGIT_SCALES_KEY = "quasar.logit_scales"
COMBINE_KEY = "quasar.combine"  # JSON [[rule, [base columns]], ...], one per combine head (format 2)
EXPLAIN_KEY = "quasar.explain"  # JSON [base columns]: the heads --explain shows and names the reason from (format 3)
HEAD_SHA256_KEY = "quasar.head_sha256"
MODEL_SHA256_KEY = "quasar.model_sha256"  # the digest of the whole file but itself (model_sha256)
MODEL_SHA256_DOMAIN = b"quasar-model-sha256/1\n"
# What every reader needs; an engine sidecar written by another tool may hold only these.
REQUIRED_KEYS = ("quasar.format", "quasar.format_version", "quasar.heads", "quasar.preprocess", "quasar.encoder",
                 "quasar.input_layout", "quasar.dynamic_size")
# What the exporter writes (besides quasar.combine and quasar.head_sha256); export checks require all of them.
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

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ORT_SUFFIX = ".ort"  # ONNX Runtime's own (flatbuffer) format, for ORT Mobile; metadata read through onnxruntime
ENGINE_SIDECAR_FORMAT = "quasar-tensorrt-engine"  # X.engine.json: {"onnx_metadata": {quasar.* keys}, ...}
ENGINE_SIDECAR_VERSION = 1
SHA256_SIDECAR_SUFFIX = ".sha256"

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_ENCODER_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces


class MetadataError(QuasarError):
    """A file is not a QUASAR fused model, or one of a newer format, or it breaks the contract."""


# ----------------------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class ModelInfo:
    """A validated QUASAR model: where it is and what its metadata says."""

    path: str
    kind: str  # "onnx" or "engine"
    heads: tuple[str, ...]
    spec: PreprocessSpec
    encoder: str
    dynamic_size: bool
    logit_scales: tuple[float, ...] | None = None
    precision: str | None = None
    pack_hash: str | None = None
    project_version: str | None = None
    format_version: int = FORMAT_VERSION
    combine: tuple[tuple[str, tuple[int, ...]], ...] = ()
    explain: tuple[int, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    @property
    def preprocess(self) -> dict:
        """The spec as recorded (a plain dict, as the metadata holds it)."""
        return json.loads(self.metadata["quasar.preprocess"])

    @property
    def combined_heads(self) -> tuple[str, ...]:
        """The heads a combine head summarises, in head order (the default model: the family parts of
        ``quality``)."""
        parts = {i for _, idx in self.combine for i in idx}
        return tuple(h for i, h in enumerate(self.heads) if i in parts)

    @property
    def explain_heads(self) -> tuple[str, ...]:
        """The heads ``quasar score --explain`` adds and whose weakest names the ``reason``: the model's
        explanation heads (``quasar.explain``; the default model: one per defect family, each fitted so
        that it is the lowest for its own family's defects), or else :attr:`combined_heads`."""
        if self.explain:
            return tuple(self.heads[i] for i in self.explain)
        return self.combined_heads

    @property
    def summary_heads(self) -> tuple[str, ...]:
        """The heads a user sees by default: all but :attr:`combined_heads` and :attr:`explain_heads`
        (the default model: ``quality``)."""
        hidden = set(self.combined_heads) | set(self.explain_heads)
        return tuple(h for h in self.heads if h not in hidden)

    @property
    def explained_heads(self) -> tuple[str, ...]:
        """What ``--explain`` writes: :attr:`summary_heads` and :attr:`explain_heads`, in head order. The
        parts of a combine head that are not explanation heads are never shown (the Scorer API has them)."""
        shown = set(self.summary_heads) | set(self.explain_heads)
        return tuple(h for h in self.heads if h in shown)


def fused_metadata(*, encoder: str, pack_hash: str, heads: Sequence[str], logit_scales: Sequence[float],
                   preprocess: Mapping, dynamic_size: bool, precision: str,
                   project_version: str | None = None,
                   combine: Sequence[tuple[str, Sequence[int]]] = (),
                   explain: Sequence[int] = ()) -> dict[str, str]:
    """The contract's key/value strings for one (encoder, pack, precision) graph.

    ``explain``: the base columns of the explanation heads (``quasar.explain``); a model with them
    declares format version :data:`EXPLAIN_FORMAT_VERSION`, one without them :data:`HEADS_FORMAT_VERSION`.

    Example:
        >>> from quasar.preprocess import PreprocessSpec
        >>> meta = fused_metadata(encoder="effnet-lite0+taps", pack_hash="sha256:" + "0" * 64,
        ...                       heads=["quality"], logit_scales=[30.0], preprocess=PreprocessSpec().to_dict(),
        ...                       dynamic_size=False, precision="fp32", project_version="0.1.0")
        >>> parse_metadata(meta).heads
        ('quality',)
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if len(heads) != len(logit_scales):
        raise ValueError(f"{len(heads)} heads but {len(logit_scales)} logit scales")
    if project_version is None:
        from quasar import __version__ as project_version
    meta = {
        "quasar.format": FORMAT,
        "quasar.format_version": str(EXPLAIN_FORMAT_VERSION if explain else HEADS_FORMAT_VERSION),
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
    if explain:
        meta[EXPLAIN_KEY] = json.dumps([int(i) for i in explain])
    return meta


def parse_metadata(meta: Mapping[str, str], path: str = "<model>", kind: str = "onnx",
                   required: Sequence[str] = REQUIRED_KEYS) -> ModelInfo:
    """Validate the contract's metadata; every problem raises a one-line :class:`MetadataError` naming ``path``.

    ``required``: the keys that must be present (:data:`REQUIRED_KEYS` for any reader, :data:`KEYS` for
    what the exporter promises); the optional ones are checked whenever they are there.
    """

    from quasar.preprocess import PreprocessSpec  # numpy and OpenCV: only when a spec is parsed

    def bad(msg: str) -> MetadataError:
        return MetadataError(one_line(f"{path}: {msg}"))

    if "quasar.format" not in meta:
        raise bad("not a QUASAR fused model (no quasar.format metadata); export one with `quasar export`")
    if meta["quasar.format"] != FORMAT:
        raise bad(f"not a QUASAR fused model: quasar.format is {meta['quasar.format']!r}, expected {FORMAT!r}")
    try:
        version = int(meta.get("quasar.format_version", ""))
    except ValueError:
        raise bad(f"quasar.format_version {meta.get('quasar.format_version')!r} is not an integer") from None
    if version > FORMAT_VERSION:
        raise bad(f"model format version {version} is newer than this QUASAR supports ({FORMAT_VERSION}); "
                  "upgrade quasar-engine")
    if version < 1:
        raise bad(f"unknown model format version {version}")
    missing = [k for k in required if k not in meta]
    if missing:
        raise bad(f"QUASAR model metadata is missing {', '.join(missing)}")
    heads = _json(meta, "quasar.heads", bad)
    if (not isinstance(heads, list) or not heads or not all(isinstance(h, str) and h for h in heads)
            or len(set(heads)) != len(heads)):
        raise bad(f"quasar.heads must be a non-empty list of distinct names, got {meta['quasar.heads']!r}")
    try:
        spec = PreprocessSpec.from_json(meta["quasar.preprocess"])
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError) as e:
        raise bad(f"bad quasar.preprocess spec: {str(e)[:200]}") from None
    if meta["quasar.input_layout"] != INPUT_LAYOUT:
        raise bad(f"quasar.input_layout is {meta['quasar.input_layout']!r}; the contract is {INPUT_LAYOUT}")
    dyn = meta["quasar.dynamic_size"].strip().lower()
    if dyn not in ("true", "false"):
        raise bad(f"quasar.dynamic_size must be 'true' or 'false', got {meta['quasar.dynamic_size']!r}")
    dynamic = dyn == "true"
    if not dynamic and not spec.fixed_size:
        raise bad(f"the graph takes a fixed input size but its spec policy {spec.policy!r} gives varying sizes")
    if dynamic and spec.policy == "fixed":
        raise bad(f"quasar.dynamic_size is true but the spec's policy 'fixed' makes every image "
                  f"{spec.height}x{spec.width}; a static graph says dynamic_size false")
    scales = None
    if LOGIT_SCALES_KEY in meta:
        raw = _json(meta, LOGIT_SCALES_KEY, bad)
        if (not isinstance(raw, list) or len(raw) != len(heads)
                or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in raw)):
            raise bad(f"quasar.logit_scales must list {len(heads)} finite numbers (one per head), got {raw!r}")
        scales = tuple(float(s) for s in raw)
    precision = meta.get("quasar.precision")
    if precision is not None and precision not in PRECISIONS:
        raise bad(f"unknown precision {precision!r} (quasar.precision is one of {', '.join(PRECISIONS)})")
    combine = _parse_combine(meta, len(heads), bad) if COMBINE_KEY in meta else ()
    explain = _parse_explain(meta, len(heads) - len(combine), bad) if EXPLAIN_KEY in meta else ()
    if explain and version < EXPLAIN_FORMAT_VERSION:
        raise bad(f"{EXPLAIN_KEY} needs model format version {EXPLAIN_FORMAT_VERSION}, the model says {version}")
    return ModelInfo(path=path, kind=kind, heads=tuple(heads), spec=spec, encoder=meta["quasar.encoder"],
                     dynamic_size=dynamic, logit_scales=scales, precision=precision,
                     pack_hash=meta.get("quasar.pack_hash"), project_version=meta.get("quasar.project_version"),
                     format_version=version, combine=combine, explain=explain, metadata=dict(meta))


def _parse_combine(meta: Mapping[str, str], num_heads: int, bad) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``quasar.combine``: one ``[rule, [base columns]]`` per combine head; combine heads are the last columns."""
    raw = _json(meta, COMBINE_KEY, bad)
    if not isinstance(raw, list) or len(raw) >= num_heads:
        raise bad(f"{COMBINE_KEY} must be a list with fewer entries than the {num_heads} heads, got {meta[COMBINE_KEY][:80]!r}")
    n_base = num_heads - len(raw)
    out = []
    for entry in raw:
        ok = (isinstance(entry, list) and len(entry) == 2 and entry[0] in COMBINE_RULES
              and isinstance(entry[1], list) and entry[1]
              and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_base for i in entry[1]))
        if not ok:
            raise bad(f"{COMBINE_KEY} entry {entry!r} is not [rule in {list(COMBINE_RULES)}, "
                      f"[base columns < {n_base}]]")
        out.append((entry[0], tuple(entry[1])))
    return tuple(out)


def _parse_explain(meta: Mapping[str, str], n_base: int, bad) -> tuple[int, ...]:
    """``quasar.explain``: distinct base columns (not combine heads), at least one."""
    raw = _json(meta, EXPLAIN_KEY, bad)
    ok = (isinstance(raw, list) and raw
          and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_base for i in raw)
          and len(set(raw)) == len(raw))
    if not ok:
        raise bad(f"{EXPLAIN_KEY} must be a non-empty list of distinct base columns < {n_base}, "
                  f"got {meta[EXPLAIN_KEY][:80]!r}")
    return tuple(raw)


def _json(meta: Mapping[str, str], key: str, bad):
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise bad(f"{key} is not valid JSON: {meta[key][:80]!r}") from None


# ----------------------------------------------------------------------------------------- graph integrity


def model_sha256(source: str | os.PathLike | bytes) -> tuple[str, int]:
    """(``sha256:<hex>`` digest of a model file or its bytes as documented above, the number of
    :data:`MODEL_SHA256_KEY` entries it holds, which the digest leaves out); NotOnnx if malformed."""
    ranges, entries = model_layout(source)
    h = hashlib.sha256(MODEL_SHA256_DOMAIN)
    with open_model(source) as (f, _):
        for start, end in ranges:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise NotOnnx("truncated field")
                h.update(chunk)
                left -= len(chunk)
    own = MODEL_SHA256_KEY.encode()
    kept = sorted((k, v) for k, v in entries if k != own)
    h.update(len(kept).to_bytes(8, "little"))
    for k, v in kept:
        h.update(len(k).to_bytes(8, "little"))
        h.update(k)
        h.update(len(v).to_bytes(8, "little"))
        h.update(v)
    return "sha256:" + h.hexdigest(), len(entries) - len(kept)


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def seal_model_bytes(model_bytes: bytes) -> bytes:
    """A serialized model with its :data:`MODEL_SHA256_KEY` entry appended (protobuf merges a field
    appended to a message, so this is the same model plus one ``metadata_props`` entry); any digest
    entry already there is a ValueError (remove it before changing a sealed model)."""
    digest, n = model_sha256(model_bytes)
    if n:
        raise ValueError(f"the model already has a {MODEL_SHA256_KEY} entry")
    k, v = MODEL_SHA256_KEY.encode(), digest.encode()
    entry = b"\x0a" + _varint_bytes(len(k)) + k + b"\x12" + _varint_bytes(len(v)) + v
    return model_bytes + b"\x72" + _varint_bytes(len(entry)) + entry  # field 14 (metadata_props), wire type 2


def check_model_sha256(path: str, meta: Mapping[str, str], bad) -> None:
    """The recorded :data:`MODEL_SHA256_KEY` is the file's digest; ``bad(msg)`` makes the exception."""
    recorded = meta.get(MODEL_SHA256_KEY)
    if recorded is None:
        raise bad(f"no {MODEL_SHA256_KEY} in the metadata (exported by an older QUASAR, or edited)")
    try:
        actual, entries = model_sha256(path)
    except (NotOnnx, OSError) as e:
        raise bad(f"cannot read the model to check its digest ({e})") from None
    if entries != 1:
        raise bad(f"{entries} {MODEL_SHA256_KEY} entries in the metadata")
    if recorded != actual:
        raise bad(f"{MODEL_SHA256_KEY} {recorded[:23]!r}... does not match the file ({actual[:23]}...): "
                  "the graph or its metadata was changed after export")


def head_sha256(tensors: Mapping[str, bytes]) -> str:
    """``sha256:<hex>`` over (name, raw little-endian data) pairs in name order, length-prefixed."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        nb, data = name.encode("utf-8"), tensors[name]
        h.update(len(nb).to_bytes(8, "little"))
        h.update(nb)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return "sha256:" + h.hexdigest()


def head_sha256_of(tensors: Mapping[str, Tensor]) -> str:
    """:func:`head_sha256` of the head initializers read from a file (:func:`quasar.onnx_meta.read_initializers`)."""
    return head_sha256({name: t.data for name, t in tensors.items() if name.startswith(HEAD_PREFIX)})


def head_sha256_of_protos(initializers) -> str:
    """:func:`head_sha256` of in-memory ONNX ``TensorProto`` s (what the exporter writes), each read
    back from its serialized bytes by the same parser that reads files at load time."""
    return head_sha256({t.name: parse_tensor(t.SerializeToString()).data
                        for t in initializers if t.name.startswith(HEAD_PREFIX)})


def check_spec_bounds(spec: PreprocessSpec) -> str | None:
    """None if the spec's numbers are sane, else the reason."""
    ints = (spec.size, spec.min_size, spec.size_multiple)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        return f"preprocess size, min_size and size_multiple must be integers, not {ints}"
    if len(spec.mean) != 3 or len(spec.std) != 3:
        return "preprocess mean and std need 3 values each"
    if not MIN_SPEC_SIZE <= spec.size <= MAX_SPEC_SIZE:
        return f"preprocess size {spec.size} is outside {MIN_SPEC_SIZE}..{MAX_SPEC_SIZE}"
    if not 1 <= spec.min_size <= spec.size:
        return f"preprocess min_size {spec.min_size} is outside 1..size ({spec.size})"
    if not 1 <= spec.size_multiple <= spec.size:
        return f"preprocess size_multiple {spec.size_multiple} is outside 1..size ({spec.size})"
    if not all(math.isfinite(m) for m in spec.mean) or not all(math.isfinite(s) and s > 0 for s in spec.std):
        return f"preprocess mean {spec.mean} / std {spec.std} must be finite, std positive"
    return None


def graph_precision(dtypes: Mapping[int, int]) -> str:
    """The precision an exported graph's initializer types imply: int8/uint8 weights: int8; else
    float16 weights: fp16; else fp32 (``dtypes``: ONNX data type -> count)."""
    if dtypes.get(2) or dtypes.get(3):  # uint8 / int8: quantised weights and zero points
        return "int8"
    if dtypes.get(10):  # float16
        return "fp16"
    return "fp32"


def check_input_shape(path: str, shape: Sequence, info: ModelInfo) -> int | None:
    """Check a graph input's shape ``[N, H, W, 3]`` (ints for fixed dimensions, anything else for
    dynamic ones) against the metadata; returns the fixed batch size or None. QuasarError (one line)
    on a mismatch: a fixed H x W without ``dynamic_size`` false, or other than the spec's size."""
    if len(shape) != 4 or shape[3] != 3:
        raise QuasarError(f"{path}: input {INPUT_NAME!r} must be [N, H, W, 3] (NHWC), is {list(shape)}")
    fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
    hw = info.spec.output_hw
    if info.dynamic_size:
        if fixed[1] is not None and fixed[2] is not None:
            raise QuasarError(f"{path}: metadata says dynamic_size=true but the graph input is fixed at {list(shape)}")
    elif fixed[1] is not None and fixed[2] is not None and hw is not None and (fixed[1], fixed[2]) != hw:
        verb = "crops" if info.spec.policy == "center_crop" else "(policy fixed) makes images"
        raise QuasarError(f"{path}: graph input is {fixed[1]}x{fixed[2]} but the spec {verb} {hw[0]}x{hw[1]}; "
                          "refusing this model (re-export it with `quasar export onnx`)")
    elif info.spec.policy == "fixed" and (fixed[1] is None or fixed[2] is None):
        raise QuasarError(f"{path}: the spec's policy 'fixed' needs a graph input fixed at {hw[0]}x{hw[1]}, "
                          f"is {list(shape)}")
    return fixed[0]


def check_graph(path: str, meta: Mapping[str, str], spec: PreprocessSpec) -> None:
    """Cross-check a fused ONNX model's metadata against its graph; QuasarError (one line) on any mismatch."""

    def bad(msg: str) -> QuasarError:
        return QuasarError(one_line(f"{path}: {msg}; refusing this model (re-export it with `quasar export onnx`)"))

    reason = check_spec_bounds(spec)
    if reason:
        raise bad(reason)
    pack_hash = meta.get("quasar.pack_hash")
    if pack_hash is not None and not _SHA256.fullmatch(pack_hash):
        raise bad(f"quasar.pack_hash {pack_hash[:80]!r} is not 'sha256:' and 64 hex digits")
    encoder = meta.get("quasar.encoder", "")
    if not _ENCODER_ID.fullmatch(encoder):
        raise bad(f"quasar.encoder {encoder[:80]!r} is not an encoder id")
    try:
        graph = read_initializers(path, HEAD_PREFIX, scan=True)
    except (NotOnnx, OSError) as e:
        raise QuasarError(f"{path}: cannot read the graph's initializers ({e})") from None
    precision = meta.get("quasar.precision")
    if precision is not None and precision != graph_precision(graph.dtypes):
        kinds = ", ".join(f"{DTYPE_NAMES.get(k, k)}: {n}" for k, n in sorted(graph.dtypes.items()))
        raise bad(f"quasar.precision says {precision!r} but the graph's weights ({kinds}) are "
                  f"{graph_precision(graph.dtypes)}")
    recorded = meta.get(HEAD_SHA256_KEY)
    if recorded is None:
        raise bad(f"no {HEAD_SHA256_KEY} in the metadata (exported by an older QUASAR, or edited)")
    actual = head_sha256_of(graph.tensors)
    if recorded != actual:
        raise bad(f"{HEAD_SHA256_KEY} {recorded[:23]!r}... does not match the graph's head initializers "
                  f"({actual[:23]}...): the graph or its metadata was changed after export")
    _check_logit_scales(graph.tensors.get(LOGIT_SCALES_INITIALIZER), meta, bad)
    if graph.external:
        raise bad(f"initializer {graph.external[0][:80]!r} keeps its data in an external file, "
                  f"which {MODEL_SHA256_KEY} does not cover")
    if graph.nan:
        raise bad(f"initializer {graph.nan[0][:80]!r} holds NaN values (corrupted weights)")
    check_model_sha256(path, meta, bad)


def _check_logit_scales(tensor: Tensor | None, meta: Mapping[str, str], bad) -> None:
    name = LOGIT_SCALES_INITIALIZER
    if tensor is None:
        raise bad(f"the graph has no {name} initializer")
    if tensor.data_type != 1:
        raise bad(f"the {name} initializer is {DTYPE_NAMES.get(tensor.data_type)}, not float32")
    try:
        listed = json.loads(meta[LOGIT_SCALES_KEY])
        want = [struct.unpack("<f", struct.pack("<f", float(s)))[0] for s in listed]
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError):
        raise bad(f"metadata {LOGIT_SCALES_KEY} is missing or not a list of numbers") from None
    got = list(tensor.values())
    if got != want:
        raise bad(f"metadata {LOGIT_SCALES_KEY} {listed} disagree with the graph's {[round(g, 6) for g in got]}")
    for s in got:
        if not (math.isfinite(s) and 0 < s <= MAX_LOGIT_SCALE):
            raise bad(f"logit scale {s} is outside the documented range 0 < s <= {MAX_LOGIT_SCALE:g}")


# ----------------------------------------------------------------------------------------- file sha256 sidecar


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (the one file hash of the project)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_sidecar_path(path: str | os.PathLike) -> str:
    return os.fspath(path) + SHA256_SIDECAR_SUFFIX


def write_sha256_sidecar(path: str | os.PathLike) -> str:
    """Record ``path``'s sha256 in ``path.sha256`` (``sha256sum`` format), atomically; returns the digest."""
    digest = file_sha256(path)
    side = sha256_sidecar_path(path)
    tmp = f"{side}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{digest}  {os.path.basename(os.fspath(path))}\n")
    os.replace(tmp, side)
    return digest


def recorded_sha256(path: str | os.PathLike) -> str | None:
    """The digest in ``path.sha256``, None without a sidecar; QuasarError for an unreadable one."""
    side = sha256_sidecar_path(path)
    try:
        with open(side, encoding="utf-8") as f:
            text = f.read(4096)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise QuasarError(f"{side}: unreadable hash sidecar ({e})") from None
    digest = text.split()[0] if text.split() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise QuasarError(f"{side}: not a sha256 sidecar (expected '<64 hex digits>  <file name>')")
    return digest


def check_sha256_sidecar(path: str | os.PathLike) -> bool:
    """True if ``path`` has a sidecar and matches it, False without one; QuasarError on a mismatch."""
    want = recorded_sha256(path)
    if want is None:
        return False
    got = file_sha256(path)
    if got != want:
        raise QuasarError(f"{os.fspath(path)}: the file's sha256 {got[:16]}... does not match the {want[:16]}... "
                          f"recorded in {sha256_sidecar_path(path)} at export: the file is corrupted; delete both to "
                          "rebuild it (the default model is exported again on next use)")
    return True


def matches_recorded_sha256(path: str | os.PathLike) -> bool:
    """True only if ``path`` has a sidecar and matches it (a missing or stale sidecar is False)."""
    try:
        return check_sha256_sidecar(path)
    except (QuasarError, OSError):
        return False


# ----------------------------------------------------------------------------------------- TensorRT engine sidecar


def engine_sidecar_path(engine_path: str | os.PathLike) -> str:
    return os.fspath(engine_path) + ".json"


def is_engine_path(path: str | os.PathLike) -> bool:
    """TensorRT files: by suffix, or any non-``.onnx`` file with an ``X.json`` sidecar."""
    p = os.fspath(path).lower()
    return p.endswith(ENGINE_SUFFIXES) or (not p.endswith(".onnx") and os.path.exists(engine_sidecar_path(path)))


def engine_sidecar(*, engine_bytes: bytes, onnx_path: str, onnx_metadata: Mapping[str, str],
                   platform: Mapping[str, str | None], profile: Mapping, precision: Mapping, built: str) -> dict:
    """The sidecar the exporter writes next to an engine (``X.engine.json``)."""
    from quasar import __version__

    return {
        "format": ENGINE_SIDECAR_FORMAT,
        "format_version": ENGINE_SIDECAR_VERSION,
        **platform,
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "onnx_sha256": file_sha256(onnx_path),
        "onnx_file": os.path.basename(onnx_path),
        "onnx_metadata": dict(onnx_metadata),
        "profile": {INPUT_NAME: dict(profile)},
        "precision": dict(precision),
        "outputs": list(OUTPUT_NAMES),
        "built": built,
        "quasar_version": __version__,
    }


def read_engine_sidecar(engine_path: str | os.PathLike) -> dict:
    """The engine's sidecar as a dict, checked for format and version; QuasarError (one line) otherwise."""
    path, side = os.fspath(engine_path), engine_sidecar_path(engine_path)
    try:
        with open(side, encoding="utf-8") as f:
            d = json.load(f)
    except FileNotFoundError:
        raise QuasarError(f"{path}: TensorRT engine without its metadata sidecar {side}; the engine cannot be "
                          "checked against this machine (rebuild it with quasar export tensorrt)") from None
    except (OSError, ValueError, RecursionError) as e:
        raise QuasarError(f"{side}: unreadable engine sidecar ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(d, dict) or d.get("format") != ENGINE_SIDECAR_FORMAT:
        raise QuasarError(f"{side}: not a QUASAR engine sidecar (format {ENGINE_SIDECAR_FORMAT!r})")
    try:
        version = int(d.get("format_version", 0))
    except (TypeError, ValueError):
        version = 0
    if version > ENGINE_SIDECAR_VERSION:
        raise QuasarError(f"{side}: engine sidecar format version {d.get('format_version')} is newer "
                          "than this QUASAR reads; upgrade quasar-engine")
    if version < 1:
        raise QuasarError(f"{side}: unknown engine sidecar format version {d.get('format_version')!r}")
    return d


def engine_metadata(sidecar: Mapping, side: str) -> dict[str, str]:
    """The fused model's ``quasar.*`` keys recorded in an engine sidecar, as strings."""
    d = sidecar.get("onnx_metadata")
    if not isinstance(d, dict):
        raise QuasarError(f"{side}: the sidecar holds no QUASAR metadata (onnx_metadata)")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in d.items()}


def current_gpu(device: int = 0) -> dict[str, str] | None:
    """``{"name", "compute_capability"}`` of CUDA device ``device``, or None without one.

    Tries cuda-python, then torch if it is already imported (this module never imports it), then
    ``nvidia-smi``, so that it works wherever TensorRT does.
    """
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, props = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            return {"name": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:
        pass
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and device < torch.cuda.device_count():
            major, minor = torch.cuda.get_device_capability(device)
            return {"name": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}
    except Exception:
        pass
    try:
        r = subprocess.run(["nvidia-smi", f"--id={device}", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 0 and r.stdout.strip():
            name, cc = (s.strip() for s in r.stdout.strip().splitlines()[0].rsplit(",", 1))
            return {"name": name, "compute_capability": cc}
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return None


def current_platform(trt_version: str, device: int = 0) -> dict[str, str | None]:
    """What an engine built or loaded here depends on: TensorRT version, GPU name, compute capability."""
    gpu = current_gpu(device) or {}
    return {"tensorrt_version": str(trt_version), "gpu_name": gpu.get("name"),
            "compute_capability": gpu.get("compute_capability")}


def sidecar_mismatches(sidecar: Mapping, platform: Mapping, check_gpu_name: bool = True) -> list[str]:
    """Human-readable differences between what an engine was built for and this machine; [] if none.

    TensorRT version and compute capability must match (an engine does not load otherwise); the GPU
    name too by default, because tactics were timed on that GPU (same architecture, other SKU: the
    engine runs, maybe slower; pass ``check_gpu_name=False`` to accept that).
    """
    keys = [("tensorrt_version", "TensorRT version"), ("compute_capability", "GPU compute capability")]
    if check_gpu_name:
        keys.append(("gpu_name", "GPU"))
    out = []
    for key, label in keys:
        built, here = sidecar.get(key), platform.get(key)
        if built != here:
            out.append(f"{label}: engine built for {built!r}, this machine has {here!r}")
    return out


def check_engine(path: str, data: bytes, sidecar: Mapping, trt_version: str, *, device: int = 0,
                 check_gpu_name: bool = True) -> None:
    """The engine bytes are the ones the sidecar describes, built for this TensorRT version, GPU
    name and compute capability; QuasarError naming every mismatch, in one line."""
    if hashlib.sha256(data).hexdigest() != sidecar.get("engine_sha256"):
        raise QuasarError(f"{path}: the engine does not match its sidecar (sha256 differs); rebuild it")
    problems = sidecar_mismatches(sidecar, current_platform(trt_version, device), check_gpu_name=check_gpu_name)
    if problems:
        raise QuasarError(one_line(f"{path} was built elsewhere; rebuild it here (quasar export tensorrt): "
                                   + "; ".join(problems)))




def shipped_model_path(pack_hash: str | None = None) -> str | None:
    """The default model shipped in the package, if it is there and was exported from the shipped
    pack (same content hash; or from ``pack_hash`` when given); else None (a development tree whose
    pack was rebuilt, say). The runtime still validates the file fully when it loads it."""
    from importlib import resources

    from quasar.onnx_meta import NotOnnx, read_metadata_props

    data = resources.files("quasar") / "data"
    model, pack = data / SHIPPED_MODEL, data / SHIPPED_PACK
    if not (model.is_file() and pack.is_file()):
        return None
    try:
        pack_hash = pack_hash or json.loads(pack.read_text()).get("content_hash")
        meta = read_metadata_props(str(model))
    except (NotOnnx, OSError, ValueError):
        return None
    return str(model) if pack_hash and meta.get("quasar.pack_hash") == pack_hash else None
