"""One benchmark configuration in its own process: ``python -m quasar_bench.worker JOB.json OUT.json``.

Why a process per configuration: peak memory must be the configuration's own, native allocations
included (libjpeg buffers, oneDNN scratch, ONNX Runtime arenas), which ``tracemalloc`` cannot see;
the high-water mark of a fresh process's RSS can (see :func:`peak_rss_mib`). A fresh process also means no
configuration inherits warm caches or thread pools from another, and QUASAR configurations never
import torch (their memory and start-up are what a torch-free deployment would see).

Every job: set up (load the model, prepare inputs), warm up (not timed), then ``reps`` timed
repetitions over the same files. Results: seconds per repetition, per-image (or per-batch)
latencies, the scores of the last repetition, peak RSS.

Job kinds:

* ``eager_single`` / ``eager_batched`` / ``eager_dataloader``: :class:`quasar_bench.eager.EagerPipeline`.
* ``quasar``: ``Scorer(model).score_iter(files)``, the engine end to end with its default batch
  (8 on CPU) and worker threads.
* ``quasar_latency``: ``Scorer(model, batch_size=1)``, one ``score(path)`` call per image.
* ``model_ort`` / ``model_torch``: model only, on uint8 batches preprocessed beforehand by the
  runtime's :class:`~quasar.runtime.prepare.Preparer` and grouped into same-shape batches.
* ``limits``: FLOPs, GEMM peaks and JPEG decode rates (:mod:`quasar_bench.limits`).
* ``parity``: untimed scores under preprocessing variants (:func:`run_parity`).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from quasar_bench.stats import time_calls

KINDS = ("eager_single", "eager_batched", "eager_dataloader", "quasar", "quasar_latency", "model_ort",
         "model_torch", "limits", "parity")


def peak_rss_mib() -> float:
    """This process's RSS high-water mark in MiB.

    Linux: ``VmHWM`` from ``/proc/self/status``, the high-water mark of this process's own address
    space. ``getrusage(RUSAGE_SELF).ru_maxrss`` is *not* used there: the kernel carries it over
    ``fork`` and ``exec`` (``signal->maxrss``), so a worker started from a parent holding 1.7 GB
    would report at least 1.7 GB whatever it did. Elsewhere ``ru_maxrss`` (macOS reports bytes).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (2**20 if sys.platform == "darwin" else 1024), 1)


def timed_reps(run: Callable[[], object], reps: int) -> tuple[list[float], object]:
    """Seconds of each of ``reps`` calls to ``run`` and the last call's return value."""
    secs, last = [], None
    for _ in range(reps):
        t = time.perf_counter()
        last = run()
        secs.append(time.perf_counter() - t)
    return secs, last


def per_item(fn: Callable[[str], np.ndarray], files: Sequence[str], reps: int) -> tuple[list[float], list[float], dict]:
    """Call ``fn`` per file; (seconds per repetition, latencies in ms, scores of the last repetition)."""
    rep_secs, lat, scores = [], [], {}
    for _ in range(reps):
        t0 = time.perf_counter()
        for f in files:
            t = time.perf_counter()
            scores[f] = fn(f)
            lat.append((time.perf_counter() - t) * 1e3)
        rep_secs.append(time.perf_counter() - t0)
    return rep_secs, lat, scores


def pack_hash(pack: str) -> str:
    from quasar.centroids.pack import CentroidPack

    return CentroidPack.load(pack).content_hash


def as_lists(scores: dict) -> dict[str, list[float]]:
    return {k: [float(x) for x in np.ravel(v)] for k, v in scores.items()}


# ------------------------------------------------------------------ eager (torch)


def run_eager(job: dict) -> dict:
    import torch

    from quasar_bench.eager import EagerPipeline, build_eager_model

    files, reps, bs = job["files"], job["reps"], job.get("batch_size", 8)
    pipe = EagerPipeline(*build_eager_model(pack=job.get("pack", "default")))
    kind = job["kind"]
    info = {"torch_threads": torch.get_num_threads(), "batch_size": 1 if kind == "eager_single" else bs,
            "pack_hash": pack_hash(job.get("pack", "default"))}
    if kind == "eager_single":
        for f in files[: job.get("warmup", 3)]:
            pipe.score_one(f)
        secs, lat, scores = per_item(pipe.score_one, files, reps)
        return {"rep_seconds": secs, "latencies_ms": lat, "scores": as_lists(scores), "info": info}
    workers = job.get("workers", 2)

    def run(paths: list[str] = files) -> list:
        if kind == "eager_batched":
            return pipe.score_batched(paths, bs)
        return pipe.score_dataloader(paths, bs, workers)

    if kind == "eager_dataloader":
        info["dataloader_workers"] = workers
    run(files[: job.get("warmup_files", 12)])  # warm-up: 12 files give a full landscape and a portrait batch
    secs, out = timed_reps(run, reps)
    return {"rep_seconds": secs, "scores": as_lists(dict(zip(files, out, strict=True))), "info": info}


# ------------------------------------------------------------------ QUASAR engine (no torch)


def run_quasar(job: dict) -> dict:
    from quasar.runtime import Scorer

    files, reps = job["files"], job["reps"]
    if job["kind"] == "quasar_latency":
        with Scorer(job["model"], batch_size=1, workers=job.get("workers")) as scorer:
            def one(f: str) -> list[float]:
                (rec,) = scorer.score(f)
                if rec.error:
                    raise RuntimeError(f"{f}: {rec.error}")
                return list(rec.scores.values())

            for f in files[: job.get("warmup", 3)]:
                one(f)
            secs, lat, scores = per_item(one, files, reps)
            info = {"batch_size": 1, "workers": scorer.workers, "backend": scorer.backend.name,
                    "pack_hash": scorer.info.pack_hash}
        return {"rep_seconds": secs, "latencies_ms": lat, "scores": as_lists(scores), "info": info}

    with Scorer(job["model"], batch_size=job.get("batch_size"), workers=job.get("workers")) as scorer:
        def run(paths: list[str] = files) -> dict:
            out = {}
            for rec in scorer.score_iter(paths):
                if rec.error:
                    raise RuntimeError(f"{rec.source}: {rec.error}")
                out[rec.source] = list(rec.scores.values())
            return out

        run(files[: job.get("warmup_files", 12)])  # warm-up: a full batch of each orientation
        secs, scores = timed_reps(run, reps)
        info = {"batch_size": scorer.batch_size, "workers": scorer.workers, "backend": scorer.backend.name,
                "pack_hash": scorer.info.pack_hash}
    return {"rep_seconds": secs, "scores": as_lists(scores), "info": info}


# ------------------------------------------------------------------ model only


def prepared_batches(files: Sequence[str], spec, batch_size: int) -> list[np.ndarray]:
    """The runtime's uint8 inputs for ``files``, in same-shape batches of at most ``batch_size``."""
    from quasar.runtime.prepare import Preparer
    from quasar.runtime.sources import Item

    prep = Preparer(spec)
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for f in files:
        a = prep(Item(f, path=f))
        groups.setdefault(a.shape, []).append(a)
    return [np.stack(g[k : k + batch_size]) for g in groups.values() for k in range(0, len(g), batch_size)]


def run_model(job: dict) -> dict:
    files, reps, bs = job["files"], job["reps"], job.get("batch_size", 8)
    if job["kind"] == "model_ort":
        from quasar.runtime.backends import create_backend
        from quasar.runtime.model import load_model_info

        info_m = load_model_info(job["model"])
        backend = create_backend(info_m, "onnxruntime", "cpu")
        fn = backend.run
        spec = info_m.spec
        info = {"backend": backend.name, "precision": info_m.precision, "pack_hash": info_m.pack_hash}
    else:
        import torch

        from quasar_bench.eager import build_eager_model

        model, spec = build_eager_model(pack=job.get("pack", "default"))

        def fn(b: np.ndarray):
            with torch.inference_mode():
                return model.forward_uint8(torch.from_numpy(b))

        info = {"backend": "torch-eager", "torch_threads": torch.get_num_threads(),
                "pack_hash": pack_hash(job.get("pack", "default"))}
    batches = prepared_batches(files, spec, bs)
    for b in {b.shape: b for b in batches}.values():  # warm-up: every batch shape once
        fn(b)
    secs, lat = time_calls(fn, batches, reps)
    info.update(batch_size=bs, shapes=sorted({str(tuple(b.shape)) for b in batches}))
    out = {"rep_seconds": secs, "info": info}
    if bs == 1:
        out["latencies_ms"] = lat
    return out


# ------------------------------------------------------------------ score parity (untimed)


def run_parity(job: dict) -> dict:
    """Scores of the same files under preprocessing variants, to explain where (b) departs from (a).

    ``runtime``: the Scorer as benchmarked; ``full_decode``: without reduced JPEG decoding;
    ``pil_preprocess``: PIL decode + PIL bicubic resize to the same shape
    (:func:`quasar.testing.reference_preprocess`), i.e. the eager pipeline's exact uint8
    pixels, through the ONNX model: this isolates the model (fp32 or int8) from preprocessing.
    """
    from quasar.runtime import Scorer
    from quasar.testing import reference_preprocess

    files = job["files"]
    variants: dict[str, dict] = {}
    for prec, path in (("fp32", job.get("model")), ("int8", job.get("model_int8"))):
        if not path:
            continue
        runs = [("runtime", True), ("full_decode", False)] if prec == "fp32" else [("runtime", True)]
        for name, reduced in runs:
            with Scorer(path, reduced_decode=reduced) as scorer:
                variants[f"{prec}/{name}"] = {r.source: list(r.scores.values()) for r in scorer.score_iter(files)}
        with Scorer(path) as scorer:
            out = {}
            for f in files:
                x = reference_preprocess(f, scorer.spec)
                scores, _ = scorer.backend.run(x[None])
                out[f] = [float(v) for v in scores[0]]
            variants[f"{prec}/pil_preprocess"] = out
    return {"variants": variants, "rep_seconds": []}


# ------------------------------------------------------------------ limits


def run_limits(job: dict) -> dict:
    from quasar_bench import limits
    from quasar_bench.eager import build_eager_model

    quick = job.get("quick", False)
    model, spec = build_eager_model(pack=job.get("pack", "default"))
    h, w = job.get("resolution", (384, 512))
    return {"flops_per_image": limits.model_flops(model, h, w), "resolution": [h, w],
            "peaks": limits.peaks(quick), "decode": limits.decode_rates(job["files"], spec, quick)}


RUNNERS = {"eager_single": run_eager, "eager_batched": run_eager, "eager_dataloader": run_eager,
           "quasar": run_quasar, "quasar_latency": run_quasar, "model_ort": run_model, "model_torch": run_model,
           "limits": run_limits, "parity": run_parity}


def run_job(job: dict) -> dict:
    if job.get("kind") not in RUNNERS:
        raise ValueError(f"unknown job kind {job.get('kind')!r}; expected one of {KINDS}")
    t = time.perf_counter()
    out = RUNNERS[job["kind"]](job)
    out.update(kind=job["kind"], n_images=len(job.get("files", [])), wall_s=round(time.perf_counter() - t, 2),
               peak_rss_mib=peak_rss_mib())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m quasar_bench.worker JOB.json OUT.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        job = json.load(f)
    out = run_job(job)
    with open(argv[1], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
