"""Find a model file, read its ``quasar.*`` metadata and refuse anything that is not a valid QUASAR model.

A fused model is an ONNX graph with ``metadata_props`` per the contract in docs/architecture.md, or a
TensorRT engine ``X.engine`` with the same keys in a JSON sidecar ``X.engine.json``. Validation happens
before any inference session exists, so a wrong file fails fast with a message naming it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from quasar.errors import QuasarError, one_line
from quasar.preprocess import PreprocessSpec
from quasar.runtime.onnx_meta import NotOnnx, read_metadata_props

FORMAT = "quasar-fused-model"
FORMAT_VERSION = 2  # quasar.export.metadata.FORMAT_VERSION
INPUT_LAYOUT = "NHWC_uint8"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
REQUIRED_KEYS = ("quasar.format", "quasar.format_version", "quasar.heads", "quasar.preprocess", "quasar.encoder",
                 "quasar.input_layout", "quasar.dynamic_size")
ENV_MODEL = "QUASAR_MODEL"
ENGINE_SIDECAR_FORMAT = "quasar-tensorrt-engine"  # X.engine.json: {"onnx_metadata": {quasar.* keys}, ...}
ENGINE_SIDECAR_VERSION = 1


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
    metadata: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_heads(self) -> int:
        return len(self.heads)


def sidecar_path(engine_path: str) -> str:
    return engine_path + ".json"


def model_kind(path: str) -> str:
    """``engine`` for TensorRT files (by suffix or an ``X.json`` sidecar), else ``onnx``."""
    if path.lower().endswith(ENGINE_SUFFIXES) or (not path.lower().endswith(".onnx")
                                                   and os.path.exists(sidecar_path(path))):
        return "engine"
    return "onnx"


def read_metadata(path: str) -> dict[str, str]:
    """Raw ``quasar.*`` metadata of an ONNX file or an engine's sidecar; QuasarError if unreadable."""
    if not os.path.exists(path):
        raise QuasarError(f"{path}: model file not found")
    if os.path.isdir(path):
        raise QuasarError(f"{path}: is a directory, not a model file")
    if model_kind(path) == "engine":
        side = sidecar_path(path)
        try:
            with open(side, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise QuasarError(f"{path}: TensorRT engine without its metadata sidecar {side}") from None
        except (OSError, ValueError, RecursionError) as e:
            raise QuasarError(f"{side}: unreadable engine sidecar ({type(e).__name__}: {str(e)[:200]})") from None
        if isinstance(d, dict) and d.get("format") == ENGINE_SIDECAR_FORMAT:  # written by quasar.export.tensorrt
            if int(d.get("format_version", 0)) > ENGINE_SIDECAR_VERSION:
                raise QuasarError(f"{side}: engine sidecar format version {d.get('format_version')} is newer "
                                  "than this runtime reads; upgrade quasar-engine")
            d = d.get("onnx_metadata")
        elif isinstance(d, dict) and isinstance(d.get("metadata"), dict):
            d = d["metadata"]
        if not isinstance(d, dict):
            raise QuasarError(f"{side}: the sidecar holds no QUASAR metadata (onnx_metadata)")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in d.items()}
    try:
        return read_metadata_props(path)
    except (NotOnnx, OSError) as e:
        raise QuasarError(f"{path}: not an ONNX model or TensorRT engine ({e})") from None


def parse_metadata(meta: dict[str, str], path: str, kind: str = "onnx") -> ModelInfo:
    """Validate the contract's metadata; every problem raises a QuasarError naming ``path``."""

    def bad(msg: str) -> QuasarError:
        return QuasarError(one_line(f"{path}: {msg}"))

    if "quasar.format" not in meta:
        raise bad("not a QUASAR fused model (no quasar.format metadata); export one with `quasar export`")
    if meta["quasar.format"] != FORMAT:
        raise bad(f"quasar.format is {meta['quasar.format']!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise bad(f"QUASAR model metadata is missing {', '.join(missing)}")
    try:
        version = int(meta["quasar.format_version"])
    except ValueError:
        raise bad(f"quasar.format_version {meta['quasar.format_version']!r} is not an integer") from None
    if version > FORMAT_VERSION:
        raise bad(f"model format version {version} is newer than this runtime supports ({FORMAT_VERSION}); "
                  "upgrade quasar-engine")
    if version < 1:
        raise bad(f"unknown model format version {version}")
    heads = _json(meta, "quasar.heads", bad)
    if (not isinstance(heads, list) or not heads or not all(isinstance(h, str) and h for h in heads)
            or len(set(heads)) != len(heads)):
        raise bad(f"quasar.heads must be a non-empty list of distinct names, got {meta['quasar.heads']!r}")
    try:
        spec = PreprocessSpec.from_json(meta["quasar.preprocess"])
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError) as e:
        raise bad(f"bad quasar.preprocess spec: {str(e)[:200]}") from None
    if meta["quasar.input_layout"] != INPUT_LAYOUT:
        raise bad(f"quasar.input_layout is {meta['quasar.input_layout']!r}; this runtime feeds {INPUT_LAYOUT}")
    dyn = meta["quasar.dynamic_size"].strip().lower()
    if dyn not in ("true", "false"):
        raise bad(f"quasar.dynamic_size must be 'true' or 'false', got {meta['quasar.dynamic_size']!r}")
    dynamic = dyn == "true"
    if not dynamic and not spec.fixed_size:
        raise bad(f"the graph takes a fixed input size but its spec policy {spec.policy!r} gives varying sizes")
    scales = None
    if "quasar.logit_scales" in meta:
        raw = _json(meta, "quasar.logit_scales", bad)
        if (not isinstance(raw, list) or len(raw) != len(heads)
                or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in raw)):
            raise bad(f"quasar.logit_scales must list {len(heads)} finite numbers (one per head), got {raw!r}")
        scales = tuple(float(s) for s in raw)
    return ModelInfo(path=path, kind=kind, heads=tuple(heads), spec=spec, encoder=meta["quasar.encoder"],
                     dynamic_size=dynamic, logit_scales=scales, precision=meta.get("quasar.precision"),
                     pack_hash=meta.get("quasar.pack_hash"), project_version=meta.get("quasar.project_version"),
                     metadata=dict(meta))


def _json(meta: dict[str, str], key: str, bad):
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise bad(f"{key} is not valid JSON: {meta[key][:80]!r}") from None


def load_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read, validate and cross-check a model file (see :func:`verify_model`)."""
    path = os.fspath(path)
    info = parse_metadata(read_metadata(path), path, model_kind(path))
    verify_model(info)
    return info


def verify_model(info: ModelInfo) -> None:
    """The file matches its recorded sha256 (when it has a ``.sha256`` sidecar) and, for ONNX files,
    the metadata agrees with the graph (:func:`quasar.runtime.integrity.check_graph`)."""
    from quasar.runtime.integrity import check_graph, check_sha256_sidecar, check_spec_bounds  # noqa: PLC0415

    check_sha256_sidecar(info.path)
    if info.kind == "onnx":
        check_graph(info.path, info.metadata, info.spec)
    else:  # an engine's graph cannot be read here; its sidecar's spec can still be sane
        reason = check_spec_bounds(info.spec)
        if reason:
            raise QuasarError(f"{info.path}: {reason}; refusing this model")


_default_lock = threading.Lock()
_default_path: str | None = None


def default_model_path() -> str:
    """``$QUASAR_MODEL``, else the embedded default model, exported and cached on first use.

    The export runs in a subprocess (``python -m quasar.export.default`` prints the cached path), so
    this process never imports torch. The answer is remembered for the life of the process.
    """
    global _default_path
    env = os.environ.get(ENV_MODEL)
    if env:
        return env
    with _default_lock:
        if _default_path is None:
            cmd = [sys.executable, "-m", "quasar.export.default"]
            try:
                r = run_forwarding_notes(cmd)
            except OSError as e:
                raise QuasarError(f"cannot run {' '.join(cmd)}: {e}") from None
            lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
            if r.returncode != 0 or not lines or not os.path.exists(lines[-1]):
                tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise QuasarError(f"no default model: `python -m quasar.export.default` failed ({tail}); "
                                  f"pass --model FILE or set {ENV_MODEL}")
            _default_path = lines[-1]
        return _default_path


NOTE_PREFIX = "quasar: "  # stderr lines of the exporter that are meant for the user as they happen


def run_forwarding_notes(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing its output, but pass its stderr lines that start with ``NOTE_PREFIX``
    (other than errors) on to this process's stderr as they come, so that the first-use export says
    what it is doing instead of pausing silently. Its whole stderr is still returned."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            err_lines.append(line)
            if line.startswith(NOTE_PREFIX) and not line.startswith(NOTE_PREFIX + "error"):
                print(line.rstrip("\n"), file=sys.stderr, flush=True)

    t = threading.Thread(target=pump, name="quasar-export-notes", daemon=True)
    t.start()
    try:
        out = proc.stdout.read()
        proc.wait()
    except BaseException:  # Ctrl-C: do not leave the exporter running
        proc.kill()
        proc.wait()
        raise
    finally:
        t.join()
        proc.stdout.close()
        proc.stderr.close()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "".join(err_lines))
