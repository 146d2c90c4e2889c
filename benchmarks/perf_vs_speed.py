"""Does ``quasar perf``'s Offline throughput agree with the speed benchmark's? Both measured in pairs, side by side.

    python benchmarks/perf_vs_speed.py [--precisions fp32,int8] [--pairs 8] [--duration 4] [--out DIR]

The same camera-size JPEGs as ``benchmarks/speed.py`` (:func:`quasar_bench.camera.generate`), the same
model files (:func:`quasar_bench.models.model_path`), and for each precision two rows:

* end to end: the speed benchmark's ``quasar`` row (``Scorer(model).score_iter(files)``, the runtime's
  default batch) against ``quasar perf``'s Offline test, end to end, at that batch;
* model only: its ``model_ort`` row at batch 8 against the Offline test, model only, batch 8.

Each side runs its own code: the speed benchmark's worker job (:func:`quasar_bench.worker.run_job`,
one timed pass over the 24 files after its warm-up) and ``quasar perf``'s LoadGen Offline test
(:class:`quasar.perf.run.Measurer`, warmed up once per row). They alternate in one process, pair after
pair, the order swapped every pair, so the two sides of a pair are measured seconds apart: on a
machine shared with other jobs, whose load swings over tens of seconds, separate processes minutes
apart disagreed by ±50 % (the first version of this script). The ratio perf / speed is taken per
pair; its median and quartiles are the answer. Writes ``perf_vs_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from quasar_bench import camera  # noqa: E402
from quasar_bench.models import model_path, snapshot_pack  # noqa: E402
from quasar_bench.results import write_results  # noqa: E402
from quasar_bench.worker import run_job  # noqa: E402

from quasar.machine import machine_info  # noqa: E402

MODEL_ONLY_BATCH = 8
TOLERANCE = 0.10


def perf_measurer(model: str, folder: str, mode: str, batch: int, duration: float, out: str):
    """``quasar perf``'s engine and measurer for one model, mode and batch, warmed up."""
    from quasar.perf import workload
    from quasar.perf.run import Config, Engine, Measurer, Options
    from quasar.perf.scenarios import Settings
    from quasar.perf.targets import resolve_targets

    opts = Options(models=[model], images=folder, modes=[mode], batches=[batch], scenarios=["offline"],
                   settings=Settings(duration_s=duration), out=out, plots="none")
    (target,) = resolve_targets(opts.models, opts.backends, None)
    engine = Engine(opts, workload.from_folder(folder), lambda m: print(f"  {m}", file=sys.stderr))
    cfg = Config(target, mode, batch)
    engine.estimate(cfg)
    return engine, Measurer(opts, engine, engine.log), cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precisions", default="fp32,int8", help="comma-separated model precisions")
    ap.add_argument("--pairs", type=int, default=8, help="pairs (speed row, perf Offline test) per row")
    ap.add_argument("--duration", type=float, default=4.0, help="quasar perf: seconds per LoadGen Offline test")
    ap.add_argument("--out", default=str(HERE / "results"), help="where perf_vs_speed.{json,md} go")
    ap.add_argument("--cache", default=None, help="[default: the speed benchmark's cache]")
    args = ap.parse_args(argv)
    from quasar.paths import cache_dir
    from quasar.runtime import Scorer

    cache = Path(args.cache) if args.cache else cache_dir() / "bench"
    files = camera.generate("camera", cache / "images", 24)
    folder = os.path.dirname(files[0])
    pack, pack_file = snapshot_pack(cache)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    models = {p: model_path(p, cache, pack) for p in precisions}
    with Scorer(models[precisions[0]]) as s:
        e2e_batch = s.batch_size  # the runtime's default, which the speed benchmark's `quasar` row uses
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="perf-vs-speed-") as tmp:
        for prec in precisions:
            for mode, batch, job in (
                    ("end-to-end", e2e_batch, {"kind": "quasar", "files": files, "reps": 1, "pack": pack_file,
                                               "model": models[prec]}),
                    ("model-only", MODEL_ONLY_BATCH, {"kind": "model_ort", "files": files, "reps": 1,
                                                      "batch_size": MODEL_ONLY_BATCH, "pack": pack_file,
                                                      "model": models[prec]})):
                engine, meas, cfg = perf_measurer(models[prec], folder, mode, batch, args.duration, tmp)
                speed, perf, validity = [], [], []
                try:
                    for k in range(args.pairs):
                        for side in ("speed", "perf") if k % 2 == 0 else ("perf", "speed"):
                            if side == "speed":
                                raw = run_job(dict(job))
                                speed.append(raw["n_images"] / raw["rep_seconds"][0])
                            else:
                                rec = meas.measure("offline", cfg, k)
                                perf.append(rec["loadgen"]["samples_per_s"])
                                validity.append(rec["loadgen"]["validity"])
                        print(f"{prec} {mode} batch {batch} pair {k + 1}: speed {speed[-1]:.2f}, perf {perf[-1]:.2f} "
                              f"images/s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                finally:
                    engine.close()
                ratios = np.array(perf) / np.array(speed)
                q1, med, q3 = (float(x) for x in np.percentile(ratios, [25, 50, 75]))
                rows.append({"precision": prec, "mode": mode, "batch": batch, "speed_images_per_s": speed,
                             "perf_offline_samples_per_s": perf, "ratio_per_pair": [round(float(r), 4) for r in ratios],
                             "ratio_median": med, "ratio_q1": q1, "ratio_q3": q3,
                             "loadgen_valid": f"{validity.count('VALID')}/{len(validity)}",
                             "within_tolerance": abs(med - 1) <= TOLERANCE})
    rep = {"benchmark": "perf-vs-speed", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "machine": machine_info(), "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
           "pairs": args.pairs, "duration_s": args.duration, "images": {"folder": folder, "count": len(files)},
           "models": models, "tolerance": TOLERANCE, "rows": rows, "total_seconds": round(time.perf_counter() - t0)}
    write_results(os.path.join(args.out, "perf_vs_speed"), rep, markdown(rep))
    return 0


def markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = ["# quasar perf Offline vs the speed benchmark, in pairs", "",
             f"{rep['created']}; {m['cpu']}, {m['cores']} cores, ISA {', '.join(m['isa'])}; 1-minute load average "
             f"{rep['load_average']['start']} -> {rep['load_average']['end']} (above {m['cores']}: the machine was "
             f"shared). {rep['pairs']} pairs per row, measured back to back in one process, order swapped each pair; "
             f"{rep['images']['count']} camera JPEGs; quasar perf Offline tests of at least {rep['duration_s']:g} s; "
             f"speed rows: one timed pass over the files after their warm-up.", "",
             "| precision | mode | batch | speed images/s, median (min–max) | perf Offline samples/s, median (min–max) | "
             "perf / speed per pair: median [quartiles] | within ±10 % | LoadGen VALID |",
             "|---|---|---|---|---|---|---|---|"]

    def med(v):
        return f"{np.median(v):.2f} ({min(v):.2f}–{max(v):.2f})"

    for r in rep["rows"]:
        lines.append(f"| {r['precision']} | {r['mode']} | {r['batch']} | {med(r['speed_images_per_s'])} | "
                     f"{med(r['perf_offline_samples_per_s'])} | {r['ratio_median']:.3f} [{r['ratio_q1']:.3f}, "
                     f"{r['ratio_q3']:.3f}] | {'yes' if r['within_tolerance'] else 'no'} | {r['loadgen_valid']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
