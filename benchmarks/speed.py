"""CPU speed benchmark: eager PyTorch as users write it vs the QUASAR engine.

Thin entry point; the logic lives in :mod:`quasar_bench.speed` so that ``quasar bench`` runs the
same code. Full run about 5-10 minutes on 2 cores; ``--quick`` is a smoke test.

    python benchmarks/speed.py [--quick] [--out DIR] [--count N] [--repeat R] [--only TEXT]

Writes ``benchmarks/results/speed.json`` and ``speed.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quasar_bench.speed import main

if __name__ == "__main__":
    sys.exit(main(out_default=str(Path(__file__).resolve().parent / "results")))
