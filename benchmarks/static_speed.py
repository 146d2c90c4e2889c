"""Dynamic vs static graphs in ONNX Runtime (CPU), fp32 vs int8, side by side in one run on the same pixels.

Models (the default pack, all at 384x512 pixels: the held-out photos stretched to 384x512, which the
dynamic graphs take as they are):

* ``dynamic fp32``: the shipped model (dynamic batch, H, W); ``dynamic int8``: the cached default int8;
* ``static fp32`` (``--static 384x512``, ReLU6 as Clip, the default), ``static fp32 relu``
  (``--clip-form relu``: ReLU6 as Relu - Relu, the form OpenCV 4.6 loads), ``static int8``; each also
  as a batch-8 graph for the throughput rows, and ``static fp32 .ort`` (``quasar export ort``).

Latency: batch 1, p50/p95 over interleaved rounds (every model once per round, so load from other
processes hits all alike). Throughput: batch 8, images/s from the median batch time. Sessions use
the runtime's settings (``OrtBackend``: graph optimisation ``all``, intra-op threads = usable cores, no
spinning). Ratios within this run are what compare; absolute times depend on the machine's load.

Run: ``python benchmarks/static_speed.py [--rounds 30]``; writes ``benchmarks/results/static_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from quasar_bench.results import write_results

from quasar.centroids.pack import CentroidPack
from quasar.export.onnx_export import export_onnx, static_spec_for
from quasar.export.ort_format import export_ort
from quasar.io import read_rgb
from quasar.machine import machine_info, usable_cores
from quasar.paths import cache_dir
from quasar.photos import balanced, fetch_photos
from quasar.preprocess import preprocess
from quasar.shipped import shipped_model_path

HERE = Path(__file__).parent
H, W, BATCH = 384, 512, 8


def session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def models(workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(batch-1 models, batch-8 models): name -> path, exporting what is missing into ``workdir``."""
    from quasar.export.default import default_pack_model

    workdir.mkdir(parents=True, exist_ok=True)
    tag = CentroidPack.load("default").content_hash[7:19]

    def static(name: str, batch: int, **kw) -> str:
        path = workdir / f"{tag}-{name}-b{batch}.onnx"
        if not path.exists():
            print(f"exporting {path.name}", file=sys.stderr, flush=True)
            export_onnx(None, "default", path, static=(H, W), batch=batch, **kw)
        return str(path)

    one = {"dynamic fp32": shipped_model_path(), "dynamic int8": default_pack_model("int8"),
           "static fp32 relu": static("fp32relu", 1, clip_form="relu"), "static fp32": static("fp32clip", 1),
           "static int8": static("int8", 1, precision="int8")}
    ort_path = str(workdir / f"{tag}-fp32clip-b1.ort")
    if not os.path.exists(ort_path):
        export_ort(one["static fp32"], ort_path)
    one["static fp32 .ort"] = ort_path
    many = {"dynamic fp32": one["dynamic fp32"], "dynamic int8": one["dynamic int8"],
            "static fp32 relu": static("fp32relu", BATCH, clip_form="relu"), "static fp32": static("fp32clip", BATCH),
            "static int8": static("int8", BATCH, precision="int8")}
    return one, many


def interleaved(sessions: dict, inputs: list[np.ndarray], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():  # warm-up
        for x in inputs[:2]:
            s.run(None, {"images": x})
    for r in range(rounds):
        x = inputs[r % len(inputs)]
        for name, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"images": x})
            times[name].append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--workdir", default=str(cache_dir() / "bench" / "static"))
    ap.add_argument("--out", default=str(HERE / "results" / "static_speed"))
    args = ap.parse_args(argv)
    threads = usable_cores()
    one, many = models(Path(args.workdir))
    spec = static_spec_for(CentroidPack.load("default").preprocess, H, W, "stretch")
    photos = balanced([p for p in fetch_photos() if p.split == "heldout"], BATCH)
    pix = np.stack([preprocess(read_rgb(p.path), spec) for p in photos])
    singles = [pix[i : i + 1] for i in range(len(pix))]

    # parity on these pixels, against dynamic fp32
    s1 = {k: session(p, threads) for k, p in one.items()}
    ref = np.concatenate([s1["dynamic fp32"].run(None, {"images": x})[0] for x in singles])
    parity = {}
    for k, s in s1.items():
        got = np.concatenate([s.run(None, {"images": x})[0] for x in singles])
        parity[k] = float(np.abs(got - ref).max())

    lat = interleaved(s1, singles, args.rounds)
    del s1
    s8 = {k: session(p, threads) for k, p in many.items()}
    thr = interleaved(s8, [pix], max(5, args.rounds // 3))
    del s8

    rows = {}
    for k in one:
        a = np.array(lat[k]) * 1000
        rows[k] = {"p50_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
                   "size_mb": os.path.getsize(one[k]) / 1e6, "max_abs_score_diff_vs_dynamic_fp32": parity[k]}
        if k in thr:
            rows[k]["batch8_images_per_s"] = float(BATCH / np.median(thr[k]))
    base = rows["dynamic fp32"]["p50_ms"]
    for k in rows:
        rows[k]["p50_vs_dynamic_fp32"] = rows[k]["p50_ms"] / base
    report = {"machine": machine_info(), "threads": threads, "rounds": args.rounds, "input": [H, W],
              "photos": len(photos), "models": {k: os.path.basename(v) for k, v in one.items()}, "results": rows}
    m = report["machine"]
    lines = [f"# Dynamic vs static graphs, ONNX Runtime CPU ({H}x{W}, {threads} threads)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa'])}; onnxruntime "
             f"{m['versions'].get('onnxruntime')}; {args.rounds} interleaved rounds.", "",
             "| model | batch-1 p50 ms | p95 ms | p50 / dynamic fp32 | batch-8 images/s | size MB | max score diff vs dynamic fp32 |",
             "|---|---|---|---|---|---|---|"]
    for k, r in rows.items():
        thr_s = f"{r['batch8_images_per_s']:.1f}" if "batch8_images_per_s" in r else "-"
        lines.append(f"| {k} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p50_vs_dynamic_fp32']:.2f} | {thr_s} | "
                     f"{r['size_mb']:.1f} | {r['max_abs_score_diff_vs_dynamic_fp32']:.1e} |")
    write_results(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
