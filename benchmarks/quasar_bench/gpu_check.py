"""``python -m benchmarks.gpu_check``: turn a short GPU slot into verified numbers, parity first.

Order (each step inside one time budget, default 8 minutes; when it runs out the remaining steps are
recorded as skipped and what was measured is written):

1. **Parity**, on the same pixels (the CPU preprocessing of real photos, or synthetic stand-ins when the
   photos are not on the machine): the torch backend fp32 on the device against ONNX Runtime on the CPU,
   max |d score| <= 1e-3, else the check stops with one line (exit 1) and writes what it found. Then,
   reported against their targets but not stopping the check: fp16 and bf16 per-head SRCC against the
   fp32 scores (target >= 0.999), and JPEGs decoded on the device (``decode_jpeg``) against the CPU
   path (OpenCV with the runtime's reduced decoding, and at full scale): per-head SRCC (target >= 0.999).
2. **Model only**: images/s and latency per batch (1, 2, 4, ..., 256; ``--tiny``: 1, 2) for fp32, fp16
   and bf16 on device-resident uint8 batches of the camera shape (384x512; ``--tiny``: 64x96), plus
   fp16 with CUDA graphs on CUDA; it stops when less than 55 % of the budget is left (``MODEL_SHARE``).
3. **End to end** (files -> scores, the runtime's pipelines) on the camera (12 and 5 MP) and 1 MP JPEG
   sets: decoding on the device vs on the CPU workers (same backend), ONNX Runtime on the CPU as the
   all-CPU baseline, and PNGs staged in pinned vs pageable host memory (CUDA only). GPU memory (peak
   allocated) and utilisation (``nvidia-smi``, sampled) per step.
4. ONNX Runtime's CUDA and TensorRT execution providers when installed (else "not installed").

Writes ``BASE.json`` and ``BASE.md`` (default ``benchmarks/results/gpu_check`` on CUDA,
``gpu_check_cpu`` on the CPU) through :func:`quasar_bench.results.write_results`. Exit status: 0 done
(also when the budget cut it short), 1 parity failed, 2 the device asked for is not there.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from quasar.machine import machine_info, usable_cores
from quasar_bench.results import write_results

DEFAULT_BUDGET_S = 480
PRECISIONS = ("fp32", "fp16", "bf16")
FP32_MAX_ABS = 1e-3
SRCC_TARGET = 0.999
E2E_SECONDS = 3.0  # end to end: the file list is repeated until a timed run lasts about this long
MAX_PASSES = 50
MODEL_SHARE = 0.45  # model only stops when less than (1 - this) of the budget is left, for end to end
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
# Targets of the issue (H100-class GPU), shown beside what was measured.
TARGETS = {
    "model_fp16_best_images_per_s": 5000, "model_fp16_batch1_ms": 2.0, "e2e_1mp_device_decode_images_per_s": 1500,
    "e2e_camera_device_decode_images_per_s": 250, "device_vs_cpu_decode_speedup": 3.0,
}


class Budget:
    """The check's time budget: ``left()`` seconds; ``spent(step)`` records a step skipped for time."""

    def __init__(self, seconds: float) -> None:
        self.total, self.start = float(seconds), time.perf_counter()
        self.skipped: list[str] = []

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.start)

    def allows(self, step: str, need: float = 1.0) -> bool:
        if self.left() >= need:
            return True
        self.skipped.append(step)
        return False


class Stop(Exception):
    """A reason to stop before measuring (no such device, parity failed); the message is the one line."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.code = code


# ------------------------------------------------------------------ the machine


def nvidia_smi(fields: str) -> list[str] | None:
    """One ``nvidia-smi --query-gpu`` row (GPU 0) as strings, or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits", "--id=0"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = r.stdout.strip().splitlines() if r.returncode == 0 else []
    return [p.strip() for p in rows[0].split(",")] if rows else None


CLOCK_FIELDS = ("name", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem", "power.limit", "driver_version",
                "memory.total")


def device_facts(device: str) -> dict:
    import torch

    facts: dict = {"device": device, "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    try:
        import torchvision

        facts["torchvision"] = torchvision.__version__
    except ImportError:
        facts["torchvision"] = "not installed"
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        facts.update(name=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                     memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                     cudnn=torch.backends.cudnn.version())
    if shutil.which("nvidia-smi"):  # one field per query: a field this driver does not know costs only itself
        facts["nvidia_smi"] = {f: (row[0] if (row := nvidia_smi(f)) else "n/a") for f in CLOCK_FIELDS}
    else:
        facts["nvidia_smi"] = "not available"
    return facts


class Utilisation:
    """GPU utilisation sampled from ``nvidia-smi`` every 0.25 s while a step runs (None without it)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True) if shutil.which("nvidia-smi") else None

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            row = nvidia_smi("utilization.gpu")
            if row:
                try:
                    self.samples.append(float(row[0]))
                except ValueError:
                    pass

    def __enter__(self) -> Utilisation:
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def summary(self) -> dict | str:
        if not self.samples:
            return "not available"
        return {"mean_pct": round(float(np.mean(self.samples)), 1), "max_pct": max(self.samples),
                "samples": len(self.samples)}


class Memory:
    """Peak device memory of a step (MiB), CUDA only."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __enter__(self) -> Memory:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        pass

    def peak_mib(self) -> float | str:
        if self.device != "cuda":
            return "n/a on cpu"
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# ------------------------------------------------------------------ images


def source_images(photos_dir: Path | None, n: int) -> tuple[list[np.ndarray], str]:
    """``n`` BGR source images: the working-copy photos under ``photos_dir`` (spread over the folder),
    else textured synthetic stand-ins (:func:`quasar_bench.camera.synthetic_sources`); and which."""
    from quasar_bench.camera import synthetic_sources

    files = sorted(str(p) for p in photos_dir.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES) \
        if photos_dir and photos_dir.is_dir() else []
    if files:
        step = max(1, len(files) // n)
        imgs = [cv2.imread(f, cv2.IMREAD_COLOR) for f in files[::step][:n]]
        imgs = [i for i in imgs if i is not None]
        if imgs:
            return imgs, f"photos under {photos_dir} ({len(imgs)})"
    return synthetic_sources(n), "synthetic (no photos found)"


def write_sets(dest: Path, sources: list[np.ndarray], tiny: bool, n: int) -> dict[str, list[str]]:
    """The JPEG sets (camera 12/5 MP, 1 MP; ``tiny``: 320x240 and 256x192) and a PNG set (the 1 MP images),
    written under ``dest`` from ``sources``; every 3rd image portrait, as in :mod:`quasar_bench.camera`."""
    from quasar_bench.camera import CAMERA_SIZES, NOISE_SIGMA, ONE_MP_SIZE, camera_jpeg, stored_size

    sizes = {"camera": ((320, 240),) if tiny else CAMERA_SIZES, "1mp": ((256, 192),) if tiny else (ONE_MP_SIZE,)}
    jobs: list[tuple[Path, Callable[[], bytes]]] = []
    sets: dict[str, list[str]] = {}
    for name, options in sizes.items():
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        sets[name] = []
        for i in range(n):
            w, h = stored_size(i, options[i % len(options)])
            path = folder / f"{i:03d}_{w}x{h}.jpg"
            jobs.append((path, lambda i=i, w=w, h=h, name=name: camera_jpeg(sources[i % len(sources)], w, h, seed=i,
                                                                          noise_sigma=NOISE_SIGMA[name])))
            sets[name].append(str(path))
    (dest / "png").mkdir(exist_ok=True)
    sets["png"] = [str(dest / "png" / (Path(f).stem + ".png")) for f in sets["1mp"]]
    _write_all(jobs)  # the JPEGs first: the PNGs are the 1 MP JPEGs' pixels
    _write_all([(Path(png), lambda f=f: cv2.imencode(".png", cv2.imread(f), [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes())
                for f, png in zip(sets["1mp"], sets["png"], strict=True)])
    return sets


def _write_all(jobs: list[tuple[Path, Callable[[], bytes]]]) -> None:
    """Write the missing files on all cores (OpenCV releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = [(p, make) for p, make in jobs if not p.exists()]
    with ThreadPoolExecutor(max(1, min(16, usable_cores()))) as pool:
        for path, data in zip((p for p, _ in todo), pool.map(lambda j: j[1](), todo), strict=True):
            path.write_bytes(data)


# ------------------------------------------------------------------ backends and pipelines


SLOW_FP16 = "not run on the CPU with --tiny (fp16 has only slow reference kernels there)"


def slow_fp16(ctx: dict, precision: str) -> bool:
    return precision == "fp16" and ctx["device"] == "cpu" and ctx["tiny"]


def ort_cpu(ctx: dict):
    """The check's one ONNX Runtime CPU backend (the reference and the all-CPU baseline)."""
    from quasar.runtime.backends import create_backend

    if "ort" not in ctx["backends"]:
        ctx["backends"]["ort"] = create_backend(ctx["info"], "onnxruntime", "cpu")
    return ctx["backends"]["ort"]


def cached_backend(ctx: dict, precision: str):
    """The check's one torch backend per precision (building one costs seconds)."""
    if precision not in ctx["backends"]:
        ctx["backends"][precision] = torch_backend(ctx["info"], ctx["device"], precision)
    return ctx["backends"][precision]


def torch_backend(info, device: str, precision: str, **options):
    from quasar.runtime.backends.torch_backend import TorchBackend
    from quasar.runtime.backends.torch_options import TorchOptions

    return TorchBackend(info, device=device, options=TorchOptions(precision=precision, **options))


def run_all(pipeline, files: list[str]) -> list:
    from quasar.runtime.sources import Item

    return list(pipeline.run(Item(f, path=f) for f in files))


def scores_of(results: list) -> np.ndarray:
    bad = [f"{r.label}: {r.error}" for r in results if r.error is not None]
    if bad:
        raise RuntimeError(f"{len(bad)} images failed, first: {bad[0]}")
    return np.stack([r.scores for r in results])


def average_ranks(x) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their average rank (as Spearman's definition takes them)."""
    x = np.asarray(x, dtype=np.float64)
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="mergesort")] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def rank_srcc(a, b) -> float:
    """Spearman's correlation with numpy alone (NaN for a constant input)."""
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def srcc_function():
    """:func:`quasar.eval.metrics.srcc`, the project's SRCC; :func:`rank_srcc` where scipy, which it needs, is
    not installed (a bare GPU image has torch, not scipy)."""
    try:
        from quasar.eval.metrics import srcc
    except ImportError:
        return rank_srcc
    return srcc


def worst_srcc(a: np.ndarray, b: np.ndarray, heads) -> dict:
    srcc = srcc_function()
    per = {h: round(float(srcc(a[:, k], b[:, k])), 5) for k, h in enumerate(heads)}
    worst = min(per, key=per.get)
    return {"worst_head": worst, "worst_srcc": per[worst], "per_head": per,
            "max_abs_score": float(np.abs(a - b).max()), "meets_target": per[worst] >= SRCC_TARGET}


def prepared_batches(files: list[str], spec, batch: int) -> list[np.ndarray]:
    """The CPU preprocessing of ``files``, grouped by shape into batches (the runtime's bucketing)."""
    from quasar.runtime.prepare import Preparer
    from quasar.runtime.sources import Item

    prep = Preparer(spec)
    by_shape: dict[tuple, list] = {}
    for f in files:
        a = prep(Item(f, path=f))
        by_shape.setdefault(a.shape, []).append(a)
    return [np.stack(v[i : i + batch]) for v in by_shape.values() for i in range(0, len(v), batch)]


# ------------------------------------------------------------------ steps


def parity(ctx: dict, out: dict) -> None:
    """Step 1, into ``out``; raises :class:`Stop` (exit 1) when fp32 is off by more than ``FP32_MAX_ABS``."""
    from quasar.runtime.pipeline import Pipeline
    from quasar.runtime.prepare import Preparer

    info, device, budget = ctx["info"], ctx["device"], ctx["budget"]
    batches = prepared_batches(ctx["parity_files"], info.spec, 8)
    ort = ort_cpu(ctx)
    ref = np.concatenate([ort.run(b)[0] for b in batches])
    out.update(images=int(ref.shape[0]), sources=ctx["sources"])
    for precision in PRECISIONS:
        if not budget.allows(f"parity/{precision}"):
            continue
        if slow_fp16(ctx, precision):
            out[precision] = SLOW_FP16
            continue
        backend = cached_backend(ctx, precision)
        got = np.concatenate([backend.run(b)[0] for b in batches])
        r = worst_srcc(got, ref, info.heads)
        if precision == "fp32":
            r["meets_target"] = r["max_abs_score"] <= FP32_MAX_ABS
            out["fp32"] = r
            if not r["meets_target"]:
                raise Stop(f"gpu_check: parity failed: torch fp32 on {device} differs from ONNX Runtime CPU by "
                           f"{r['max_abs_score']:.2e} (> {FP32_MAX_ABS:g}) on the same pixels; nothing measured", 1)
        else:
            out[precision] = r
    if budget.allows("parity/device_decode"):
        files = ctx["sets"]["1mp"]
        prep = Preparer(info.spec)
        cpu = scores_of(run_all(Pipeline(prep.with_warning, ort, batch_size=8, workers=ctx["workers"]), files))
        full = Preparer(info.spec, reduced_decode=False)  # the same decoder work as the device's: full scale
        cpu_full = scores_of(run_all(Pipeline(full.with_warning, ort, batch_size=8, workers=ctx["workers"]), files))
        dev_pipe = ctx["backends"]["fp32"].make_pipeline(prep, batch_size=8, workers=ctx["workers"])
        dev_pipe = dev_pipe or device_pipeline(ctx, ctx["backends"]["fp32"], True)
        dev = scores_of(run_all(dev_pipe, files))
        out["device_decode_vs_cpu_decode"] = {**worst_srcc(dev, cpu, info.heads), "images": len(files),
                                              "decode_stats": dict(dev_pipe.stats)}
        out["device_decode_vs_cpu_full_decode"] = {**worst_srcc(dev, cpu_full, info.heads), "images": len(files)}
        dev_pipe.close()


def device_pipeline(ctx: dict, backend, pinned: bool | None = None, batch: int = 8):
    from quasar.runtime.backends.torch_device import DevicePipeline
    from quasar.runtime.prepare import Preparer

    return DevicePipeline(Preparer(ctx["info"].spec), backend, batch_size=batch, workers=ctx["workers"],
                          pinned=pinned)


def timed(fn: Callable[[], object], device: str, min_s: float, max_calls: int) -> list[float]:
    """Seconds per call (synchronised), at least 2 calls, until ``min_s`` has passed or ``max_calls``."""
    secs: list[float] = []
    t0 = time.perf_counter()
    while len(secs) < 2 or (time.perf_counter() - t0 < min_s and len(secs) < max_calls):
        t = time.perf_counter()
        fn()
        sync(device)
        secs.append(time.perf_counter() - t)
    return secs


def model_only(ctx: dict, out: dict) -> None:
    """Step 2, into ``out``: images/s and latency per batch on device-resident uint8 batches."""
    import torch

    info, device, budget, tiny = ctx["info"], ctx["device"], ctx["budget"], ctx["tiny"]
    h, w = (64, 96) if tiny else (384, 512)
    sizes = (1, 2) if tiny else (1, 2, 4, 8, 16, 32, 64, 128, 256)
    img = cv2.resize(cv2.imread(ctx["sets"]["1mp"][0]), (w, h), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    variants = [(p, {}) for p in PRECISIONS] + ([("fp16", {"cuda_graphs": True})] if device == "cuda" else [])
    out["shape"] = [h, w]
    for precision, opts in variants:
        name = precision + ("_cuda_graphs" if opts else "")
        if slow_fp16(ctx, precision):
            out[name] = SLOW_FP16
            continue
        if opts:
            backend = torch_backend(info, device, precision, **opts)
        else:
            backend = cached_backend(ctx, precision)
        rows = {}
        for b in sizes:
            # model only may use the budget down to MODEL_SHARE of it; the rest is end to end's
            if not budget.allows(f"model/{name}/b{b}", need=5.0 + (1 - MODEL_SHARE) * budget.total):
                break
            x = torch.from_numpy(np.ascontiguousarray(np.repeat(img[None], b, axis=0))).to(device)
            try:
                with Memory(device) as mem:
                    for _ in range(2):  # warm-up (cuDNN autotuning, graph capture)
                        backend.forward(x)
                    sync(device)
                    secs = timed(lambda x=x, m=backend: m.forward(x), device, min_s=0.5 if device == "cuda" else 0.0,
                                 max_calls=200 if device == "cuda" else 2)
            except torch.cuda.OutOfMemoryError:
                rows[str(b)] = "out of memory"
                break
            med = float(np.median(secs))
            rows[str(b)] = {"images_per_s": round(b / med, 1), "latency_ms": round(med * 1e3, 3), "calls": len(secs),
                            "peak_mib": mem.peak_mib()}
        out[name] = rows


def end_to_end(ctx: dict, out: dict) -> None:
    """Step 3 (and 4), into ``out``: files -> scores through the runtime's pipelines."""
    from quasar.runtime.pipeline import Pipeline
    from quasar.runtime.prepare import Preparer

    info, device = ctx["info"], ctx["device"]
    precision = "fp16" if device == "cuda" else "fp32"
    backend = cached_backend(ctx, precision)
    batch = 8 if ctx["tiny"] else 32
    prep = Preparer(info.spec)

    def cpu_pipe(b):
        return Pipeline(prep.with_warning, b, batch_size=batch, workers=ctx["workers"])

    configs: dict[str, Callable] = {
        f"torch_{precision}_device_decode": lambda: device_pipeline(ctx, backend, None, batch),
        f"torch_{precision}_cpu_decode": lambda: cpu_pipe(backend),
        "onnxruntime_cpu": lambda: cpu_pipe(ort_cpu(ctx)),
    }
    out.update(precision=precision, batch=batch, workers=ctx["workers"])
    for set_name in ("1mp", "camera"):
        files = ctx["sets"][set_name]
        out[set_name] = {name: measure_e2e(ctx, make, files, f"e2e/{set_name}/{name}") for name, make in configs.items()}
    out["png_staging"] = {}
    for name, pinned in (("pinned", True), ("pageable", False)):
        if device != "cuda":
            out["png_staging"][name] = "n/a on cpu (page-locked memory needs CUDA)"
            continue
        out["png_staging"][name] = measure_e2e(ctx, lambda p=pinned: device_pipeline(ctx, backend, p, batch),
                                               ctx["sets"]["png"], f"e2e/png/{name}")
    out["providers"] = ort_providers(ctx, batch, cpu_pipe)


def measure_e2e(ctx: dict, make: Callable, files: list[str], step: str) -> dict | str:
    budget, device = ctx["budget"], ctx["device"]
    if not budget.allows(step, need=10.0):
        return "skipped: time budget"
    pipe = make()
    try:
        passes = 1
        if not ctx["tiny"]:  # a warm-up pass, which also sizes the timed run to about E2E_SECONDS
            t = time.perf_counter()
            run_all(pipe, files)
            per_pass = time.perf_counter() - t
            passes = int(max(1, min(MAX_PASSES, E2E_SECONDS / max(per_pass, 1e-3),
                                    (budget.left() - 10) / 2 / max(per_pass, 1e-3))))
        items = files * passes
        with Memory(device) as mem, Utilisation() as util:
            t = time.perf_counter()
            results = run_all(pipe, items)
            secs = time.perf_counter() - t
    finally:
        pipe.close()
    failed = sum(r.error is not None for r in results)
    return {"images_per_s": round(len(items) / secs, 2), "seconds": round(secs, 3), "images": len(items),
            "passes": passes, "failed": failed, "peak_mib": mem.peak_mib(), "utilisation": util.summary(),
            **({"decode_stats": dict(pipe.stats)} if hasattr(pipe, "stats") else {})}


def ort_providers(ctx: dict, batch: int, cpu_pipe: Callable) -> dict:
    """ONNX Runtime's CUDA and TensorRT execution providers, end to end on the 1 MP set, when installed."""
    from quasar.runtime.backends import create_backend

    try:
        import onnxruntime as ort
    except ImportError:
        return {"onnxruntime_cuda": "not installed", "onnxruntime_tensorrt": "not installed"}
    have = ort.get_available_providers()
    out: dict = {}
    for name, ep, dev in (("onnxruntime_cuda", "CUDAExecutionProvider", "cuda"),
                          ("onnxruntime_tensorrt", "TensorrtExecutionProvider", "tensorrt")):
        if ep not in have:
            out[name] = f"not installed (onnxruntime {ort.__version__} has no {ep}; needs onnxruntime-gpu)"
            continue
        try:
            out[name] = measure_e2e(ctx, lambda d=dev: cpu_pipe(create_backend(ctx["info"], "onnxruntime", d)),
                                    ctx["sets"]["1mp"], f"e2e/1mp/{name}")
        except Exception as e:
            out[name] = f"failed: {type(e).__name__}: {str(e)[:300]}"
    try:
        import tensorrt  # noqa: F401

        out["tensorrt_engine"] = "installed: run benchmarks/gpu_tensorrt.py for engines (not part of this check)"
    except ImportError:
        out["tensorrt_engine"] = "not installed"
    return out


# ------------------------------------------------------------------ report


def verdicts(data: dict) -> dict:
    """Each target of the issue: the measured value and whether it is met (only where measured on CUDA)."""
    if data["device"]["device"] != "cuda":
        return {"note": "targets apply to an H100-class GPU; this run was on the CPU"}
    m, e = data.get("model_only", {}), data.get("end_to_end", {})
    fp16 = {int(k): v for k, v in m.get("fp16", {}).items() if isinstance(v, dict)}
    fp16.update({int(k): v for k, v in m.get("fp16_cuda_graphs", {}).items()
                 if isinstance(v, dict) and v["images_per_s"] > fp16.get(int(k), {}).get("images_per_s", 0)})
    got: dict = {}
    if fp16:
        got["model_fp16_best_images_per_s"] = max(v["images_per_s"] for v in fp16.values())
        if 1 in fp16:
            got["model_fp16_batch1_ms"] = fp16[1]["latency_ms"]
    for set_name, key in (("1mp", "e2e_1mp_device_decode_images_per_s"), ("camera", "e2e_camera_device_decode_images_per_s")):
        row = e.get(set_name, {}).get("torch_fp16_device_decode")
        if isinstance(row, dict):
            got[key] = row["images_per_s"]
            base = e[set_name].get("onnxruntime_cpu")
            if isinstance(base, dict):
                got[f"device_vs_cpu_decode_speedup_{set_name}"] = round(row["images_per_s"] / base["images_per_s"], 2)
    out = {}
    for k, v in got.items():
        target_key = "device_vs_cpu_decode_speedup" if k.startswith("device_vs_cpu") else k
        t = TARGETS[target_key]
        ok = v <= t if k.endswith("_ms") else v >= t
        out[k] = {"measured": v, "target": t, "met": ok}
    return out


def markdown(data: dict) -> list[str]:
    d = data["device"]
    lines = [f"# gpu_check on {d.get('name', d['device'])}", "",
             f"torch {d['torch']} (CUDA {d['torch_cuda']}), torchvision {d['torchvision']}; "
             f"{data['machine'].get('cores')} CPU cores; budget {data['budget_s']} s, used {data['seconds']} s"
             + (" (tiny set)" if data["tiny"] else ""), ""]
    p = data.get("parity", {})
    lines += ["## Parity (same pixels, against ONNX Runtime CPU fp32)", "", "| check | worst head | SRCC | max abs | target met |",
              "|---|---|---|---|---|"]
    for k in ("fp32", "fp16", "bf16", "device_decode_vs_cpu_decode", "device_decode_vs_cpu_full_decode"):
        r = p.get(k)
        if isinstance(r, dict):
            lines.append(f"| {k} | {r['worst_head']} | {r['worst_srcc']:.4f} | {r['max_abs_score']:.2e} | "
                         f"{'yes' if r['meets_target'] else 'NO'} |")
    m = data.get("model_only", {})
    if m:
        lines += ["", f"## Model only ({m['shape'][0]}x{m['shape'][1]}): images/s (latency ms)", ""]
        for name, rows in m.items():
            if name == "shape" or isinstance(rows, str):
                lines += [] if name == "shape" else [f"- {name}: {rows}"]
                continue
            cells = [f"b{b}: {v['images_per_s']} ({v['latency_ms']})" if isinstance(v, dict) else f"b{b}: {v}"
                     for b, v in rows.items()]
            lines.append(f"- {name}: " + (", ".join(cells) or "not measured"))
    e = data.get("end_to_end", {})
    if e:
        lines += ["", f"## End to end (images/s; batch {e['batch']}, {e['workers']} workers)", ""]
        for set_name in ("1mp", "camera", "png_staging", "providers"):
            for name, r in e.get(set_name, {}).items():
                peak = f", peak {r['peak_mib']} MiB" if isinstance(r, dict) and not isinstance(r["peak_mib"], str) else ""
                val = f"{r['images_per_s']} img/s{peak}" if isinstance(r, dict) else r
                lines.append(f"- {set_name} / {name}: {val}")
    v = data.get("targets", {})
    if v:
        lines += ["", "## Targets", ""] + [f"- {k}: {r}" for k, r in v.items()]
    if data["skipped"]:
        lines += ["", f"Skipped for time: {', '.join(data['skipped'])}"]
    return lines


# ------------------------------------------------------------------ main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="default: cuda when available")
    p.add_argument("--tiny", action="store_true", help="tiny images and batches 1, 2 (CI on the CPU)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for the whole check")
    p.add_argument("--images", type=int, default=None, help="images per set [default: 48, tiny: 4]")
    p.add_argument("--photos", default=None, help="folder of source photos [default: the cache's photos, if any]")
    p.add_argument("--workers", type=int, default=None, help="CPU decode threads [default: cores, at most 16]")
    p.add_argument("--cache", default=None, help="where the image sets are written [default: cache/gpu_check]")
    p.add_argument("--out", default=None, help="results base path (BASE.json, BASE.md)")
    return p


def resolve_device(asked: str) -> str:
    try:
        import torch
    except ImportError as e:
        raise Stop(f"gpu_check: torch is not installed ({e})", 2) from None
    cuda = torch.cuda.is_available() and torch.cuda.device_count() > 0
    if asked == "cuda" and not cuda:
        raise Stop(f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda}); "
                   "run with --device cpu to check the script itself", 2)
    return "cuda" if asked == "auto" and cuda else ("cpu" if asked == "auto" else asked)


def run(args: argparse.Namespace) -> tuple[dict, str]:
    from quasar.paths import cache_dir
    from quasar.runtime.model import load_model_info
    from quasar.shipped import shipped_model_path

    budget = Budget(args.budget)
    device = resolve_device(args.device)
    n = args.images or (4 if args.tiny else 48)
    cache = Path(args.cache) if args.cache else cache_dir() / "gpu_check" / ("tiny" if args.tiny else "full")
    photos = Path(args.photos) if args.photos else cache_dir() / "photos"
    sources, described = source_images(photos, max(4, min(n, 16)))
    sets = write_sets(cache, sources, args.tiny, n)
    model = shipped_model_path()
    if model is None:
        raise Stop("gpu_check: the shipped model quasar/data/default_quality-fp32.onnx is missing or stale", 2)
    ctx = {"info": load_model_info(model), "device": device, "budget": budget, "tiny": args.tiny, "sets": sets,
           "workers": args.workers or min(16, usable_cores()), "backends": {}, "sources": described,
           "parity_files": sets["1mp"][: (4 if args.tiny else 16)]}
    if device == "cuda":
        import torch

        torch.backends.cudnn.benchmark = True
    data: dict = {"benchmark": "quasar-gpu-check", "device": device_facts(device), "machine": machine_info(),
                  "tiny": args.tiny, "budget_s": args.budget, "model": model, "sets": {k: len(v) for k, v in sets.items()}}
    stopped = None
    try:
        for key, step in (("parity", parity), ("model_only", model_only), ("end_to_end", end_to_end)):
            if budget.allows(key):
                step(ctx, data.setdefault(key, {}))
    except Stop as e:
        stopped = e
        data["stopped"] = str(e)
    data["targets"] = verdicts(data)
    data["skipped"] = budget.skipped
    data["seconds"] = round(args.budget - budget.left(), 1)
    base = args.out or f"benchmarks/results/gpu_check{'' if device == 'cuda' else '_cpu'}"
    write_results(base, data, markdown(data))
    if stopped is not None:
        raise stopped
    return data, base


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        _, base = run(args)
    except Stop as e:
        print(str(e), file=sys.stderr)
        return e.code
    print(f"wrote {base}.json and {base}.md", file=sys.stderr)
    return 0
