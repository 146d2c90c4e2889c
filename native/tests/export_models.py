"""Export the models the native tests use, with the Python side (`python3 -m quasar export onnx`):
the default pack as a static 384x512 graph with ReLU6 as Clip (parity, C API, CLI) and as a static
64x64 graph with ReLU6 as Relu(x) - Relu(x - 6) (a second parity run, and the memory test, which
scores thousands of images: the small input keeps both fast). The library loads both forms. A copy of
the 64x64 graph with +infinity in one encoder weight (sealed, so it loads) gives non-finite scores: the C
API test's NON_FINITE cases.

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
    write_non_finite(os.path.join(out, "default-static-64x64.onnx"), os.path.join(out, "non-finite-64x64.onnx"))
    return 0


def write_non_finite(src: str, dst: str) -> None:
    """``src`` with +inf in the per-head scale after the heads' Add (NaN would be refused at load, and an
    encoder weight's inf is clipped away by OpenCV's ReLU6), and a fresh digest: the margins are infinite."""
    import numpy as np
    import onnx

    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    sys.path.insert(0, root)
    from quasar.contract import MODEL_SHA256_KEY
    from quasar.integrity import seal_model_bytes

    m = onnx.load(src)
    inits = {t.name: t for t in m.graph.initializer}
    head_add = next(n for n in m.graph.node if "quasar.head_biases" in n.input)
    scale = next(n for n in m.graph.node if n.op_type == "Mul" and head_add.output[0] in n.input)
    w = inits[next(i for i in scale.input if i in inits and not i.startswith("quasar."))]
    raw = np.frombuffer(w.raw_data, np.float32).copy()
    raw[:] = np.inf
    w.raw_data = raw.tobytes()
    keep = [(p.key, p.value) for p in m.metadata_props if p.key != MODEL_SHA256_KEY]
    del m.metadata_props[:]
    for k, v in keep:
        m.metadata_props.add(key=k, value=v)
    with open(dst, "wb") as f:
        f.write(seal_model_bytes(m.SerializeToString()))


if __name__ == "__main__":
    sys.exit(main())
