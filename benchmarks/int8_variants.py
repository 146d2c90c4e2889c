"""int8 variants of the default model side by side: speed vs fp32 and SRCC vs fp32 on held-out photos.

Variants (all from the shipped fp32 model, ONNX Runtime quantisation, calibrated like the exporter does
on the anchor photos and distorted copies, :func:`quasar.export.int8.default_calibration_images`):

* ``default int8``: the cached default int8 (``quasar bench``'s; static QDQ, U8S8, per-channel weights,
  the leading 30 % of the backbone's weighted layers in fp32);
* ``static pc 0.3``: the same recipe re-quantised here (the control: same source as the others);
* ``static pt 0.3``: per-tensor weight scales instead of per-channel;
* ``static pc 0.2`` / ``static pc 0.15`` / ``static pc 0``: per-channel, fewer leading layers kept fp32 (the profile,
  results/op_profile.md, shows the fp32 blocks 0..2 take about half of the int8 model's time);
* ``dynamic pc 0.3``: ``quantize_dynamic`` (weights int8 per channel, activations quantised at run
  time: ConvInteger), the leading 30 % fp32.

Speed: model only, 384x512, batch 1 and 8, each model's session with batch, height and width fixed
(what the runtime runs, :mod:`quasar.runtime.backends.shapes`), interleaved rounds, medians; the ratio
is fp32 time / variant time within this run, wall and CPU time (all of ORT's threads; less disturbed by
other processes on a shared machine, so the findings use it). Accuracy: each model's margins on held-out photos
(preprocessed as the runtime does, batch 1), Spearman's rank correlation with fp32 per head: the
minimum over heads and the ``quality`` head's. Photos never seen by the calibration (anchor split).

Run: ``python benchmarks/int8_variants.py [--photos 20]``; writes ``benchmarks/results/int8_variants.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from quasar_bench.lscpu import isa_summary, lscpu
from quasar_bench.results import write_results

from quasar.eval.metrics import srcc
from quasar.io import read_rgb
from quasar.machine import machine_info, usable_cores
from quasar.paths import cache_dir
from quasar.photos import balanced, fetch_photos
from quasar.preprocess import preprocess, resize
from quasar.runtime.model import load_model_info
from quasar.shipped import shipped_model_path

HERE = Path(__file__).parent
H, W = 384, 512
STATIC = {"static pc 0.3": (True, 0.3), "static pt 0.3": (False, 0.3), "static pc 0.2": (True, 0.2),
          "static pc 0.15": (True, 0.15),
          "static pc 0": (True, 0.0)}


def session(path: str, threads: int, batch: int | None):
    import onnxruntime as ort

    from quasar.runtime.backends.ort import session_options

    fixed = None if batch is None else {"batch": batch, "height": H, "width": W}
    so = session_options("all", threads, overrides=fixed)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def make_variants(fp32: str, spec, workdir: Path) -> dict[str, str]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from quasar.export.default import default_pack_model
    from quasar.export.int8 import default_calibration_images, nodes_to_exclude, quantize_int8

    workdir.mkdir(parents=True, exist_ok=True)
    out = {"fp32": fp32, "default int8": default_pack_model("int8")}
    images = None
    for name, (per_channel, lead) in STATIC.items():
        path = workdir / (name.replace(" ", "_") + ".onnx")
        if not path.exists():
            images = images if images is not None else default_calibration_images()
            print(f"quantising {name}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_int8(fp32, str(path) + ".tmp", images, spec, per_channel=per_channel, leading_fraction=lead)
            os.replace(str(path) + ".tmp", path)
            print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        out[name] = str(path)
    path = workdir / "dynamic_pc_0.3.onnx"
    if not path.exists():
        print("quantising dynamic pc 0.3", file=sys.stderr, flush=True)
        quantize_dynamic(fp32, str(path) + ".tmp", per_channel=True, weight_type=QuantType.QInt8,
                         nodes_to_exclude=nodes_to_exclude(onnx.load(fp32), 0.3))
        os.replace(str(path) + ".tmp", path)
    out["dynamic pc 0.3"] = str(path)
    return out


def margins(path: str, threads: int, images: list[np.ndarray]) -> np.ndarray:
    s = session(path, threads, None)
    return np.concatenate([s.run(["margins"], {"images": im[None]})[0] for im in images])


SRCC_GOAL = 0.99  # per head, vs fp32 on held-out photos (issue 24)


def findings(rows: dict) -> str:
    """One paragraph from the numbers: which variants keep every head's SRCC at the goal, the fastest."""
    ok = {k: r for k, r in rows.items() if k != "fp32" and r.get("srcc_min", 0.0) >= SRCC_GOAL}
    low = [f"{k} ({r['srcc_min']:.3f}, {r['srcc_min_head']})" for k, r in rows.items()
           if k != "fp32" and r.get("srcc_min", 1.0) < SRCC_GOAL]
    text = f"Variants with every head's SRCC vs fp32 at least {SRCC_GOAL}: " + (", ".join(
        f"{k} (CPU time {r['speedup_cpu_b1']:.2f}x at batch 1, {r['speedup_cpu_b8']:.2f}x at batch 8)" for k, r in ok.items()) or "none")
    if ok:
        best = max(ok, key=lambda k: ok[k]["speedup_cpu_b8"])
        text += f"; the fastest at batch 8 is {best}"
    if low:
        text += f". Below the goal (lowest head): {', '.join(low)}"
    return text + ". One run of 20-odd photos on a shared machine: a lead, not a decision."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=8, help="batch-1 rounds (batch 8: half, at least 3)")
    ap.add_argument("--workdir", default=str(cache_dir() / "bench" / "int8_variants"))
    ap.add_argument("--out", default=str(HERE / "results" / "int8_variants"))
    args = ap.parse_args(argv)
    threads = usable_cores()
    fp32 = shipped_model_path()
    info = load_model_info(fp32)
    models = make_variants(fp32, info.spec, Path(args.workdir))

    held = balanced([p for p in fetch_photos() if p.split == "heldout"], args.photos)
    rgb = [read_rgb(p.path) for p in held]
    pre = [preprocess(im, info.spec) for im in rgb]
    ref = margins(fp32, threads, pre)
    acc = {}
    for name, path in models.items():
        if name == "fp32":
            continue
        m = margins(path, threads, pre)
        per_head = {h: srcc(m[:, k], ref[:, k]) for k, h in enumerate(info.heads)}
        worst = min(per_head, key=lambda h: per_head[h])
        acc[name] = {"srcc_min": per_head[worst], "srcc_min_head": worst, "srcc_quality": per_head.get("quality"),
                     "srcc_per_head": per_head, "max_abs_margin_diff": float(np.abs(m - ref).max())}

    pix = np.stack([resize(im, H, W, info.spec.interpolation, info.spec.resampler) for im in rgb[:8]])
    sess = {(name, b): session(path, threads, b) for name, path in models.items() for b in (1, 8)}
    for (_name, b), s in sess.items():  # warm-up
        s.run(None, {"images": pix[:b]})
    times: dict[tuple, list[float]] = {k: [] for k in sess}
    cpu: dict[tuple, list[float]] = {k: [] for k in sess}
    rounds8 = max(3, args.rounds * 3 // 4)
    for r in range(args.rounds):
        keys = list(sess) if r % 2 == 0 else list(sess)[::-1]
        for key in keys:
            if key[1] == 8 and r >= rounds8:
                continue
            t, c = time.perf_counter(), time.process_time()
            sess[key].run(None, {"images": pix[: key[1]]})
            times[key].append(time.perf_counter() - t)
            cpu[key].append(time.process_time() - c)
    med = {k: float(np.median(v) * 1000) for k, v in times.items()}
    med_cpu = {k: float(np.median(v) * 1000) for k, v in cpu.items()}
    rows = {}
    for name, path in models.items():
        rows[name] = {"b1_ms": med[(name, 1)], "b8_ms": med[(name, 8)],
                      "speedup_b1": med[("fp32", 1)] / med[(name, 1)], "speedup_b8": med[("fp32", 8)] / med[(name, 8)],
                      "b1_cpu_ms": med_cpu[(name, 1)], "b8_cpu_ms": med_cpu[(name, 8)],
                      "speedup_cpu_b1": med_cpu[("fp32", 1)] / med_cpu[(name, 1)],
                      "speedup_cpu_b8": med_cpu[("fp32", 8)] / med_cpu[(name, 8)],
                      "size_mb": os.path.getsize(path) / 1e6, **acc.get(name, {})}
    cpuinfo = lscpu()
    report = {"machine": machine_info(), "lscpu": cpuinfo, "isa": isa_summary(cpuinfo["flags"]), "threads": threads,
              "photos": len(held), "rounds": args.rounds, "rounds_b8": rounds8, "input": [H, W],
              "models": {k: Path(v).name for k, v in models.items()}, "results": rows, "findings": findings(rows)}
    m = report["machine"]
    lines = [f"# int8 variants of the default model: speed and SRCC vs fp32 ({H}x{W}, {threads} threads)", "",
             f"Machine: {cpuinfo['model_name']}, {m['cores']} usable cores, int8 tier {report['isa']} "
             f"(ISA {' '.join(m['isa'])}); onnxruntime {m['versions'].get('onnxruntime')}; {args.rounds} interleaved "
             f"rounds (batch 8: {rounds8}); SRCC on {len(held)} held-out photos. Shared, noisy machine: compare "
             "ratios within this run only.", "", report["findings"], "",
             "| model | b1 ms | b8 ms | speed-up b1 | speed-up b8 | CPU-time speed-up b1 | CPU-time speed-up b8 | "
             "SRCC min (head) | SRCC quality | size MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        a = (f"{r['srcc_min']:.3f} ({r['srcc_min_head']}) | {r['srcc_quality']:.3f}" if "srcc_min" in r
             else "1 | 1")
        lines.append(f"| {name} | {r['b1_ms']:.1f} | {r['b8_ms']:.1f} | {r['speedup_b1']:.2f}x | "
                     f"{r['speedup_b8']:.2f}x | {r['speedup_cpu_b1']:.2f}x | {r['speedup_cpu_b8']:.2f}x | {a} | "
                     f"{r['size_mb']:.1f} |")
    lines += ["", "Speed-up = fp32 time / model time, model only; pc = per-channel weight scales, pt = per-tensor; "
              "the number is the fraction of the backbone's weighted layers kept fp32."]
    write_results(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
