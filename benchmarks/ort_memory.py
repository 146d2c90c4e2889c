"""Python scoring's memory against the number of distinct image sizes, ORT's memory pattern on vs off.

    python benchmarks/ort_memory.py [--sizes 300] [--rounds 2]

ONNX Runtime's memory-pattern planning (``SessionOptions.enable_mem_pattern``) keeps one plan per
input shape it has run; the default model takes any size, so every new image size adds one. The
runtime now turns it off for graphs with dynamic sizes (``quasar.runtime.backends.ort.memory_pattern``).

Each variant runs in its own fresh process (peak RSS is the process's ``VmHWM``), on the same
generated images (PNG, ``--sizes`` distinct random sizes, 128..1024 pixels a side: the shipped model's
spec makes them inputs of up to 225 shapes, sides 64..512 in steps of 32): the shipped model, one
``Scorer``, the images scored ``--rounds`` times. The variants alternate round by round
(``pattern on`` is what the runtime did before) so a busy neighbour hits both alike. Reported per
variant: peak RSS after one size only and after all sizes, the RSS at the end, and the seconds of
each pass over the images. Writes ``results/ort_memory.{json,md}``. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quasar_bench.results import write_results  # noqa: E402

CHILD = r"""
import json, sys, time
import cv2, numpy as np
from quasar.runtime.backends import ort as ortb

variant, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if variant == "pattern on":
    ortb.memory_pattern = lambda info: True  # what the runtime did before

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

rng = np.random.default_rng(0)  # random sizes, 128..1024 a side: every input shape the spec allows,
sizes, seen = [], set()           # in batches of mixed make-up, as a folder of odd-sized files gives
while len(sizes) < n:
    h, w = (int(x) for x in rng.integers(128, 1025, 2))
    if (h, w) not in seen:
        seen.add((h, w))
        sizes.append((h, w))
yy, xx = np.mgrid[0:1024, 0:1024]
base = np.stack([(xx * 255 // 1023), (yy * 255 // 1023), ((xx + yy) * 255 // 2046)], -1).astype(np.uint8)
images = [cv2.imencode(".png", np.ascontiguousarray(base[:h, :w]))[1].tobytes() for h, w in sizes]
from quasar.preprocess import target_shape
from quasar.runtime import Scorer
with Scorer() as s:
    shapes = {target_shape(h, w, s.spec) for h, w in sizes}
    s.score(images[:1]); s.score(images[:1])
    one = status("VmHWM")
    secs = []
    for _ in range(rounds):
        t = time.perf_counter()
        recs = s.score(images)
        secs.append(time.perf_counter() - t)
    ok = sum(r.ok for r in recs)
print(json.dumps({"variant": variant, "sizes": n, "shapes": len(shapes), "ok": ok, "peak_rss_one_size_mb": one,
                  "peak_rss_mb": status("VmHWM"), "rss_end_mb": status("VmRSS"), "pass_s": secs}))
"""


def run_child(variant: str, sizes: int, rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(sizes), str(rounds)], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{variant}: the scoring process failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, default=300, help="distinct image sizes")
    ap.add_argument("--rounds", type=int, default=2, help="fresh processes per variant, alternating")
    ap.add_argument("--passes", type=int, default=2, help="passes over the images in each process")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    from quasar.machine import machine_info

    runs = []
    for r in range(args.rounds):
        for variant in ("pattern on", "pattern off"):
            res = run_child(variant, args.sizes, args.passes)
            res["round"] = r
            runs.append(res)
            print(json.dumps(res), flush=True)
    summary = {}
    for variant in ("pattern on", "pattern off"):
        rs = [x for x in runs if x["variant"] == variant]
        passes = [s for x in rs for s in x["pass_s"]]
        summary[variant] = {"peak_rss_mb_max": max(x["peak_rss_mb"] for x in rs),
                            "peak_rss_one_size_mb_max": max(x["peak_rss_one_size_mb"] for x in rs),
                            "rss_end_mb_max": max(x["rss_end_mb"] for x in rs),
                            "img_per_s_median": sorted(args.sizes / s for s in passes)[len(passes) // 2]}
    result = {"runs": runs, "summary": summary, "sizes": args.sizes, "machine": machine_info(),
              "loadavg": os.getloadavg(), "date": time.strftime("%Y-%m-%d")}
    m = result["machine"]
    md = [f"# Python scoring memory, {args.sizes} distinct image sizes (shipped model, ORT CPU)", "",
          f"{m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa'])}; {result['date']}; load average "
          f"{result['loadavg'][0]:.1f}. Each variant in {args.rounds} fresh processes, alternating; "
          f"{args.passes} passes over the images each.", "",
          "| ORT memory pattern | peak RSS, one size (MB) | peak RSS, all sizes (MB) | RSS at end (MB) | img/s (median pass) |",
          "|---|---|---|---|---|"]
    for variant, s in summary.items():
        label = "on (before)" if variant == "pattern on" else "off for dynamic sizes (now)"
        md.append(f"| {label} | {s['peak_rss_one_size_mb_max']:.0f} | {s['peak_rss_mb_max']:.0f} | "
                  f"{s['rss_end_mb_max']:.0f} | {s['img_per_s_median']:.1f} |")
    write_results(os.path.join(args.out, "ort_memory"), result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
