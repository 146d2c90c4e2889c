"""GPU speed benchmark, ready for a CUDA machine: torch fp16 eager and CUDA graphs, ORT CUDA EP, TensorRT.

Thin entry point over :mod:`quasar_bench.gpu` (read its docstring for what is measured). Prints the
device (name, compute capability) with the numbers and writes JSON (default
``benchmarks/results/gpu_speed.json``). Takes a few minutes; exits with status 2 and one line when
no CUDA device is available.

    python benchmarks/gpu_speed.py [--out FILE] [--batch 32] [--images 48] [--passes 8]

**Not yet run**: no GPU was available, so this script and the code it measures have never run;
``bash .ci/gpu`` (the GPU tests, then this script) is the command that verifies them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quasar_bench.gpu import main

if __name__ == "__main__":
    sys.exit(main())
