"""``quasar bench``: the CPU speed benchmark of :mod:`quasar.bench.speed` from the command line.

Registered like the other stages (``register(subparsers)``); needs the export extras (torch,
torchvision, pillow) because it measures the eager PyTorch baseline too.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from quasar.bench.speed import add_arguments  # noqa: PLC0415

    p = subparsers.add_parser(
        "bench", help="CPU speed benchmark: eager PyTorch vs the QUASAR engine",
        description="Score camera-size and 1 MP JPEGs with the eager PyTorch pipeline and with the QUASAR "
                    "engine (ONNX Runtime fp32/int8), side by side; write speed.json and speed.md.")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quasar.bench.speed import run_from_args  # noqa: PLC0415

    return run_from_args(args)
