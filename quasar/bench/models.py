"""The fused ONNX models the benchmark scores with, produced by the project's exporter.

Preferred source: ``quasar.export.default.default_model_path(precision)`` (the cached default model
that ``Scorer()`` uses). If that module is not there (older checkouts), the same models are exported
with :func:`quasar.export.onnx_export.export_onnx` into the benchmark's cache folder, keyed by the
default pack's content hash and the project version, so a new pack or exporter never reuses a stale
file. Either way the benchmark measures the exporter's output, never a graph of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

ENCODER = "effnet-lite0"


class ModelUnavailable(RuntimeError):
    """A precision could not be produced here (e.g. int8 without its quantisation tools)."""


def _cached_export(precision: str, cache: Path) -> str:
    from quasar import __version__  # noqa: PLC0415
    from quasar.centroids.pack import CentroidPack  # noqa: PLC0415
    from quasar.export.onnx_export import export_onnx  # noqa: PLC0415

    pack = CentroidPack.load("default")
    key = pack.content_hash.split(":")[-1][:12]
    out = cache / "models" / f"{ENCODER}-{key}-v{__version__}-{precision}.onnx"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(ENCODER, pack, out, precision=precision)
    return str(out)


def model_path(precision: str, cache: str | os.PathLike) -> str:
    """Path of the default (effnet-lite0 + default pack) fused model in ``precision`` (fp32/int8)."""
    try:
        from quasar.export.default import default_model_path  # noqa: PLC0415
    except ImportError:
        default_model_path = None
    try:
        if default_model_path is not None:
            return str(default_model_path(precision))
        return _cached_export(precision, Path(cache))
    except ImportError as e:
        raise ModelUnavailable(f"{precision} export needs {e.name or e}") from e
    except Exception as e:  # noqa: BLE001 - an exporter failure skips that precision, it is reported
        raise ModelUnavailable(f"{precision} export failed: {type(e).__name__}: {str(e)[:300]}") from e
