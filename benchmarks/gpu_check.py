"""One command for a short GPU slot: parity first, then model-only and end-to-end speed, one JSON + Markdown.

    python -m benchmarks.gpu_check                    # on a GPU machine, from the repository root
    python -m benchmarks.gpu_check --device cpu --tiny  # the script itself, on the CPU (CI runs this)

What it measures and in which order: :mod:`quasar_bench.gpu_check`. **Not yet run on a GPU.**
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # quasar_bench, as the other scripts import it

from quasar_bench.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
