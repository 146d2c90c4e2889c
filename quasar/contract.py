"""The fused-model contract: its keys, :class:`ModelInfo`, and parsing and validating the metadata.

A fused model is an ONNX graph whose ``metadata_props`` follow "Fused model contract" in
``docs/architecture.md``, or a TensorRT engine ``X.engine`` with the same keys in a JSON sidecar
``X.engine.json``. The exporter writes through this module (:func:`fused_metadata`), the runtime reads
through it (:func:`parse_metadata`) and the tests build their hand-written graph from it. Standard
library only (:class:`~quasar.preprocess.PreprocessSpec` is imported when a spec is parsed): no
``onnx``, torch, ONNX Runtime or TensorRT, so the runtime, the exporter and a native port can all read
the same rules. The other jobs around a model file have their own modules: the integrity hashes and
graph checks (:mod:`quasar.integrity`), the sha256 and TensorRT engine sidecars (:mod:`quasar.sidecars`),
the GPU an engine is built for (:mod:`quasar.machine`), the shipped model (:mod:`quasar.shipped`), and
the one loader that runs them all (:mod:`quasar.model_file`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quasar.errors import QuasarError, one_line

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
