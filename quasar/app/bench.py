"""``quasar bench``: a thin entry to the CPU speed benchmark, which lives outside the package.

The benchmark code is ``benchmarks/quasar_bench`` of a source checkout (it needs the export extras
and is no part of scoring). Building the CLI parser imports none of it; ``quasar bench ...`` puts
the checkout's ``benchmarks/`` folder on the path and hands its arguments to
:mod:`quasar_bench.speed`. An installed wheel has no such folder: one line says so.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="CPU speed benchmark: eager PyTorch vs the QUASAR engine",
        description="Score camera-size and 1 MP JPEGs with the eager PyTorch pipeline and with the QUASAR "
                    "engine (ONNX Runtime fp32/int8), side by side; write speed.json and speed.md.",
        add_help=False, prefix_chars="+")  # every argument, --help included, goes to the benchmark's parser
    p.add_argument("bench_args", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def load_speed():
    """:mod:`quasar_bench.speed` from the checkout's ``benchmarks/``; QuasarError (one line) without it."""
    from quasar.errors import QuasarError

    if not (BENCHMARKS_DIR / "quasar_bench" / "speed.py").is_file():
        raise QuasarError(f"quasar bench needs the benchmarks/ folder of a source checkout ({BENCHMARKS_DIR} "
                          "not found); it is not part of the installed package")
    if str(BENCHMARKS_DIR) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS_DIR))
    return importlib.import_module("quasar_bench.speed")


def run(args: argparse.Namespace) -> int:
    speed = load_speed()
    p = argparse.ArgumentParser(prog="quasar bench", description=speed.__doc__.split("\n\n")[0])
    speed.add_arguments(p)
    return speed.run_from_args(p.parse_args(args.bench_args))
