"""Export the models the native tests use, with the Python side (`python3 -m quasar export onnx`):
the default pack as a static 384x512 graph (parity, C API, CLI) and as a static 64x64 graph (the
memory test scores thousands of images; the small input keeps it fast).

    python3 native/tests/export_models.py OUTDIR
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> int:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for hw in ("384x512", "64x64"):
        path = os.path.join(out, f"default-static-{hw}.onnx")
        subprocess.run([sys.executable, "-m", "quasar", "export", "onnx", "--pack", "default", "--static", hw,
                        "-o", path], check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
