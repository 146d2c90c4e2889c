"""Does ``quasar perf``'s Offline throughput agree with the speed benchmark's? Both measured side by side.

    python benchmarks/perf_vs_speed.py [--precisions fp32,int8] [--reps 3] [--duration 10] [--out DIR]

The same camera-size JPEGs as ``benchmarks/speed.py`` (:func:`quasar_bench.camera.generate`), the same
model files (:func:`quasar_bench.models.model_path`), and for each precision two pairs of rows:

* end to end: the speed benchmark's ``quasar`` row (``Scorer(model).score_iter(files)``, the runtime's
  default batch) against ``quasar perf --scenario offline --mode end-to-end`` at that batch;
* model only: its ``model_ort`` row at batch 8 against ``quasar perf --scenario offline --mode model-only --batch 8``.

Every measurement is a fresh process (the speed benchmark's worker, or ``quasar perf``), and the four
run in an order rotated each repetition, so a busy spell of a shared machine hits both sides of a
pair alike. The ratio perf / speed is taken per repetition; its median and spread are the answer.
Writes ``perf_vs_speed.json`` and ``perf_vs_speed.md`` (default: ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from quasar_bench import camera, report  # noqa: E402
from quasar_bench.models import model_path, snapshot_pack  # noqa: E402
from quasar_bench.speed import run_worker, worker_env  # noqa: E402

from quasar.machine import machine_info, usable_cores  # noqa: E402

MODEL_ONLY_BATCH = 8
TOLERANCE = 0.10


def perf_offline(model: str, images: str, mode: str, batch: int, duration: float, tmp: str, name: str) -> dict:
    """``quasar perf`` Offline for one model/mode/batch in its own process; its report's run record."""
    out = os.path.join(tmp, name)
    cmd = [sys.executable, "-m", "quasar.cli", "perf", "--model", model, "--images", images, "--scenario", "offline",
           "--mode", mode, "--batch", str(batch), "--duration", str(duration), "--plots", "none", "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(), timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"quasar perf failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    with open(os.path.join(out, "report.json")) as f:
        (run,) = json.load(f)["runs"]
    return run


def speed_row(job: dict, tmp: str, name: str) -> dict:
    return report.summarize_row(run_worker(job, tmp, name))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precisions", default="fp32,int8", help="comma-separated model precisions")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (each pair measured once per repetition)")
    ap.add_argument("--duration", type=float, default=10.0, help="quasar perf: seconds per LoadGen test")
    ap.add_argument("--speed-reps", type=int, default=3, help="speed benchmark: timed passes over the files per row")
    ap.add_argument("--out", default=str(HERE / "results"), help="where perf_vs_speed.{json,md} go")
    ap.add_argument("--cache", default=None, help="[default: the speed benchmark's cache]")
    args = ap.parse_args(argv)
    from quasar.paths import cache_dir

    cache = Path(args.cache) if args.cache else cache_dir() / "bench"
    files = camera.generate("camera", cache / "images", 24)
    folder = os.path.dirname(files[0])
    pack, pack_file = snapshot_pack(cache)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    models = {p: model_path(p, cache, pack) for p in precisions}
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    from quasar.runtime import Scorer

    with Scorer(models[precisions[0]]) as s:
        e2e_batch = s.batch_size  # the runtime's default, which the speed benchmark's `quasar` row uses

    pairs = []
    for p in precisions:
        pairs.append((p, "end-to-end", e2e_batch,
                      {"kind": "quasar", "files": files, "reps": args.speed_reps, "warmup": 3, "pack": pack_file,
                       "model": models[p]}))
        pairs.append((p, "model-only", MODEL_ONLY_BATCH,
                      {"kind": "model_ort", "files": files, "reps": args.speed_reps, "batch_size": MODEL_ONLY_BATCH,
                       "pack": pack_file, "model": models[p]}))
    jobs = [(i, side) for i in range(len(pairs)) for side in ("speed", "perf")]
    results: dict[tuple[int, str], list[float]] = {k: [] for k in jobs}
    validity: dict[int, list[str]] = {i: [] for i in range(len(pairs))}
    with tempfile.TemporaryDirectory(prefix="perf-vs-speed-") as tmp:
        for rep in range(args.reps):
            k = rep % len(jobs)
            for i, side in jobs[k:] + jobs[:k]:
                prec, mode, batch, job = pairs[i]
                name = f"r{rep}-{prec}-{mode}-{side}"
                t = time.perf_counter()
                if side == "speed":
                    v = speed_row(job, tmp, name)["images_per_s"]["median"]
                else:
                    run = perf_offline(models[prec], folder, mode, batch, args.duration, tmp, name)
                    v = run["loadgen"]["samples_per_s"]
                    validity[i].append(run["loadgen"]["validity"])
                results[(i, side)].append(v)
                print(f"rep {rep + 1} {prec} {mode} batch {batch} {side}: {v:.2f} images/s "
                      f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    rows = []
    for i, (prec, mode, batch, _) in enumerate(pairs):
        sp, pf = results[(i, "speed")], results[(i, "perf")]
        ratios = [b / a for a, b in zip(sp, pf, strict=True)]
        med = sorted(ratios)[len(ratios) // 2]
        rows.append({"precision": prec, "mode": mode, "batch": batch, "speed_images_per_s": sp,
                     "perf_offline_samples_per_s": pf, "ratio_per_rep": ratios, "ratio_median": med,
                     "ratio_min": min(ratios), "ratio_max": max(ratios), "loadgen_validity": validity[i],
                     "within_tolerance": abs(med - 1) <= TOLERANCE})
    rep = {"benchmark": "perf-vs-speed", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "machine": machine_info(), "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
           "reps": args.reps, "duration_s": args.duration, "images": {"folder": folder, "count": len(files)},
           "models": models, "tolerance": TOLERANCE, "rows": rows, "total_seconds": round(time.perf_counter() - t0)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "perf_vs_speed.json"), "w") as f:
        json.dump(rep, f, indent=1)
    with open(os.path.join(args.out, "perf_vs_speed.md"), "w") as f:
        f.write(markdown(rep))
    print(markdown(rep))
    return 0


def markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = ["# quasar perf Offline vs the speed benchmark, side by side", "",
             f"{rep['created']}; {m['cpu']}, {m['cores']} cores ({usable_cores()} usable), ISA {', '.join(m['isa'])}; "
             f"1-minute load average {rep['load_average']['start']} -> {rep['load_average']['end']} "
             f"(above {m['cores']}: the machine was shared). {rep['reps']} repetitions, order rotated each; "
             f"{rep['images']['count']} camera JPEGs; quasar perf Offline tests of at least {rep['duration_s']:g} s.", "",
             "| precision | mode | batch | speed benchmark images/s | quasar perf Offline samples/s | "
             "perf / speed, median (min–max) | within ±10 % | LoadGen |", "|---|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        sp = ", ".join(f"{v:.2f}" for v in r["speed_images_per_s"])
        pf = ", ".join(f"{v:.2f}" for v in r["perf_offline_samples_per_s"])
        lines.append(f"| {r['precision']} | {r['mode']} | {r['batch']} | {sp} | {pf} | {r['ratio_median']:.3f} "
                     f"({r['ratio_min']:.3f}–{r['ratio_max']:.3f}) | {'yes' if r['within_tolerance'] else 'no'} | "
                     f"{', '.join(r['loadgen_validity'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
