"""Cost of repeated calls: one Scorer called once per 32 paths vs one long stream, side by side.

    python benchmarks/scale_overhead.py [--images N] [--rounds R] [--chunk 32] [--quick]

Modes, interleaved round by round on the same files with the same Scorer (the model loaded once):

* ``stream``: ``scorer.score(all paths)``, one call;
* ``per-call``: ``scorer.score(paths[i:i+32])`` in a loop: the decode workers and the session are
  kept between calls (quasar.runtime.pipeline), what Ray Data's map_batches or a server pays;
* ``per-call, fresh workers``: the same loop, but each call builds its own Pipeline (a new decode
  thread pool, started and joined per call), which is what every call cost before the workers were
  kept; shown for reference.

Reports img/s per mode and round, the per-round ratio to the stream, and the median ratio; scores
must be identical across modes. Writes ``results/scale_overhead.{json,md}``. About 4 minutes on 2
cores; on a shared machine read the medians and the load average recorded with each run.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quasar_bench.results import write_results

from quasar.machine import machine_info

PHOTOS = os.path.expanduser("~/.cache/quasar/photos")


def photo_paths(n: int) -> list[str]:
    paths = sorted(glob.glob(os.path.join(PHOTOS, "**", "*.png"), recursive=True))
    if not paths:
        raise SystemExit(f"no photos under {PHOTOS}: run `python -m quasar.photos` first")
    return (paths * (n // len(paths) + 1))[:n]


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def run_mode(scorer, mode: str, paths: list[str], chunk: int):
    from quasar.runtime.pipeline import Pipeline

    t0, c0 = time.perf_counter(), cpu_s()
    if mode == "stream":
        recs = scorer.score(paths)
    else:
        recs = []
        for i in range(0, len(paths), chunk):
            part = paths[i:i + chunk]
            if mode == "per-call":
                recs += scorer.score(part)
            else:  # a new pipeline, hence a new decode pool, per call (the old behaviour)
                pipe = Pipeline(scorer.preparer.with_warning, scorer.backend, batch_size=scorer.batch_size,
                                workers=scorer.workers)
                try:
                    from quasar.runtime.sources import iter_items

                    recs += [scorer._record(r) for r in pipe.run(iter_items(part))]
                finally:
                    pipe.close()
    dt, dc = time.perf_counter() - t0, cpu_s() - c0
    return recs, dt, dc


MODES = ("stream", "per-call", "per-call, fresh workers")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="64 images, 1 round (smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.rounds = 64, 1
    from quasar.runtime import Scorer

    paths = photo_paths(args.images)
    rows = []
    with Scorer() as scorer:
        scorer.score(paths[:8])  # warm-up: session, first decode
        reference = None
        for rnd in range(args.rounds):
            order = MODES if rnd % 2 == 0 else MODES[::-1]  # alternate the order: drift hits all modes alike
            for mode in order:
                recs, dt, dc = run_mode(scorer, mode, paths, args.chunk)
                scores = [r.scores for r in recs]
                if reference is None:
                    reference = scores
                rows.append({"round": rnd, "mode": mode, "seconds": dt, "img_per_s": len(paths) / dt,
                             "cpu_ms_per_img": 1000 * dc / len(paths), "load_avg": os.getloadavg()[0],
                             "identical_scores": scores == reference})
                print(f"round {rnd} {mode:24s} {len(paths) / dt:6.2f} img/s  cpu {1000 * dc / len(paths):5.1f} ms/img"
                      f"  load {os.getloadavg()[0]:.1f}", flush=True)
        info = {"model": os.path.basename(scorer.model_path), "batch_size": scorer.batch_size,
                "workers": scorer.workers, "backend": scorer.backend.name}
    ratios = {m: [] for m in MODES[1:]}
    for rnd in range(args.rounds):
        base = next(r for r in rows if r["round"] == rnd and r["mode"] == "stream")["img_per_s"]
        for m in MODES[1:]:
            ratios[m].append(next(r for r in rows if r["round"] == rnd and r["mode"] == m)["img_per_s"] / base)
    summary = {m: {"median_ratio_to_stream": statistics.median(v), "ratios": v} for m, v in ratios.items()}
    result = {"images": len(paths), "chunk": args.chunk, "rounds": args.rounds, "scorer": info, "runs": rows,
              "summary": summary, "all_scores_identical": all(r["identical_scores"] for r in rows),
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    md = [f"# Repeated calls vs one stream ({len(paths)} photos, calls of {args.chunk} paths)", "",
          f"{result['machine']['cpu']}, {result['machine']['cores']} cores; {info}; {result['date']}", "",
          "| mode | " + " | ".join(f"round {r} img/s" for r in range(args.rounds)) + " | median ratio to stream |",
          "|---|" + "---|" * (args.rounds + 1)]
    for m in MODES:
        vals = [next(r for r in rows if r["round"] == k and r["mode"] == m)["img_per_s"] for k in range(args.rounds)]
        ratio = "1.00" if m == "stream" else f"{summary[m]['median_ratio_to_stream']:.2f}"
        md.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {ratio} |")
    md += ["", f"scores identical across modes: {result['all_scores_identical']}"]
    write_results(os.path.join(args.out, "scale_overhead"), result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
