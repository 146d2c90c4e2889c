"""The fused ONNX models the benchmark scores with, produced by the project's exporter, for one pack.

Every configuration of a run must use the *same* centroid pack: the default pack is a file in the
source tree that may be rebuilt while a 10-minute benchmark runs (it happened), and a baseline
built from one pack compared with an engine built from another gives meaningless agreement
numbers. So the run takes a snapshot of the pack (:func:`snapshot_pack`), the eager workers load
that file, and the models are checked against its content hash.

Preferred model source: ``quasar.export.default.default_pack_model(precision)`` (the cached default
model that ``Scorer()`` uses), accepted only if its ``quasar.pack_hash`` is the snapshot's. Otherwise
(no such module yet, or another pack) the model is exported with
:func:`quasar.export.onnx_export.export_onnx` into the benchmark's cache, keyed by the pack's hash
and the project version. Either way the benchmark measures the exporter's output.
"""

from __future__ import annotations

import os
from pathlib import Path

ENCODER = "effnet-lite0"


class ModelUnavailable(RuntimeError):
    """A precision could not be produced here (e.g. int8 without its quantisation tools)."""


def pack_key(pack) -> str:
    return pack.content_hash.split(":")[-1][:12]


def snapshot_pack(cache: str | os.PathLike, pack: str = "default") -> tuple[object, str]:
    """(pack, path of a frozen copy under ``cache/packs``) for ``pack`` as it is now."""
    from quasar.centroids.pack import CentroidPack

    p = CentroidPack.load(pack)
    out = Path(cache) / "packs" / f"{ENCODER}-{pack_key(p)}.qpack.json"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        p.save(out)
    return p, str(out)


def _cached_export(precision: str, cache: Path, pack) -> str:
    from quasar import __version__
    from quasar.export.onnx_export import export_onnx

    out = cache / "models" / f"{ENCODER}-{pack_key(pack)}-v{__version__}-{precision}.onnx"
    if not out.exists() or not _loads(out):  # missing, or refused by the runtime (stale or damaged)
        out.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(ENCODER, pack, out, precision=precision)
    return str(out)


def _loads(path: Path) -> bool:
    from quasar.errors import QuasarError
    from quasar.runtime.model import load_model_info

    try:
        load_model_info(path)
    except QuasarError:
        return False
    return True


def _default_for(precision: str, pack) -> str | None:
    """The project's cached default model, if that API exists and the model is built from ``pack``."""
    try:
        from quasar.export.default import default_pack_model
    except ImportError:
        return None
    from quasar.runtime.model import load_model_info

    path = str(default_pack_model(precision))
    return path if load_model_info(path).pack_hash == pack.content_hash else None


def model_path(precision: str, cache: str | os.PathLike, pack=None) -> str:
    """Path of the effnet-lite0 fused model in ``precision`` (fp32/fp16/int8) for ``pack`` (default: the default pack)."""
    try:
        if pack is None:
            from quasar.centroids.pack import CentroidPack

            pack = CentroidPack.load("default")
        return _default_for(precision, pack) or _cached_export(precision, Path(cache), pack)
    except ImportError as e:
        raise ModelUnavailable(f"{precision} export needs {e.name or e}") from e
    except Exception as e:
        raise ModelUnavailable(f"{precision} export failed: {type(e).__name__}: {str(e)[:300]}") from e
