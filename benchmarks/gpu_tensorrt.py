"""GPU check and benchmark: TensorRT engines and the torch CUDA fp16 path against ORT CPU fp32, on real photos.

Ready to run on a machine with an NVIDIA GPU (``pip install -e .[export] tensorrt``)::

    python benchmarks/gpu_tensorrt.py                       # effnet-lite0 + a pack built from the photos
    python benchmarks/gpu_tensorrt.py --pack default        # the shipped default pack
    python benchmarks/gpu_tensorrt.py --onnx model.onnx     # an existing fused graph (fp32 engine only)

What it does, in order, printing one line per result and writing them all to ``--out`` (JSON):

1. a device line (GPU, compute capability, driver, CUDA, TensorRT, torch, onnxruntime);
2. exports the fused graph in fp32, fp16 and int8 (TensorRT scheme), unless ``--onnx``;
3. preprocesses ``--photos`` real photos (and distorted copies) per the graph's spec into one
   ``--batch``-sized grid of H x W (``--hw``) batches, and scores them with ONNX Runtime CPU fp32,
   the reference;
4. for each precision: builds a TensorRT engine (timing cache in the work dir), checks the sidecar
   on load, compares scores with the reference (max/mean |diff|, SRCC per head) and times the
   runtime's TensorRT backend (the one engine runner) end to end (uint8 upload, results download):
   pipelined, two batches in flight, and one batch at a time;
5. the same for torch on CUDA: the FusedScorer with the encoder in fp16 and the head in fp32.

Without TensorRT or a GPU the corresponding steps are skipped with a reason, so the script can be
smoke-tested anywhere.

**Not yet run**: no GPU was available, so this script and the code it measures have never run;
``bash .ci/gpu`` (the GPU tests, then this script) is the command that verifies them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from quasar.errors import QuasarError


def log(msg: str) -> None:
    print(msg, flush=True)


def device_line() -> dict:
    info: dict = {"host": platform.node(), "cpu": platform.processor() or platform.machine()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_runtime"] = torch.version.cuda
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1))
    except ImportError:
        pass
    try:
        import subprocess

        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=30)
        if r.returncode == 0:
            info["driver"] = r.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    import onnxruntime

    info["onnxruntime"] = onnxruntime.__version__
    log("device: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return info


def make_pack(args, workdir: str):
    """The pack to benchmark: ``--pack``, or a quick photo pack for ``--encoder`` (like the tests build)."""
    from quasar.centroids.pack import CentroidPack, Head
    from quasar.export.onnx_export import load_pack

    if args.pack:
        return load_pack(args.pack)
    import torch

    from quasar.centroids.distortions import distort
    from quasar.encoders import create_encoder
    from quasar.io import read_rgb
    from quasar.photos import fetch_photos
    from quasar.preprocess import preprocess

    enc = create_encoder(args.encoder)
    photos = [p for p in fetch_photos() if p.split == "anchor"][:8]
    heads = []
    with torch.no_grad():
        def emb(imgs):
            e = torch.cat([enc(torch.from_numpy(preprocess(i, enc.spec))[None]).float() for i in imgs]).numpy()
            return e / np.linalg.norm(e, axis=1, keepdims=True)

        imgs = [read_rgb(p.path) for p in photos]
        good = emb(imgs)
        for kind in ("gaussian_blur", "white_noise", "jpeg"):
            bad = emb([distort(i, kind, 4) for i in imgs])
            g, b = good.mean(0), bad.mean(0)
            m = np.concatenate([good, bad]) @ (g / np.linalg.norm(g) - b / np.linalg.norm(b))
            heads.append(Head(kind, g.astype(np.float32), b.astype(np.float32), min(3 / np.abs(m).max(), 100.0)))
    pack = CentroidPack(enc.encoder_id, enc.spec, heads)
    pack.save(os.path.join(workdir, "bench.qpack.json"))
    return pack


def eval_batches(spec, n_photos: int, batch: int, hw: tuple[int, int]) -> list[np.ndarray]:
    """Real photos and distorted copies, preprocessed per spec, resized to one H x W, in batches."""
    import cv2

    from quasar.centroids.distortions import distort
    from quasar.io import read_rgb
    from quasar.photos import fetch_photos
    from quasar.preprocess import preprocess

    photos = [p for p in fetch_photos() if p.split == "heldout"][:n_photos]
    images = []
    for i, p in enumerate(photos):
        img = read_rgb(p.path)
        images += [img, distort(img, ("gaussian_blur", "jpeg", "white_noise", "darken")[i % 4], 1 + i % 5)]
    arrays = []
    for img in images:
        a = preprocess(img, spec)
        if not spec.fixed_size:
            a = cv2.resize(a, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        arrays.append(a)
    arrays += arrays[: (-len(arrays)) % batch]  # whole batches only
    x = np.stack(arrays)
    return [np.ascontiguousarray(x[i: i + batch]) for i in range(0, len(x), batch)]


def compare(name: str, scores: np.ndarray, ref: np.ndarray) -> dict:
    from quasar.eval.metrics import srcc as spearman

    d = np.abs(scores - ref)
    srcc = [spearman(scores[:, k], ref[:, k]) for k in range(ref.shape[1])]
    log(f"{name}: vs ORT CPU fp32 on {len(ref)} images: max |diff| {d.max():.2e}, mean {d.mean():.2e}, "
        f"SRCC per head {np.round(srcc, 5).tolist()}")
    return {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()), "srcc": srcc}


def cuda_time(fn, iters: int, warmup: int) -> float:
    """Median ms per call of ``fn`` (which enqueues CUDA work), timed with CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def time_engine(backend, batch: np.ndarray, iters: int, warmup: int) -> tuple[float, float]:
    """(pipelined ms, end-to-end ms) per batch through the runtime's TensorRT backend: two batches in
    flight (the next batch's upload overlaps compute, as the pipeline runs it), then one at a time."""
    import time as _time

    def timed(fn) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            t0 = _time.perf_counter()
            fn()
            times.append((_time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    def pipelined():
        a = backend.submit(batch)
        b = backend.submit(batch)
        a.result()
        b.result()

    return timed(pipelined) / 2, timed(lambda: backend.run(batch))


def bench_tensorrt(args, onnx_paths: dict, batches, ref, workdir: str) -> dict:
    out: dict = {}
    try:
        import tensorrt as trt
    except ImportError:
        log("tensorrt: skipped (not installed)")
        return {"skipped": "tensorrt not installed"}
    import torch

    if not torch.cuda.is_available():
        log("tensorrt: skipped (no CUDA GPU visible to torch)")
        return {"skipped": "no CUDA"}
    from quasar.export.tensorrt import build_engine, has_precision_flags
    from quasar.runtime.backends.tensorrt import TensorRTBackend
    from quasar.runtime.model import load_model_info

    n, h, w = batches[0].shape[:3]
    for precision, path in onnx_paths.items():
        t0 = time.perf_counter()
        fp16 = precision in ("fp16", "int8") and has_precision_flags(trt)
        try:
            engine = build_engine(path, os.path.join(workdir, f"{precision}.engine"), fp16=fp16,
                                  min_batch=1, opt_batch=n, max_batch=max(n, 32),
                                  opt_hw=(h, w) if _is_dynamic(path) else None,
                                  timing_cache=os.path.join(workdir, "timing.cache"))
        except QuasarError as e:
            log(f"tensorrt {precision}: build failed: {e}")
            out[precision] = {"error": str(e)}
            continue
        build_s = time.perf_counter() - t0
        backend = TensorRTBackend(load_model_info(engine))  # the runtime's engine runner, sidecar checked
        try:
            scores = np.concatenate([backend.run(x)[0] for x in batches])
            res = compare(f"tensorrt {precision}", scores, ref)
            ms, ms_e2e = time_engine(backend, batches[0], args.iters, args.warmup)
        finally:
            backend.close()
        res.update(build_s=build_s, engine_mb=os.path.getsize(engine) / 1e6, batch=n, hw=[h, w],
                   ms_per_batch=ms, images_per_s=n / ms * 1e3, ms_per_batch_end_to_end=ms_e2e)
        log(f"tensorrt {precision}: built in {build_s:.0f} s, {res['engine_mb']:.1f} MB; batch {n} at {h}x{w}: "
            f"{ms:.2f} ms pipelined ({res['images_per_s']:.0f} img/s), {ms_e2e:.2f} ms one at a time")
        out[precision] = res
    return out


def _is_dynamic(onnx_path: str) -> bool:
    from quasar.export.metadata import load_info

    return load_info(onnx_path).dynamic_size


def bench_torch_cuda(args, pack, batches, ref) -> dict:
    import torch

    if not torch.cuda.is_available():
        log("torch cuda fp16: skipped (no CUDA GPU)")
        return {"skipped": "no CUDA"}
    from quasar.export.fused import build_fused

    fused = build_fused(pack.encoder, pack)
    fused.encoder.half()  # head (normalisation, centroids, sigmoid) stays fp32, as in the fp16 graph
    fused = fused.cuda().eval()
    with torch.no_grad():
        scores = np.concatenate([fused(torch.from_numpy(x).cuda())[0].float().cpu().numpy() for x in batches])
        res = compare("torch cuda fp16", scores, ref)
        x_dev = torch.from_numpy(batches[0]).cuda()
        ms = cuda_time(lambda: fused(x_dev), args.iters, args.warmup)
    n, h, w = batches[0].shape[:3]
    res.update(batch=n, hw=[h, w], ms_per_batch=ms, images_per_s=n / ms * 1e3)
    log(f"torch cuda fp16: batch {n} at {h}x{w}: {ms:.2f} ms ({res['images_per_s']:.0f} img/s)")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", help="existing fused fp32 graph (skips the export)")
    ap.add_argument("--pack", help="pack file or 'default' (default: a photo pack for --encoder)")
    ap.add_argument("--encoder", default="effnet-lite0")
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    ap.add_argument("--photos", type=int, default=16, help="held-out photos (each also distorted once)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hw", default="384x512", help="H x W of the timed batch for dynamic-size graphs")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--workdir", help="where models, engines and the timing cache go (default: a temp dir)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "gpu_tensorrt.json"))
    args = ap.parse_args(argv)
    hw = tuple(int(v) for v in args.hw.lower().split("x"))
    workdir = args.workdir or tempfile.mkdtemp(prefix="quasar-gpu-bench-")
    os.makedirs(workdir, exist_ok=True)
    results: dict = {"device": device_line(), "args": vars(args)}

    from quasar.export.metadata import load_info
    from quasar.export.onnx_export import export_onnx
    from quasar.preprocess import PreprocessSpec

    if args.onnx:
        onnx_paths = {"fp32": args.onnx}
        pack = None
    else:
        pack = make_pack(args, workdir)
        onnx_paths = {}
        for p in args.precisions.split(","):
            t0 = time.perf_counter()
            onnx_paths[p] = export_onnx(None, pack, os.path.join(workdir, f"model-{p}.onnx"), precision=p,
                                        **({"int8_scheme": "tensorrt"} if p == "int8" else {}))
            log(f"export {p}: {time.perf_counter() - t0:.1f} s, {os.path.getsize(onnx_paths[p]) / 1e6:.1f} MB")
    info = load_info(onnx_paths["fp32"])
    spec = PreprocessSpec.from_dict(info.preprocess)
    batches = eval_batches(spec, args.photos, args.batch, hw)
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_paths["fp32"], providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    ref = np.concatenate([sess.run(None, {"images": x})[0] for x in batches])
    cpu_ms = (time.perf_counter() - t0) / len(batches) * 1e3
    log(f"ort cpu fp32: {len(ref)} images, {cpu_ms:.0f} ms per batch of {args.batch} at {batches[0].shape[1:3]}")
    results["ort_cpu_fp32"] = {"ms_per_batch": cpu_ms, "images": len(ref)}
    results["tensorrt"] = bench_tensorrt(args, onnx_paths, batches, ref, workdir)
    if pack is not None:
        results["torch_cuda_fp16"] = bench_torch_cuda(args, pack, batches, ref)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=str)
    log(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except QuasarError as e:
        print(f"quasar: error: {e}", file=sys.stderr)
        sys.exit(2)
