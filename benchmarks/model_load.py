"""Model load time: the contract checks the runtimes run before the first image (issue 21, item 8).

Times, over ``--repeat`` runs each (median and min, seconds):

* ``python_check``: :func:`quasar.runtime.load_model_info` (metadata, graph cross-checks, digest) on ``--model``;
* ``native_create``: the native library's ``quasar_scorer_create`` + destroy on ``--native-model`` (a static graph
  for its default OpenCV backend): checks and backend build together.

    python benchmarks/model_load.py --model quasar/data/default_quality-fp32.onnx \
        --native-model build/native/test-data/default-static-64x64.onnx --lib build/native/libquasar.so \
        --label after --out benchmarks/results/model_load.json

Wall and CPU seconds are both recorded, with the 1-minute load average (wall time on a shared machine
mostly measures the other jobs). Results are merged into ``--out`` under ``--label`` (e.g. ``before`` / ``after``), with the machine.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def _cpu() -> dict:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        text = ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Model name")), platform.processor())
    return {"model_name": name, "avx2": " avx2" in text, "avx512_vnni": "avx512_vnni" in text,
            "cpus": os.cpu_count()}


def _times(fn, repeat: int) -> dict:
    fn()  # warm the page cache and imports
    ts, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # CPU seconds of this process too: on a shared, loaded machine wall time mostly measures the others
    return {"median_s": round(statistics.median(ts), 5), "min_s": round(min(ts), 5),
            "cpu_median_s": round(statistics.median(cpu), 5), "cpu_min_s": round(min(cpu), 5), "runs": repeat,
            "load_average": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--native-model")
    ap.add_argument("--lib")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from quasar.runtime import load_model_info

    res = {"model": os.path.basename(a.model), "model_bytes": os.path.getsize(a.model),
           "python_check": _times(lambda: load_model_info(a.model), a.repeat)}
    if a.native_model and a.lib:
        lib = ctypes.CDLL(a.lib)
        lib.quasar_scorer_create.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.quasar_scorer_destroy.argtypes = [ctypes.c_void_p]
        lib.quasar_last_error.restype = ctypes.c_char_p

        def create() -> None:
            h = ctypes.c_void_p()
            if lib.quasar_scorer_create(a.native_model.encode(), None, ctypes.byref(h)) != 0:
                raise SystemExit(f"native load failed: {lib.quasar_last_error().decode()}")
            lib.quasar_scorer_destroy(h)

        res["native_model"] = os.path.basename(a.native_model)
        res["native_model_bytes"] = os.path.getsize(a.native_model)
        res["native_create"] = _times(create, a.repeat)
    out = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            out = json.load(f)
    out["machine"] = _cpu()
    out[a.label] = res
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps({a.label: res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
