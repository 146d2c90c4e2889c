"""Graph integrity of a fused model: the digests and the checks of the graph against its metadata.

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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from quasar.contract import (
    HEAD_PREFIX,
    HEAD_SHA256_KEY,
    INPUT_NAME,
    LOGIT_SCALES_INITIALIZER,
    LOGIT_SCALES_KEY,
    MODEL_SHA256_DOMAIN,
    MODEL_SHA256_KEY,
    ModelInfo,
)
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


_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_ENCODER_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces

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
