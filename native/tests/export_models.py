"""Export the models the native tests use, with the Python side (`python3 -m quasar export onnx`):
the default pack as a static 384x512 graph with ReLU6 as Clip (parity, C API, CLI) and as a static
64x64 graph with ReLU6 as Relu(x) - Relu(x - 6) (a second parity run, and the memory test, which
scores thousands of images: the small input keeps both fast). The library loads both forms.

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
    for hw, clip_form in (("384x512", "clip"), ("64x64", "relu")):
        path = os.path.join(out, f"default-static-{hw}.onnx")
        subprocess.run([sys.executable, "-m", "quasar", "export", "onnx", "--pack", "default", "--static", hw,
                        "--clip-form", clip_form, "-o", path], check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
