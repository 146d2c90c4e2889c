"""Is a model file what its metadata and its recorded hash say it is? Checked when the runtime loads it.

Two checks, both dependency-free (hashlib and :mod:`quasar.runtime.onnx_meta`):

* :func:`check_sha256_sidecar`: a model with a ``X.onnx.sha256`` sidecar (``sha256sum`` format; the
  cached default model has one, written at export) must hash to it. A file corrupted in the cache
  whose metadata survived is refused instead of scoring garbage.
* :func:`check_graph`: the metadata must agree with the graph itself.

  - ``quasar.head_sha256`` (written at export, :func:`head_sha256`) must equal the sha256 over
    every initializer whose name starts with ``quasar.``, taken in name order, each as
    ``len(name) | name (UTF-8) | len(data) | data`` with lengths as 8-byte little-endian integers
    and ``data`` the tensor's values as raw little-endian bytes in C order;
  - the ``quasar.logit_scales`` initializer must equal the metadata's ``quasar.logit_scales``
    (as float32), and each scale must be finite with 0 < s <= ``MAX_LOGIT_SCALE``;
  - the preprocess spec's sizes must be sane (``MIN_SPEC_SIZE`` <= size <= ``MAX_SPEC_SIZE``,
    1 <= min_size <= size, 1 <= size_multiple <= size, finite mean, std > 0);
  - ``quasar.precision`` must fit the graph's weight types (int8/uint8 weights: int8; else float16
    weights: fp16; else fp32), ``quasar.pack_hash`` must look like ``sha256:<64 hex>`` and
    ``quasar.encoder`` must be a short printable id.

Every mismatch raises a :class:`~quasar.errors.QuasarError` of one line naming the file. This catches
corruption and careless edits; it is no signature: whoever rewrites the graph, the metadata and the
hashes together is not detected.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re

from quasar.errors import QuasarError, one_line
from quasar.limits import MAX_LOGIT_SCALE, MAX_SPEC_SIZE, MIN_SPEC_SIZE
from quasar.preprocess import PreprocessSpec
from quasar.runtime.onnx_meta import DTYPE_NAMES, NotOnnx, Tensor, parse_tensor, read_initializers

HEAD_PREFIX = "quasar."
HEAD_SHA256_KEY = "quasar.head_sha256"
LOGIT_SCALES = "quasar.logit_scales"
SIDECAR_SUFFIX = ".sha256"
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_ENCODER_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces


# ------------------------------------------------------------------------------------- file sidecar


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_file(path: str | os.PathLike) -> str:
    return os.fspath(path) + SIDECAR_SUFFIX


def write_sha256_sidecar(path: str | os.PathLike) -> str:
    """Record ``path``'s sha256 in ``path.sha256`` (``sha256sum`` format), atomically; returns the digest."""
    digest = file_sha256(path)
    side = sidecar_file(path)
    tmp = f"{side}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{digest}  {os.path.basename(os.fspath(path))}\n")
    os.replace(tmp, side)
    return digest


def recorded_sha256(path: str | os.PathLike) -> str | None:
    """The digest in ``path.sha256``, None without a sidecar; QuasarError for an unreadable one."""
    side = sidecar_file(path)
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
                          f"recorded in {sidecar_file(path)} at export: the file is corrupted; delete both to "
                          "rebuild it (the default model is exported again on next use)")
    return True


# ------------------------------------------------------------------------------------- graph vs metadata


def head_sha256(tensors: dict[str, bytes]) -> str:
    """``sha256:<hex>`` over (name, raw little-endian data) pairs in name order, length-prefixed."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        nb, data = name.encode("utf-8"), tensors[name]
        h.update(len(nb).to_bytes(8, "little"))
        h.update(nb)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return "sha256:" + h.hexdigest()


def head_sha256_of(tensors: dict[str, Tensor]) -> str:
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


def graph_precision(dtypes) -> str:
    """The precision an exported graph's initializer types imply (see the module docstring)."""
    if dtypes.get(2) or dtypes.get(3):  # uint8 / int8: quantised weights and zero points
        return "int8"
    if dtypes.get(10):  # float16
        return "fp16"
    return "fp32"


def check_graph(path: str, meta: dict[str, str], spec: PreprocessSpec) -> None:
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
        graph = read_initializers(path, HEAD_PREFIX)
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
    _check_logit_scales(graph.tensors.get(LOGIT_SCALES), meta, bad)


def _check_logit_scales(tensor: Tensor | None, meta: dict[str, str], bad) -> None:
    import struct  # noqa: PLC0415

    if tensor is None:
        raise bad(f"the graph has no {LOGIT_SCALES} initializer")
    if tensor.data_type != 1:
        raise bad(f"the {LOGIT_SCALES} initializer is {DTYPE_NAMES.get(tensor.data_type)}, not float32")
    try:
        listed = json.loads(meta[LOGIT_SCALES])
        want = [struct.unpack("<f", struct.pack("<f", float(s)))[0] for s in listed]
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError):
        raise bad(f"metadata {LOGIT_SCALES} is missing or not a list of numbers") from None
    got = list(tensor.values())
    if got != want:
        raise bad(f"metadata {LOGIT_SCALES} {listed} disagree with the graph's {[round(g, 6) for g in got]}")
    for s in got:
        if not (math.isfinite(s) and 0 < s <= MAX_LOGIT_SCALE):
            raise bad(f"logit scale {s} is outside the documented range 0 < s <= {MAX_LOGIT_SCALE:g}")
