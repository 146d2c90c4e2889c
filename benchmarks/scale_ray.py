"""Ray Data batch scoring vs the local runtime on the same files and cores, side by side.

    python benchmarks/scale_ray.py [--images N] [--rounds R] [--quick]

One local Ray cluster (all cores) is started first; its start-up is reported, not counted. Then,
round by round, alternating the order:

* ``local``: ``Scorer()`` (model load included) + ``score(paths)``: what ``quasar score`` does;
* ``ray 1 actor x N cpus``: ``score_dataset`` with one actor holding all cores (its start-up and
  model load included: a job pays them once);
* ``ray N actors x 1 cpu``: the same with one single-threaded actor per core;
* ``ray no-op``: the same rows through a map_batches that scores nothing: Ray Data's own cost per
  row (the ceiling the engine puts on throughput, whatever the model).

Plus, for the cost model in docs/scaling.md, the two stages measured alone in this process:
decode+preprocess (the Preparer on ``workers`` threads) and the model (the backend on prepared
batches), as core-seconds per image. Writes ``results/scale_ray.{json,md}``; ~6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quasar_bench.results import write_results
from scale_overhead import cpu_s, photo_paths

from quasar.machine import machine_info, usable_cores


def run_local(paths):
    from quasar.runtime import Scorer

    with Scorer() as s:
        return {r.source: r.scores.get("quality") for r in s.score(paths)}


def run_ray(paths, actors: int, cpus: int):
    import ray

    from quasar.scale.raydata import score_dataset

    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(1, len(paths) // 32))
    out, t0 = {}, time.perf_counter()
    for b in score_dataset(ds, actors=actors, actor_cpus=cpus, batch_size=32).iter_batches(batch_size=None):
        if not out:
            FIRST_ROW.append(time.perf_counter() - t0)
        out.update(zip(b["path"], b["quality"], strict=True))
    return out


FIRST_ROW: list[float] = []  # seconds from a Ray job's start to its first scored rows (actor start, model load)


def _noop(batch):
    return {"path": batch["path"], "quality": np.zeros(len(batch["path"]))}


def run_noop(paths):
    import ray

    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(1, len(paths) // 32))
    return {p: q for b in ds.map_batches(_noop, batch_size=32).iter_batches(batch_size=None)
            for p, q in zip(b["path"], b["quality"], strict=True)}


def stage_costs(paths: list[str]) -> dict:
    """Core-seconds per image of decode+preprocess and of the model, each measured alone."""
    from quasar.runtime import Scorer

    with Scorer() as s:
        from quasar.runtime.sources import iter_items

        items = list(iter_items(paths))
        t0, c0 = time.perf_counter(), cpu_s()
        with ThreadPoolExecutor(s.workers) as pool:
            arrays = list(pool.map(s.preparer, items))
        decode_wall, decode_cpu = time.perf_counter() - t0, cpu_s() - c0
        by_shape: dict = {}
        for a in arrays:
            by_shape.setdefault(a.shape, []).append(a)
        batches = [np.stack(v[i:i + s.batch_size]) for v in by_shape.values() for i in range(0, len(v), s.batch_size)]
        s.backend.run(batches[0])
        t0, c0 = time.perf_counter(), cpu_s()
        for b in batches:
            s.backend.run(b)
        model_wall, model_cpu = time.perf_counter() - t0, cpu_s() - c0
    n = len(paths)
    return {"images": n, "decode_img_per_s": n / decode_wall, "decode_core_ms_per_img": 1000 * decode_cpu / n,
            "model_img_per_s": n / model_wall, "model_core_ms_per_img": 1000 * model_cpu / n,
            "decode_workers": s.workers, "batch_size": s.batch_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=448)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.rounds = 48, 1
    paths = photo_paths(args.images)
    cores = usable_cores()
    import ray

    from quasar.scale.cluster import connect, quiet_data

    t0 = time.perf_counter()
    connect(num_cpus=cores)
    quiet_data()
    ray_start = time.perf_counter() - t0
    modes = {"local": run_local,
             f"ray 1 actor x {cores} cpus": lambda p: run_ray(p, 1, cores),
             f"ray {cores} actors x 1 cpu": lambda p: run_ray(p, cores, 1),
             "ray no-op (engine only)": run_noop}
    rows, reference = [], None
    try:
        for rnd in range(args.rounds):
            names = list(modes) if rnd % 2 == 0 else list(modes)[::-1]
            for name in names:
                t = time.perf_counter()
                got = modes[name](paths)
                dt = time.perf_counter() - t
                if name == "local":
                    reference = got
                first = FIRST_ROW.pop() if FIRST_ROW else None
                rows.append({"round": rnd, "mode": name, "seconds": dt, "img_per_s": len(paths) / dt,
                             "first_rows_s": first, "load_avg": os.getloadavg()[0], "rows": len(got)})
                print(f"round {rnd} {name:26s} {len(paths) / dt:6.2f} img/s ({dt:.1f} s)  load {os.getloadavg()[0]:.1f}",
                      flush=True)
        check = run_ray(paths[:32], cores, 1)  # scores from Ray equal local ones
        FIRST_ROW.clear()
        same = all(abs(check[p] - reference[p]) <= 1e-5 for p in check)
    finally:
        ray.shutdown()
    stages = stage_costs(paths[: min(len(paths), 96)])
    summary = {}
    for name in modes:
        ratios = []
        for rnd in range(args.rounds):
            base = next(r for r in rows if r["round"] == rnd and r["mode"] == "local")["img_per_s"]
            ratios.append(next(r for r in rows if r["round"] == rnd and r["mode"] == name)["img_per_s"] / base)
        summary[name] = {"median_ratio_to_local": statistics.median(ratios), "ratios": ratios,
                         "median_img_per_s": statistics.median(r["img_per_s"] for r in rows if r["mode"] == name)}
    result = {"images": len(paths), "rounds": args.rounds, "ray_start_s": ray_start, "runs": rows, "summary": summary,
              "ray_scores_equal_local": same, "stages": stages, "machine": machine_info(),
              "ray_version": ray.__version__, "date": time.strftime("%Y-%m-%d")}
    m = result["machine"]
    md = [f"# Ray Data vs local scoring ({len(paths)} photos, {args.rounds} rounds)", "",
          f"{m['cpu']}, {m['cores']} cores; ray {ray.__version__}; {result['date']}; "
          f"Ray cluster start {ray_start:.1f} s (not counted)", "",
          "| mode | median img/s | median ratio to local | per round | first rows after |", "|---|---|---|---|---|"]
    for name, v in summary.items():
        firsts = [r["first_rows_s"] for r in rows if r["mode"] == name and r["first_rows_s"] is not None]
        first = f"{statistics.median(firsts):.1f} s" if firsts else "-"
        md.append(f"| {name} | {v['median_img_per_s']:.2f} | {v['median_ratio_to_local']:.2f} | "
                  + ", ".join(f"{x:.2f}" for x in v["ratios"]) + f" | {first} |")
    md += ["", f"Ray scores equal local scores (32 photos, 1e-5): {same}", "",
           f"Stages alone ({stages['images']} photos): decode+preprocess {stages['decode_img_per_s']:.1f} img/s on "
           f"{stages['decode_workers']} threads ({stages['decode_core_ms_per_img']:.0f} core-ms/img); model "
           f"{stages['model_img_per_s']:.1f} img/s ({stages['model_core_ms_per_img']:.0f} core-ms/img, batch "
           f"{stages['batch_size']})."]
    write_results(os.path.join(args.out, "scale_ray"), result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
