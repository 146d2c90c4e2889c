"""The CPU speed benchmark: eager PyTorch as users write it vs the QUASAR engine, side by side.

One run, the same photos, two image sets (camera-size 12 MP / 5 MP JPEGs and 1 MP JPEGs), with

  (a) the eager pipeline users write today (PIL + torchvision + eager PyTorch, same model, same
      centroids, same resize policy), one image at a time and batched (:mod:`quasar_bench.eager`);
  (b) the QUASAR engine end to end, files -> scores, via ``quasar.runtime.Scorer`` with ONNX Runtime
      fp32 and int8 models (the Scorer at its default batch 4; model-only rows at batch 8, and batch 1 for single-image latency);
  (c) model-only throughput of ORT fp32, ORT int8 and torch eager on preprocessed uint8 batches;

plus physical limits (FLOPs vs GEMM peak, JPEG decode rate) and SRCC agreement of (b) with (a).
Every configuration runs in its own subprocess (:mod:`quasar_bench.worker`). Results go to
``speed.json`` and ``speed.md`` (:mod:`quasar_bench.report`).

Entry points: ``python benchmarks/speed.py`` and ``quasar bench``; both call :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from quasar.helpfmt import add_workload_options
from quasar.machine import machine_info, usable_cores
from quasar_bench import camera, report
from quasar_bench.models import ModelUnavailable, model_path, snapshot_pack

DEFAULT_IMAGES = 24
QUICK_IMAGES = 4
DEFAULT_REPS = 3
WORKER_TIMEOUT_S = 600


@dataclass(frozen=True)
class Config:
    """One row of the report: a worker job kind with its parameters."""

    key: str
    kind: str
    label: str
    precision: str | None = None
    batch_size: int | None = None
    extra: dict = field(default_factory=dict)


def set_configs(cores: int) -> list[Config]:
    w = min(2, cores)
    return [
        Config("eager_single", "eager_single", "(a) eager PyTorch, one image at a time"),
        Config("eager_batched", "eager_batched", "(a) eager PyTorch, batch 8 (same-shape buckets)", batch_size=8),
        Config("eager_dataloader", "eager_dataloader", f"(a) eager PyTorch, batch 8, DataLoader {w} workers",
               batch_size=8, extra={"workers": w}),
        Config("quasar_fp32", "quasar", "(b) QUASAR Scorer, ORT fp32, batch 4 (its default)", "fp32"),
        Config("quasar_int8", "quasar", "(b) QUASAR Scorer, ORT int8, batch 4 (its default)", "int8"),
        Config("quasar_fp32_b1", "quasar_latency", "(b) QUASAR Scorer, ORT fp32, batch 1 (one call per image)", "fp32"),
        Config("quasar_int8_b1", "quasar_latency", "(b) QUASAR Scorer, ORT int8, batch 1 (one call per image)", "int8"),
    ]


MODEL_CONFIGS = [
    Config("torch_b8", "model_torch", "(c) torch eager fp32, batch 8", batch_size=8),
    Config("ort_fp32_b8", "model_ort", "(c) ORT fp32, batch 8", "fp32", 8),
    Config("ort_int8_b8", "model_ort", "(c) ORT int8, batch 8", "int8", 8),
    Config("torch_b1", "model_torch", "(c) torch eager fp32, batch 1", batch_size=1),
    Config("ort_fp32_b1", "model_ort", "(c) ORT fp32, batch 1", "fp32", 1),
    Config("ort_int8_b1", "model_ort", "(c) ORT int8, batch 1", "int8", 1),
]

NOTES = [
    "(a) decodes with PIL at full resolution (`Image.open`, `ImageOps.exif_transpose`, `convert('RGB')`), "
    "resizes with torchvision `Resize(bicubic, antialias=True)`, `ToTensor`, `Normalize`, and runs the encoder "
    "and a torch centroid head eagerly under `torch.inference_mode()`, torch's default intra-op threads. "
    "Batched variants group images of equal preprocessed shape (the runtime's rule), 8 per batch.",
    "(b) is `quasar.runtime.Scorer` with its defaults: OpenCV decode with reduced-size JPEG decoding, "
    "INTER_AREA resize, one decode thread per core, ONNX Runtime's default intra-op threads; files -> scores. "
    "Batch 1 rows make one `score(path)` call per image (an application scoring single uploads).",
    "(c) runs the model alone on uint8 batches the runtime preprocessed from the camera set.",
    "Resolution policy everywhere: native, long side 512, sides multiples of 32: every image here becomes "
    "384x512 or 512x384.",
    "Latency percentiles are per image for one-at-a-time rows and per batch for model-only batch-1 rows; "
    "ratios (×) are against (a) one-at-a-time on the same set; targets use medians.",
]


def job_list(sets: dict[str, list[str]], models: dict[str, str], reps: int, quick: bool, cores: int,
             pack: str = "default") -> list[tuple[str, str, Config | None, dict]]:
    """(row name, set, config, worker job) for every configuration, in run order; ``pack``: the pack file."""
    jobs = []
    for s, files in sets.items():
        for c in set_configs(cores):
            job = {"kind": c.kind, "files": files, "reps": reps, "warmup": 3, "pack": pack, **c.extra}
            if c.batch_size:
                job["batch_size"] = c.batch_size
            if c.precision:
                job["model"] = models.get(c.precision)
            jobs.append((f"{s}/{c.key}", s, c, job))
    model_files = sets.get("camera") or next(iter(sets.values()))
    for c in MODEL_CONFIGS:
        # Batch 1 measures latency: 8 images are plenty, and torch eager is slow.
        files = model_files[:8] if c.batch_size == 1 else model_files
        job = {"kind": c.kind, "files": files, "reps": reps, "batch_size": c.batch_size, "pack": pack}
        if c.precision:
            job["model"] = models.get(c.precision)
        jobs.append((f"model/{c.key}", "model", c, job))
    if "fp32" in models:
        jobs.append(("parity", "parity", None, {"kind": "parity", "files": [f for fs in sets.values() for f in fs],
                                                "model": models["fp32"], "model_int8": models.get("int8")}))
    jobs.append(("limits", "limits", None, {"kind": "limits", "files": model_files, "quick": quick, "pack": pack}))
    return jobs


def worker_env() -> dict[str, str]:
    """The parent's environment, with this checkout's ``quasar`` and ``quasar_bench`` first on the path."""
    env = dict(os.environ)
    here = Path(__file__).resolve().parents
    paths = os.pathsep.join([str(here[2]), str(here[1])])
    env["PYTHONPATH"] = paths + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_worker(job: dict, tmp: str, name: str, timeout: float = WORKER_TIMEOUT_S) -> dict:
    """Run one job in a fresh interpreter; raises RuntimeError with the worker's stderr tail on failure."""
    safe = name.replace("/", "_")
    jp, op = os.path.join(tmp, f"{safe}.job.json"), os.path.join(tmp, f"{safe}.out.json")
    with open(jp, "w") as f:
        json.dump(job, f)
    try:
        r = subprocess.run([sys.executable, "-m", "quasar_bench.worker", jp, op], capture_output=True, text=True,
                           env=worker_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    if r.returncode != 0 or not os.path.exists(op):
        tail = "\n".join((r.stderr or r.stdout or "no output").strip().splitlines()[-5:])
        raise RuntimeError(f"worker exited with {r.returncode}: {tail}")
    with open(op) as f:
        return json.load(f)


def resolve_models(cache: Path, pack, log) -> tuple[dict[str, str], dict[str, str]]:
    models, errors = {}, {}
    for prec in ("fp32", "int8"):
        t = time.perf_counter()
        try:
            models[prec] = model_path(prec, cache, pack)
            log(f"model {prec}: {models[prec]} ({time.perf_counter() - t:.0f} s)")
        except ModelUnavailable as e:
            errors[prec] = str(e)
            log(f"model {prec}: unavailable: {e}")
    return models, errors


@dataclass
class Outcome:
    """What the workers produced: raw results by row name, summarised rows, failures, run order."""

    raw: dict[str, dict] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def execute(jobs: list[tuple[str, str, Config | None, dict]], models: dict[str, str], model_errors: dict[str, str],
            log) -> Outcome:
    """Run every job in its own worker process, one after another; failures are recorded, not raised."""
    out = Outcome()
    with tempfile.TemporaryDirectory(prefix="quasar-bench-") as tmp:
        for i, (name, set_name, cfg, job) in enumerate(jobs, 1):
            out.order.append(name)
            tag = f"[{i}/{len(jobs)}] {name}"
            if cfg is not None and cfg.precision and cfg.precision not in models:
                out.errors[name] = f"skipped: no {cfg.precision} model ({model_errors.get(cfg.precision)})"
                log(f"{tag}: {out.errors[name]}")
                continue
            t = time.perf_counter()
            try:
                raw = run_worker(job, tmp, name)
            except RuntimeError as e:
                out.errors[name] = str(e)
                log(f"{tag}: FAILED {e}")
                continue
            out.raw[name] = raw
            if cfg is None:
                log(f"{tag}: done ({time.perf_counter() - t:.0f} s)")
                continue
            row = report.summarize_row(raw)
            row.update(label=cfg.label, set=set_name, kind=cfg.kind, precision=cfg.precision)
            out.rows[name] = row
            lat = f", p50 {row['latency_ms']['p50']:.1f} ms" if row.get("latency_ms") else ""
            log(f"{tag}: {row['images_per_s']['median']:.2f} images/s{lat}, peak {row['peak_rss_mib']:.0f} MiB "
                f"({time.perf_counter() - t:.0f} s)")
    return out


def assemble(o: Outcome, *, quick: bool, reps: int, pack, models: dict[str, str], files: dict[str, list[str]],
             load_start: float, seconds: float) -> dict:
    """The report dict: rows with ratios and agreement, targets, parity, limits, machine, notes."""
    sets = list(files)
    used = {r["info"].get("pack_hash") for r in o.rows.values()} - {None}
    if used - {pack.content_hash}:
        o.errors["pack"] = f"configurations used packs {sorted(used)}, expected {pack.content_hash}: agreement is void"
    report.add_ratios(o.rows, o.raw)
    pooled = {c: report.pooled_agreement(o.raw, sets, c)
              for c in ("quasar_fp32", "quasar_int8", "quasar_fp32_b1", "quasar_int8_b1", "eager_batched",
                        "eager_dataloader")}
    cores, load_end = usable_cores(), os.getloadavg()[0]
    limits = o.raw.get("limits", {})
    return {
        "benchmark": "quasar-speed", "format_version": 1,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": quick, "reps": reps, "machine": machine_info(),
        "load_average": {"start": round(load_start, 2), "end": round(load_end, 2)},
        "model": {"encoder": "effnet-lite0", "pack": "default", "pack_hash": pack.content_hash, "files": models,
                  "resolution_policy": "native, long side 512, multiple of 32"},
        "sets": {s: camera.describe(f) for s, f in files.items()},
        "notes": NOTES + [f"1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end "
                          f"({cores} cores): above {cores} the machine was shared and timings are noisy."],
        "order": o.order, "rows": o.rows, "pooled_agreement": pooled,
        "parity": report.parity_agreement(o.raw, sets),
        "targets": report.evaluate_targets(o.rows, pooled, sets),
        "limits": {k: limits[k] for k in ("flops_per_image", "resolution", "peaks", "decode") if k in limits} or None,
        "errors": o.errors, "total_seconds": round(seconds, 1),
        "scores": report.score_listing(o.raw, sets, ("eager_single", "quasar_fp32", "quasar_int8")),
    }


def run(quick: bool = False, out_dir: str | os.PathLike = "benchmarks/results", cache: str | os.PathLike | None = None,
        n_images: int | None = None, reps: int | None = None, sets: tuple[str, ...] = camera.SETS,
        only: str | None = None, log=None) -> dict:
    """Run the benchmark, write ``speed.json``/``speed.md`` into ``out_dir``, return the report dict."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if cache is None:
        from quasar.paths import cache_dir

        cache = cache_dir() / "bench"
    cache = Path(cache)
    n = n_images or (QUICK_IMAGES if quick else DEFAULT_IMAGES)
    reps = reps or (1 if quick else DEFAULT_REPS)
    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    log(f"generating/reusing {n} images per set under {cache}")
    files = {s: camera.generate(s, cache / "images", n) for s in sets}
    pack, pack_file = snapshot_pack(cache)  # every configuration uses this pack, even if the default is rebuilt
    log(f"pack {pack.content_hash} (snapshot {pack_file})")
    models, model_errors = resolve_models(cache, pack, log)
    jobs = [j for j in job_list(files, models, reps, quick, usable_cores(), pack_file) if not only or only in j[0]]
    outcome = execute(jobs, models, model_errors, log)
    rep = assemble(outcome, quick=quick, reps=reps, pack=pack, models=models, files=files, load_start=load_start,
                   seconds=time.perf_counter() - t_start)
    jp, mp = report.write(rep, out_dir)
    log(f"wrote {jp} and {mp} ({rep['total_seconds']:.0f} s)")
    return rep


def default_out_dir() -> str:
    return "benchmarks/results" if os.path.isdir("benchmarks") else "quasar-bench-results"


def add_arguments(p: argparse.ArgumentParser, out_default: str | None = None) -> None:
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {QUICK_IMAGES} images per set, 1 repetition (exit 1 if every configuration fails)")
    p.add_argument("--out", metavar="DIR", default=out_default,
                   help="where speed.json and speed.md go [default: benchmarks/results if ./benchmarks exists, "
                        "else quasar-bench-results]")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="generated JPEGs and exported models [default: $QUASAR_CACHE/bench or ~/.cache/quasar/bench]")
    add_workload_options(p, count_help=f"images per set [default: {DEFAULT_IMAGES}, --quick: {QUICK_IMAGES}]",
                         repeat_help=f"timed repetitions per configuration [default: {DEFAULT_REPS}, --quick: 1]")
    p.add_argument("--sets", default=",".join(camera.SETS), help=f"comma-separated image sets from {camera.SETS}")
    p.add_argument("--only", default=None, metavar="TEXT", help="run only configurations whose name contains TEXT")


def run_from_args(args: argparse.Namespace) -> int:
    sets = tuple(s.strip() for s in args.sets.split(",") if s.strip())
    bad = [s for s in sets if s not in camera.SETS]
    if bad or not sets:
        print(f"unknown image set(s) {bad}; choose from {camera.SETS}", file=sys.stderr)
        return 2
    rep = run(quick=args.quick, out_dir=args.out or default_out_dir(), cache=args.cache, n_images=args.count,
              reps=args.repeat, sets=sets, only=args.only)
    for t in rep["targets"]:
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        val = "–" if t["value"] is None else f"{t['value']:.3f}"
        print(f"{state:8s} {t['what']}: {val} (needs >= {t['threshold']:g})")
    return exit_status(rep)


def exit_status(rep: dict) -> int:
    """1 when no configuration produced a result (every one failed or was skipped), else 0."""
    if rep.get("rows"):
        return 0
    errors = rep.get("errors") or {}
    print(f"quasar bench: every configuration failed ({len(errors)} errors; see speed.json)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None, out_default: str | None = None) -> int:
    p = argparse.ArgumentParser(prog="speed.py", description=__doc__.split("\n\n")[0])
    add_arguments(p, out_default)
    return run_from_args(p.parse_args(argv))
