"""Dynamic vs shape-specialised ONNX Runtime sessions (CPU), model only, side by side in one run.

The runtime's dynamic session (the shipped model, free batch, height and width) against the session
:mod:`quasar.runtime.backends.shapes` makes for one input shape (the same file, its free dimensions
fixed with ``add_free_dimension_override_by_name``), both built by the runtime's own ``OrtBackend``
(graph optimisation ``all``, intra-op threads = usable cores, no spinning, the shared arena).

Shapes: 384x512 (a 4:3 camera photo, landscape), 512x384 (portrait) and 288x512 (16:9), what the
default model's ``native`` 512 preprocessing makes of camera photos; batch 1 and batch 8; pixels are
held-out photos resized to the shape. Also: a batch of 7 on the dynamic session vs padded to 8 on the
batch-8 session (does padding a short batch pay?), the time to make a specialised session, and the
largest score difference between the two sessions.

Rounds are interleaved (every case, both sessions, once per round; which session runs first
alternates), so load from other processes hits both alike; the ratios within this run are what
compare. Each call's CPU time (all of ORT's threads) is recorded too: on a shared machine it is less
disturbed by other processes than wall time.

Run: ``python benchmarks/shape_sessions.py [--rounds 20]``; writes ``benchmarks/results/shape_sessions.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from quasar_bench.lscpu import isa_summary, lscpu
from quasar_bench.results import write_results

from quasar.io import read_rgb
from quasar.machine import machine_info, usable_cores
from quasar.photos import balanced, fetch_photos
from quasar.preprocess import resize
from quasar.runtime.backends import create_backend
from quasar.runtime.model import load_model_info
from quasar.shipped import shipped_model_path

HERE = Path(__file__).parent
SHAPES = ((384, 512), (512, 384), (288, 512))
BATCHES = (1, 8)
PADDED = (7, 8, 384, 512)  # a batch of 7, padded to the batch-8 session's 8


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def rss_child(on: bool) -> dict:
    """Peak RSS of one backend scoring the same batches (batch 1 and 4 at each shape, three times each),
    with shape sessions on or off; run in a fresh process so the peaks do not mix."""
    info = load_model_info(shipped_model_path())
    backend = create_backend(info, "onnxruntime", "cpu", threads=usable_cores(), shape_sessions=on)
    for n in (1, 4):
        for h, w in SHAPES:
            for _ in range(3):
                backend.run(np.full((n, h, w, 3), 100, np.uint8))
    held = len(backend._shapes.shapes) if backend._shapes else 0
    with open("/proc/self/status") as f:
        peak = next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM"))
    return {"peak_rss_mb": peak, "sessions_held": held}


def rss_compare() -> dict:
    import json
    import subprocess

    out = {}
    for mode in ("off", "on"):
        p = subprocess.run([sys.executable, __file__, "--rss-child", mode], capture_output=True, text=True,
                           timeout=300, check=True)
        out[mode] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def timed(session, x: np.ndarray) -> tuple[float, float, list[np.ndarray]]:
    t, c = time.perf_counter(), time.process_time()
    out = session.run(None, {"images": x})
    return time.perf_counter() - t, time.process_time() - c, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="batch-1 rounds (batch 8: a third, at least 5)")
    ap.add_argument("--out", default=str(HERE / "results" / "shape_sessions"))
    ap.add_argument("--rss-child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        import json

        print(json.dumps(rss_child(args.rss_child == "on")))
        return 0
    threads = usable_cores()
    info = load_model_info(shipped_model_path())
    backend = create_backend(info, "onnxruntime", "cpu", threads=threads)
    if backend._shapes is None:
        print("this model's free dimensions cannot be fixed by name", file=sys.stderr)
        return 1
    photos = balanced([p for p in fetch_photos() if p.split == "heldout"], 8)
    rgb = [read_rgb(p.path) for p in photos]
    pix = {(h, w): np.stack([resize(im, h, w, info.spec.interpolation, info.spec.resampler) for im in rgb])
           for h, w in SHAPES}

    cases = {f"b{n} {h}x{w}": (n, h, w) for n in BATCHES for h, w in SHAPES}
    dynamic = backend.session
    r0 = rss_mb()
    special, make_s = {}, {}
    for name, (n, h, w) in cases.items():
        t = time.perf_counter()
        special[name] = backend._shapes.make({"batch": n, "height": h, "width": w})
        make_s[name] = time.perf_counter() - t
    inputs = {name: pix[(h, w)][:n] for name, (n, h, w) in cases.items()}

    # parity and warm-up (the first run of a session allocates)
    parity = {}
    for name, x in inputs.items():
        for _ in range(2):
            a = dynamic.run(None, {"images": x})
            b = special[name].run(None, {"images": x})
        parity[name] = max(float(np.abs(p - q).max()) for p, q in zip(a, b, strict=True))
    rss_added = rss_mb() - r0

    n7, n8, ph, pw = PADDED
    short = pix[(ph, pw)][:n7]
    padded = np.concatenate([short, np.repeat(short[-1:], n8 - n7, axis=0)])
    pad_session = special[f"b{n8} {ph}x{pw}"]
    dynamic.run(None, {"images": short})

    wall: dict[str, dict[str, list[float]]] = {k: {"dynamic": [], "specialised": []} for k in [*cases, "pad"]}
    cpu: dict[str, dict[str, list[float]]] = {k: {"dynamic": [], "specialised": []} for k in wall}
    for r in range(args.rounds):
        for name, (n, _h, _w) in [*cases.items(), ("pad", (n8, ph, pw))]:
            if n > 1 and r % 3:  # batch 8: every third round
                continue
            if name == "pad":
                runs = [("dynamic", dynamic, short), ("specialised", pad_session, padded)]
            else:
                runs = [("dynamic", dynamic, inputs[name]), ("specialised", special[name], inputs[name])]
            for kind, s, x in (runs if r % 2 == 0 else runs[::-1]):
                tw, tc, _ = timed(s, x)
                wall[name][kind].append(tw)
                cpu[name][kind].append(tc)

    rows = {}
    for name in wall:
        n = n7 if name == "pad" else cases[name][0]
        d_ms, s_ms = (float(np.median(wall[name][k]) * 1000) for k in ("dynamic", "specialised"))
        d_cpu, s_cpu = (float(np.median(cpu[name][k]) * 1000) for k in ("dynamic", "specialised"))
        rows[name] = {"images": n, "rounds": len(wall[name]["dynamic"]), "dynamic_p50_ms": d_ms,
                      "specialised_p50_ms": s_ms, "speedup_wall": d_ms / s_ms, "dynamic_cpu_ms": d_cpu,
                      "specialised_cpu_ms": s_cpu, "speedup_cpu": d_cpu / s_cpu,
                      "dynamic_images_per_s": n / d_ms * 1000, "specialised_images_per_s": n / s_ms * 1000}
        if name != "pad":
            rows[name]["max_abs_diff"] = parity[name]
            rows[name]["make_session_s"] = make_s[name]
    backend.close()
    n_special = len(special)
    del dynamic, special, pad_session
    rss = rss_compare()
    cpuinfo = lscpu()
    report = {"machine": machine_info(), "lscpu": cpuinfo, "isa": isa_summary(cpuinfo["flags"]), "threads": threads,
              "rounds": args.rounds, "model": Path(info.path).name, "photos": len(photos),
              "rss_mb_added_by_specialised_sessions": rss_added, "specialised_sessions": n_special,
              "peak_rss_same_batches": rss, "results": rows}
    m = report["machine"]
    lines = [f"# Dynamic vs shape-specialised ONNX Runtime sessions, model only ({threads} threads)", "",
             f"Machine: {cpuinfo['model_name']}, {m['cores']} usable cores, int8 tier {report['isa']} "
             f"(ISA {' '.join(m['isa'])}); onnxruntime {m['versions'].get('onnxruntime')}; model {report['model']}; "
             f"{args.rounds} interleaved rounds (batch 8: every third). Shared, noisy machine: compare ratios only.",
             "",
             "| case | dynamic p50 ms | specialised p50 ms | speed-up (wall) | speed-up (CPU time) | "
             "make session s | max abs diff |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        label = f"b{n7} {ph}x{pw}: dynamic vs padded to b{n8}" if name == "pad" else name
        extra = ("-", "-") if name == "pad" else (f"{r['make_session_s']:.2f}", f"{r['max_abs_diff']:.1e}")
        lines.append(f"| {label} | {r['dynamic_p50_ms']:.1f} | {r['specialised_p50_ms']:.1f} | "
                     f"{r['speedup_wall']:.2f}x | {r['speedup_cpu']:.2f}x | {extra[0]} | {extra[1]} |")
    lines += ["", "Speed-up = dynamic time / specialised time; above 1 the specialised session is faster.", "",
              f"Memory: the {n_special} specialised sessions above added {rss_added:.0f} MB of RSS after their first "
              "runs (this process; the dynamic session's activations at every case included). The same batches "
              "(batch 1 and 4 at each of the three shapes, three times each) in a fresh process each: peak RSS "
              f"{rss['off']['peak_rss_mb']:.0f} MB with shape sessions off, {rss['on']['peak_rss_mb']:.0f} MB on "
              f"({rss['on']['sessions_held']} sessions held at the end, at most 4)."]
    write_results(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
