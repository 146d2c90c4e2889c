"""What the exporter records so that a fused model can be checked when it is loaded (issue 9, items 9-10).

* :func:`head_metadata`: ``quasar.head_sha256``, the hash of every ``quasar.*`` initializer, computed by
  the runtime's own reader (:mod:`quasar.runtime.integrity`), so export and load can never disagree
  on what was hashed. Written into the graph's metadata by :func:`quasar.export.onnx_export.finalize`.
* :func:`record_file_sha256`: the file's sha256 in a ``X.onnx.sha256`` sidecar (not inside the ONNX
  file, which cannot hold its own hash); :mod:`quasar.export.default` writes one for the cached
  default model and checks it before reusing the cache.
"""

from __future__ import annotations

import os

import onnx

from quasar.runtime.integrity import (
    HEAD_SHA256_KEY,
    check_sha256_sidecar,
    head_sha256_of_protos,
    write_sha256_sidecar,
)


def head_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """``{"quasar.head_sha256": "sha256:..."}`` for ``model``'s ``quasar.*`` initializers."""
    return {HEAD_SHA256_KEY: head_sha256_of_protos(model.graph.initializer)}


def record_file_sha256(path: str | os.PathLike) -> str:
    """Write ``path.sha256``; returns the hex digest."""
    return write_sha256_sidecar(path)


def matches_recorded_sha256(path: str | os.PathLike) -> bool:
    """True only if ``path`` has a sidecar and matches it (a missing or stale sidecar is False)."""
    try:
        return check_sha256_sidecar(path)
    except Exception:  # noqa: BLE001 - QuasarError (mismatch, unreadable sidecar) or an OS error: not current
        return False
