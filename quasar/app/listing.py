"""``quasar list``: the encoders, centroid packs and fused models this install knows about, and the backends
with where each has run (the CUDA and TensorRT ones: not yet run).

Torch-free: encoder names come from :mod:`quasar.encoders.names` (plain data), packs are read as
JSON, models through the runtime's metadata reader. Nothing is imported until the command runs, so
building the CLI parser stays cheap. A file that cannot be read is listed with the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
PACK_SUFFIX = ".qpack.json"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "list", help="list encoders, centroid packs and models (shipped and cached)",
        description="List the encoder ids (built-ins and family patterns), the packs shipped in quasar/data, "
                    "and the models shipped in quasar/data or cached in the models folder.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def list_packs(folder: Path = DATA_DIR) -> list[dict]:
    """One record per ``*.qpack.json``: name, encoder, heads, content hash (or ``error``)."""
    out = []
    for path in sorted(folder.glob(f"*{PACK_SUFFIX}")):
        rec: dict = {"name": path.name[: -len(PACK_SUFFIX)], "path": str(path)}
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            rec.update(encoder=str(d["encoder"]), heads=[str(h["name"]) for h in d["heads"]],
                       content_hash=d.get("content_hash"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
        out.append(rec)
    return out


def model_files(folders: list[Path]) -> list[Path]:
    """``*.onnx`` and TensorRT engines in ``folders`` (missing folders are skipped)."""
    from quasar.contract import ENGINE_SUFFIXES

    files: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".onnx", *ENGINE_SUFFIXES))
    return files


def list_models(folders: list[Path] | None = None) -> list[dict]:
    """One record per model: heads, precision, pack hash, size (or ``error``, the one-line reason)."""
    from quasar.errors import one_line
    from quasar.paths import models_dir
    from quasar.runtime.model import load_model_info

    folders = folders if folders is not None else [DATA_DIR, models_dir()]
    out = []
    for path in model_files(folders):
        rec: dict = {"name": path.name, "path": str(path), "size": path.stat().st_size}
        try:
            info = load_model_info(path)
            rec.update(encoder=info.encoder, heads=list(info.heads), precision=info.precision,
                       pack_hash=info.pack_hash)
        except Exception as e:
            rec["error"] = one_line(str(e)) or type(e).__name__
        out.append(rec)
    return out


def list_backends() -> list[dict]:
    """One record per backend and device: where it has run (``quasar.runtime.backends.VERIFIED``)."""
    from quasar.runtime.backends import VERIFIED

    return [{"name": name, "status": status} for name, status in VERIFIED.items()]


def collect() -> dict:
    from quasar.encoders.names import list_encoders

    return {"encoders": list_encoders(), "packs": list_packs(), "models": list_models(), "backends": list_backends()}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _pack_line(p: dict) -> str:
    return f"encoder={p['encoder']}  heads={','.join(p['heads'])}  hash={p['content_hash']}"


def _model_line(m: dict) -> str:
    return (f"heads={','.join(m['heads'])}  precision={m['precision']}  pack={m['pack_hash']}  "
            f"size={_size(m['size'])}")


def _section(title: str, records: list[dict], key: str, describe) -> list[str]:
    """``title`` then one indented line per record: its ``key`` and ``describe(record)``, or why it is unreadable."""
    lines = [title] + ([] if records else ["  (none)"])
    for r in records:
        lines.append(f"  {r[key]}  " + (f"unreadable: {r['error']}" if "error" in r else describe(r)))
    return lines


def format_text(d: dict) -> str:
    lines = ["encoders"] + [f"  {e}" for e in d["encoders"]]
    lines += _section("packs", d["packs"], "name", _pack_line)
    lines += _section("models", d["models"], "path", _model_line)
    lines += ["backends (tested: run by this project's tests on a CPU; not yet run: no GPU was available, "
              "python -m benchmarks.gpu_check runs them)"] + [f"  {b['name']:22s} {b['status']}" for b in d["backends"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    d = collect()
    print(json.dumps(d, indent=2) if args.json else format_text(d))
    return 0


__all__ = ["collect", "format_text", "list_backends", "list_models", "list_packs", "register", "run"]
