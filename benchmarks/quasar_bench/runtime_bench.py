"""Throughput of the runtime: end to end, decode/preprocess alone, and the model alone.

    python -m quasar_bench.runtime_bench --model model.onnx [--mp 12 1] [--count 48] [--batch-size 8] [--workers 2]

Test images are made from the working-copy photos (:func:`quasar.photos.fetch_photos`), upscaled to
the requested megapixels and saved as JPEG (quality 90) in a temporary folder, so camera-size files
exist without downloading any. "model only" feeds already preprocessed batches straight to the
backend, so end-to-end vs model-only shows what decoding and the pipeline cost.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import tempfile
import time

import cv2
import numpy as np

from quasar.runtime.prepare import Preparer
from quasar.runtime.scorer import Scorer
from quasar.runtime.sources import Item


def make_jpegs(folder: str, megapixels: float, count: int, quality: int = 90) -> list[str]:
    """``count`` JPEGs of about ``megapixels`` MP (4:3 or the photo's aspect), from real photos."""
    from quasar.photos import fetch_photos

    photos = fetch_photos()
    out = []
    for i, p in zip(range(count), itertools.cycle(photos)):
        img = cv2.imread(p.path)
        h, w = img.shape[:2]
        s = math.sqrt(megapixels * 1e6 / (h * w))
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        path = os.path.join(folder, f"{megapixels:g}mp_{i:04d}.jpg")
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(path)
    return out


def _timed(fn, cpu: list | None = None) -> float:
    """Wall seconds of ``fn()``; appends the process CPU seconds (all threads) to ``cpu`` if given."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    if cpu is not None:
        cpu.append(time.process_time() - c)
    return time.perf_counter() - t


def bench(model: str, files: list[str], batch_size: int, workers: int, threads: int | None = None) -> dict:
    """images/s end to end, decode+preprocess only (``workers`` threads), and model only."""
    from concurrent.futures import ThreadPoolExecutor

    with Scorer(model, batch_size=batch_size, workers=workers, threads=threads) as s:
        s.score(files[: max(2, batch_size)])  # warm-up: session, caches

        def score_all() -> None:
            for r in s.score_iter(files):
                if not r.ok:
                    raise RuntimeError(f"{r.source}: {r.error}")

        cpu: list[float] = []
        dt = _timed(score_all, cpu)
        prep = Preparer(s.spec)
        with ThreadPoolExecutor(workers) as pool:
            arrays: list[np.ndarray] = []
            dp = _timed(lambda: arrays.extend(pool.map(lambda f: prep(Item(f, path=f)), files)))
        by_shape: dict[tuple, list[np.ndarray]] = {}
        for a in arrays:
            by_shape.setdefault(a.shape, []).append(a)
        batches = [np.stack(v[i : i + batch_size]) for v in by_shape.values() for i in range(0, len(v), batch_size)]
        s.backend.run(batches[0])
        dm = _timed(lambda: [s.backend.run(b) for b in batches], cpu)
        shapes = sorted({a.shape[:2] for a in arrays})
        return {"end_to_end": len(files) / dt, "preprocess_only": len(files) / dp, "model_only": len(files) / dm,
                "cpu_ms_end_to_end": 1e3 * cpu[0] / len(files), "cpu_ms_model_only": 1e3 * cpu[1] / len(files),
                "backend": s.backend.name, "shapes": shapes}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="fused model (default: the default model)")
    ap.add_argument("--mp", type=float, nargs="+", default=[12.0, 1.0], help="megapixels of the test JPEGs")
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[8])
    ap.add_argument("--workers", type=int, nargs="+", default=[os.cpu_count() or 1])
    ap.add_argument("--threads", type=int, default=None, help="inference intra-op threads")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quasar-bench-") as tmp:
        for mp in args.mp:
            files = make_jpegs(tmp, mp, args.count)
            for bs, w in itertools.product(args.batch_size, args.workers):
                r = bench(args.model, files, bs, w, args.threads)
                print(f"{mp:g} MP JPEG x{len(files)}  batch {bs:2d} workers {w}  [{r['backend']}, {os.cpu_count()} cores]  "
                      f"end-to-end {r['end_to_end']:6.1f} img/s | preprocess only {r['preprocess_only']:6.1f} img/s | "
                      f"model only {r['model_only']:6.1f} img/s | CPU ms/img end-to-end {r['cpu_ms_end_to_end']:.0f}, "
                      f"model only {r['cpu_ms_model_only']:.0f} | shapes {len(r['shapes'])}", flush=True)


if __name__ == "__main__":
    main()
