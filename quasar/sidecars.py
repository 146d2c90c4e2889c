"""The files beside a model: its ``X.onnx.sha256`` (``sha256sum`` format) and a TensorRT engine's
``X.engine.json`` (the contract's metadata, the engine's sha256, the TensorRT version and GPU it was
built for).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from quasar.contract import (
    ENGINE_SIDECAR_FORMAT,
    ENGINE_SIDECAR_VERSION,
    ENGINE_SUFFIXES,
    INPUT_NAME,
    OUTPUT_NAMES,
    SHA256_SIDECAR_SUFFIX,
)
from quasar.errors import QuasarError, one_line
from quasar.machine import current_platform

if TYPE_CHECKING:
    pass


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
