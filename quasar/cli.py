"""``quasar`` command line: one sub-command group per pipeline stage.

Each stage's module registers its own commands (``register(subparsers)``) so this file only
dispatches. Stages that need torch import it lazily, so ``quasar score`` runs without torch.
User errors (:class:`~quasar.errors.QuasarError`, missing files) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from quasar import __version__
from quasar.errors import QuasarError

# (module, attribute) pairs; each exposes register(subparsers).
STAGES = (
    "quasar.centroids.cli",
    "quasar.export.cli",
    "quasar.runtime.cli",
    "quasar.eval.cli",
    "quasar.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quasar", description="QUASAR engine: image quality and aesthetics scores.")
    parser.add_argument("--version", action="version", version=f"quasar-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for modname in STAGES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue  # stage not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except QuasarError as e:
        print(f"quasar: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        print(f"quasar: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quasar: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
