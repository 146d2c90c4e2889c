"""The default model: the shipped default pack exported with its encoder, cached per pack and precision.

The runtime never imports torch, so it gets this file by running ``python -m quasar.export.default
[--precision P]`` as a subprocess, which prints the path (exporting once, then reusing the cache).
The file name carries the pack's content hash, so a new default pack gets a new file and a stale one
is never used. The file's sha256 is recorded beside it at export (``X.onnx.sha256``) and checked
before the cache is reused: a file corrupted in the cache (its metadata intact) is exported again,
and the runtime refuses one that changes after that check (:mod:`quasar.runtime.integrity`).
Concurrent first calls are safe: each export writes a temporary file and renames it.
A cache hit imports neither torch nor the exporter (about 1 s instead of 3).
"""

from __future__ import annotations

import argparse
import os
import sys

from quasar.errors import QuasarError
from quasar.photos import cache_dir


def default_model_file(pack_hash: str, precision: str = "fp32") -> str:
    """``<cache>/models/default-<12 hex of the pack hash>-<precision>.onnx``."""
    return str(cache_dir() / "models" / f"default-{pack_hash[7:19]}-{precision}.onnx")


def _is_current(path: str, pack_hash: str, precision: str) -> bool:
    """A cached file is reused only if it passes the contract checks, is for this pack and precision,
    and was written by this exporter revision (a truncated or stale file is simply exported again)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    from quasar.export.integrity import matches_recorded_sha256

    if not matches_recorded_sha256(path):  # no sidecar (older cache) or a corrupted file: export again
        return False
    import onnx

    from quasar.export.metadata import MetadataError, load_info, producer_version

    try:
        model = onnx.load(path, load_external_data=False)
        info = load_info(model)
    except (MetadataError, OSError, ValueError):
        return False
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: a broken file
        return False
    return (info.pack_hash == pack_hash and info.precision == precision
            and model.producer_version == producer_version())


def default_model_path(precision: str = "fp32") -> str:
    """Path of the default fused model in ``precision``, exporting it on first use."""
    from quasar.centroids.pack import CentroidPack, PackError
    from quasar.export.metadata import PRECISIONS

    if precision not in PRECISIONS:
        raise QuasarError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    try:
        pack = CentroidPack.load("default")
    except PackError as e:
        raise QuasarError(str(e)) from None
    path = default_model_file(pack.content_hash, precision)
    if _is_current(path, pack.content_hash, precision):
        return path
    print(f"quasar: preparing the default model (first use, ~10 s): exporting it to {path}",
          file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    from quasar.export.integrity import record_file_sha256
    from quasar.export.onnx_export import export_onnx  # torch: only when there is something to export

    out = export_onnx(None, pack, path, precision=precision)
    record_file_sha256(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quasar.export.default",
                                     description="Print the path of the default fused model (exported once).")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    args = parser.parse_args(argv)
    try:
        print(default_model_path(args.precision))
    except QuasarError as e:
        print(f"quasar: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
