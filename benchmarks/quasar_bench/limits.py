"""Physical limits the pipeline numbers are read against: model FLOPs, CPU GEMM peak, JPEG decode rate.

* **FLOPs** of the encoder + head for one image at the benchmark resolution, counted by
  ``torch.utils.flop_counter.FlopCounterMode``: convolutions (depthwise included, per group) and
  matrix products only, a multiply-add counted as **2 FLOPs**; element-wise ops (BN folded, ReLU6,
  normalisation) are not counted, so this is the arithmetic that matters and a slight undercount.
* **Peak**: measured with a large fp32 GEMM (torch and numpy, best of a few), an ONNX Runtime fp32
  MatMul and int8 ``MatMulInteger`` (u8 x s8, what QDQ models run), all cores; and the theoretical
  fp32 peak from the ISA flags and clock (2 FMA pipes: 64 FLOP/cycle/core with AVX-512, 32 with AVX2).
  The fraction of peak a backend achieves is ``FLOPs/image x images/s / measured GEMM peak``.
* **JPEG decode rate**: ``cv2.imdecode`` at full size and with ``IMREAD_REDUCED_COLOR_2/4/8``, the
  runtime's own decode (reduction picked per file) and decode + resize (everything the CPU does per
  image), and PIL's full decode (the baseline's), one thread and all cores, on the camera-size files:
  images/s and source megapixels/s. An end-to-end pipeline cannot beat its decode rate on the cores
  it shares with inference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from quasar.machine import cpuinfo, usable_cores

# ------------------------------------------------------------------ FLOPs


def model_flops(model, height: int, width: int) -> int:
    """FLOPs (multiply-add = 2) of ``model.forward_uint8`` on one uint8 ``height`` x ``width`` image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros((1, height, width, 3), dtype=torch.uint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_uint8(x)
    return int(counter.get_total_flops())


# ------------------------------------------------------------------ GEMM peaks


def _best_rate(fn: Callable[[], object], flops: float, reps: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def torch_gemm_gflops(n: int = 2048, reps: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return _best_rate(lambda: torch.mm(a, b), 2.0 * n**3, reps)


def numpy_gemm_gflops(n: int = 2048, reps: int = 5) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    return _best_rate(lambda: a @ b, 2.0 * n**3, reps)


def ort_gemm_gops(dtype: str, n: int = 2048, reps: int = 5) -> float:
    """ONNX Runtime MatMul (fp32) or MatMulInteger (u8 activations x s8 weights), giga-ops/s (MAC = 2)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if dtype == "int8":
        w = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_t, y_t = TensorProto.UINT8, TensorProto.INT32
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    else:
        w = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_t, y_t = TensorProto.FLOAT, TensorProto.FLOAT
        a = rng.standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("a", a_t, [n, n])],
                              [helper.make_tensor_value_info("y", y_t, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return _best_rate(lambda: sess.run(None, {"a": a}), 2.0 * n**3, reps)


def theoretical_peak(flags: Sequence[str], mhz: float | None, cores: int) -> dict:
    """fp32 FMA peak from the ISA and the clock /proc/cpuinfo reports (turbo unknown: an estimate)."""
    fl = set(flags)
    per_cycle = 64 if "avx512f" in fl else 32 if {"avx2", "fma"} <= fl else 16 if "avx" in fl else 8
    vnni = "avx512_vnni" in fl or "avx_vnni" in fl
    out = {"fp32_flop_per_cycle_per_core": per_cycle, "clock_mhz": mhz, "cores": cores, "vnni": vnni,
           "fp32_gflops": round(per_cycle * mhz * cores / 1e3, 1) if mhz else None}
    # int8: VNNI does 4 MACs per 32-bit lane per instruction (4x fp32); without it u8 x s8 needs
    # vpmaddubsw + vpmaddwd + vpaddd (about 2x fp32 at best, with 16-bit saturation).
    out["int8_gops"] = round(out["fp32_gflops"] * (4 if vnni else 2), 1) if out["fp32_gflops"] else None
    return out


def peaks(quick: bool = False) -> dict:
    reps = 2 if quick else 5
    n = 1024 if quick else 2048
    out: dict = {"gemm_n": n}
    for name, fn in (("torch_fp32_gflops", lambda: torch_gemm_gflops(n, reps)),
                     ("numpy_fp32_gflops", lambda: numpy_gemm_gflops(n, reps)),
                     ("ort_fp32_gflops", lambda: ort_gemm_gops("fp32", n, reps)),
                     ("ort_int8_gops", lambda: ort_gemm_gops("int8", n, reps))):
        try:
            out[name] = round(fn(), 1)
        except Exception as e:
            out[name] = None
            out[name + "_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    fp32 = [v for k, v in out.items() if k.endswith("fp32_gflops") and isinstance(v, float)]
    out["measured_fp32_gflops"] = max(fp32) if fp32 else None
    cpu = cpuinfo()
    out["theoretical"] = theoretical_peak(cpu["flags"], cpu["mhz"], usable_cores())
    return out


# ------------------------------------------------------------------ JPEG decode


def decoders(spec) -> dict[str, Callable[[bytes], object]]:
    """Name -> function(bytes) for each decode variant measured."""
    import cv2

    from quasar.io.decode import decode
    from quasar.runtime.prepare import Preparer
    from quasar.runtime.sources import Item

    prep = Preparer(spec)

    def cv(flag: int) -> Callable[[bytes], object]:
        return lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), flag)

    def pil_full(data: bytes):
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")

    out = {
        "cv2_full": cv(cv2.IMREAD_COLOR),
        "cv2_reduced_2": cv(cv2.IMREAD_REDUCED_COLOR_2),
        "cv2_reduced_4": cv(cv2.IMREAD_REDUCED_COLOR_4),
        "cv2_reduced_8": cv(cv2.IMREAD_REDUCED_COLOR_8),
        "runtime_decode": lambda data: decode(data, min_shape=prep.min_decoded_shape),
        "runtime_decode_resize": lambda data: prep(Item("x", data=data)),
    }
    try:
        import PIL  # noqa: F401

        out["pil_full"] = pil_full
    except ImportError:
        pass
    return out


def decode_rates(paths: Sequence[str], spec, quick: bool = False) -> dict:
    """Per decoder: images/s and source MP/s with 1 thread and with every core (best of the reps)."""
    import cv2

    from quasar.io.formats import probe

    blobs = []
    for p in paths:
        with open(p, "rb") as f:
            blobs.append(f.read())
    mp = sum((h.width or 0) * (h.height or 0) for h in map(probe, blobs)) / 1e6
    reps = 1 if quick else 2
    cores = usable_cores()
    cv2.setNumThreads(1)  # imdecode is single-threaded; keep resize single-threaded like a worker thread
    out = {"files": len(blobs), "source_mp": round(mp, 1), "cores": cores, "rates": {}}
    pool = ThreadPoolExecutor(cores)
    try:
        for name, fn in decoders(spec).items():
            fn(blobs[0])  # warm-up
            row = {}
            for label, run in (("1_thread", lambda fn=fn: [fn(b) for b in blobs]),
                               ("all_cores", lambda fn=fn: list(pool.map(fn, blobs)))):
                best = float("inf")
                for _ in range(reps):
                    t = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - t)
                row[label] = {"images_per_s": round(len(blobs) / best, 2), "mp_per_s": round(mp / best, 1)}
            out["rates"][name] = row
    finally:
        pool.shutdown()
        cv2.setNumThreads(-1)
    return out

