"""The default model: the shipped default pack exported with its encoder, cached per pack and precision.

The runtime never imports torch, so it gets this file by running ``python -m quasar.export.default
[--precision P]`` as a subprocess, which prints the path (exporting once, then reusing the cache).
The file name carries the pack's content hash, so a new default pack gets a new file and a stale one
is never used. The file's sha256 is recorded beside it at export (``X.onnx.sha256``) and checked
before the cache is reused: a file corrupted in the cache (its metadata intact) is exported again,
and the runtime refuses one that changes after that check (:func:`quasar.sidecars.check_sha256_sidecar`).
Concurrent first calls are safe: each export writes a temporary file and renames it.
A cache hit imports neither torch nor the exporter.

``--ship`` re-exports the shipped model into ``quasar/data`` with its provenance file; ``--reproduce``
is the one command that rebuilds the pack, re-exports it and compares (:mod:`quasar.export.reproduce`).
"""

from __future__ import annotations

import argparse
import os
import sys

from quasar.contract import PRECISIONS
from quasar.errors import QuasarError
from quasar.paths import models_dir
from quasar.sidecars import matches_recorded_sha256, write_sha256_sidecar


def default_model_file(pack_hash: str, precision: str = "fp32") -> str:
    """``<cache>/models/default-<12 hex of the pack hash>-<precision>.onnx``."""
    return str(models_dir() / f"default-{pack_hash[7:19]}-{precision}.onnx")


def _is_current(path: str, pack_hash: str, precision: str) -> bool:
    """A cached file is reused only if it passes the contract checks, is for this pack and precision,
    and was written by this exporter revision (a truncated or stale file is simply exported again)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    if not matches_recorded_sha256(path):  # no sidecar (older cache) or a corrupted file: export again
        return False
    import onnx

    from quasar.export.metadata import MetadataError, load_info, producer_version

    try:
        model = onnx.load(path, load_external_data=False)
        info = load_info(model)
    except (MetadataError, OSError, ValueError):
        return False
    except Exception:
        return False
    return (info.pack_hash == pack_hash and info.precision == precision
            and model.producer_version == producer_version())


def default_pack_model(precision: str = "fp32") -> str:
    """Path of the default pack's fused model in ``precision`` (the shipped file for fp32), exporting it
    on first use. Not :func:`quasar.runtime.model.default_model_path`, the model ``Scorer()`` opens
    (``$QUASAR_MODEL`` first)."""
    from quasar.centroids.pack import CentroidPack, PackError

    if precision not in PRECISIONS:
        raise QuasarError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    try:
        pack = CentroidPack.load("default")
    except PackError as e:
        raise QuasarError(str(e)) from None
    if precision == "fp32":
        from quasar.shipped import shipped_model_path

        shipped = shipped_model_path(pack.content_hash)
        if shipped is not None:
            return shipped
    path = default_model_file(pack.content_hash, precision)
    if _is_current(path, pack.content_hash, precision):
        return path
    print(f"quasar: preparing the default model (first use, ~10 s): exporting it to {path}",
          file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    from quasar.export.onnx_export import export_onnx  # torch: only when there is something to export

    out = export_onnx(None, pack, path, precision=precision)
    write_sha256_sidecar(out)
    return out


def ship_default_model(out: str | None = None) -> str:
    """Export the shipped pack's fp32 model to ``quasar/data`` (what ``pip install .`` scores with),
    after ``quasar centroids build-default`` changed the pack, and record its provenance beside it
    (``default_quality.provenance.json``: sha256, library versions, the anchor subset's digests; see
    :mod:`quasar.export.reproduce`); tests check the three agree."""
    from importlib import resources

    from quasar.centroids.pack import CentroidPack
    from quasar.constants import SHIPPED_MODEL
    from quasar.export.onnx_export import export_onnx

    out = out or str(resources.files("quasar") / "data" / SHIPPED_MODEL)
    tmp = out + ".tmp"
    from quasar.export.reproduce import write_provenance

    pack = CentroidPack.load("default")
    export_onnx(None, pack, tmp)
    os.replace(tmp, out)
    write_provenance(out, pack, "python -m quasar.export.default --ship")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quasar.export.default",
                                     description="Print the path of the default fused model (the one shipped "
                                                 "in the package, else exported once into the cache).")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="model precision (default: %(default)s)")
    parser.add_argument("--ship", action="store_true",
                        help="re-export the shipped fp32 model into quasar/data from the shipped pack and "
                             "record its provenance beside it (default_quality.provenance.json)")
    parser.add_argument("--reproduce", action="store_true",
                        help="rebuild the default pack, re-export it and compare both with the shipped files "
                             "and their recorded provenance (exit 1 if they differ; see quasar.export.reproduce)")
    args = parser.parse_args(argv)
    if args.reproduce:
        from quasar.export.reproduce import reproduce

        try:
            return reproduce()
        except QuasarError as e:
            print(f"quasar: error: {e}", file=sys.stderr)
            return 2
    try:
        print(ship_default_model() if args.ship else default_pack_model(args.precision))
    except QuasarError as e:
        print(f"quasar: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
