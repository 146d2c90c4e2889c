"""Which ``fit`` should ``quasar export onnx --static HxW`` default to: stretch or crop?

A static graph sees every image at exactly H x W; the dynamic default model sees it at its own
aspect ratio (long side capped at 512, sides multiples of 32). This measures, on held-out photos
(the ``heldout`` split, never anchors) and graded distortions of them, how closely each fit
reproduces the dynamic model's scores, all through the real runtime (``quasar.runtime.Scorer`` on
the same decoded arrays):

* SRCC of the static model's scores against the dynamic model's, per head, over all images
  (photos ranked against each other and against their distorted copies);
* the mean within-photo SRCC of the ``quality`` score against the distortion level (pristine = 0),
  for each model: does the static model still rank the levels like the dynamic one?

Run: ``python benchmarks/static_fit.py [--photos 20] [--size 384x512]``; writes
``benchmarks/results/static_fit.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from quasar_bench.results import write_results

from quasar.centroids.distortions import distort
from quasar.eval.metrics import srcc
from quasar.export.onnx_export import export_onnx
from quasar.helpfmt import parse_hw
from quasar.io import read_rgb
from quasar.machine import machine_info
from quasar.photos import balanced, fetch_photos
from quasar.runtime import Scorer
from quasar.shipped import shipped_model_path

HERE = Path(__file__).parent
TYPES = ("gaussian_blur", "motion_blur", "jpeg", "white_noise", "darken", "brighten", "color_saturation_1",
         "pixelate", "contrast_change")
LEVELS = (1, 3, 5)


def score(model: str, images: list[np.ndarray], heads: list[str]) -> np.ndarray:
    with Scorer(model, backend="onnxruntime", device="cpu", workers=1) as s:
        recs = s.score(images)
    bad = [r.error for r in recs if r.error]
    if bad:
        raise RuntimeError(f"{model}: {bad[0]}")
    return np.array([[r.scores[h] for h in heads] for r in recs])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--size", default="384x512", help="static H x W")
    ap.add_argument("--out", default=str(HERE / "results" / "static_fit"))
    args = ap.parse_args(argv)
    h, w = parse_hw(args.size, "--size")
    photos = balanced([p for p in fetch_photos() if p.split == "heldout"], args.photos)
    images, photo_of, level_of, type_of = [], [], [], []
    for i, p in enumerate(photos):
        img = read_rgb(p.path)
        images.append(img)
        photo_of.append(i)
        level_of.append(0)
        type_of.append(-1)
        for k, t in enumerate(TYPES):
            for lv in LEVELS:
                images.append(distort(img, t, lv))
                photo_of.append(i)
                level_of.append(lv)
                type_of.append(k)
    photo_of, level_of, type_of = np.array(photo_of), np.array(level_of), np.array(type_of)
    dynamic = shipped_model_path()
    from quasar.runtime.model import load_model_info

    heads = list(load_model_info(dynamic).heads)
    t0 = time.time()
    scores = {"dynamic": score(dynamic, images, heads)}
    with tempfile.TemporaryDirectory() as tmp:
        for fit in ("stretch", "crop"):
            path = export_onnx(None, "default", os.path.join(tmp, f"{fit}.onnx"), static=(h, w), fit=fit,
                               clip_form="clip")
            scores[fit] = score(path, images, heads)
    q = heads.index("quality")
    aspects = [read_rgb(p.path).shape[:2] for p in photos]
    portrait = np.array([a[0] > a[1] for a in aspects])

    def within(s: np.ndarray, mask: np.ndarray | None = None) -> float:
        vals = []
        for i in range(len(photos)):
            if mask is not None and not mask[i]:
                continue
            for t in range(len(TYPES)):
                sel = (photo_of == i) & ((type_of == t) | (type_of == -1))
                vals.append(srcc(-level_of[sel], s[sel, q]))
        return float(np.mean(vals)) if vals else float("nan")

    rows = {}
    for name in ("stretch", "crop"):
        rows[name] = {
            "srcc_vs_dynamic": {hd: srcc(scores["dynamic"][:, k], scores[name][:, k]) for k, hd in enumerate(heads)},
            "srcc_vs_dynamic_portrait_photos": srcc(scores["dynamic"][np.isin(photo_of, np.where(portrait)[0]), q],
                                                    scores[name][np.isin(photo_of, np.where(portrait)[0]), q])
            if portrait.any() else None,
            "mean_abs_diff_quality": float(np.abs(scores["dynamic"][:, q] - scores[name][:, q]).mean()),
            "within_photo_level_srcc": within(scores[name]),
        }
    rows["dynamic"] = {"within_photo_level_srcc": within(scores["dynamic"])}
    report = {"machine": machine_info(), "static_size": [h, w], "photos": len(photos), "portrait_photos": int(portrait.sum()),
              "types": list(TYPES), "levels": list(LEVELS), "images": len(images), "seconds": round(time.time() - t0, 1),
              "results": rows}
    lines = [f"# Static graph fit ({h}x{w}): stretch vs crop against the dynamic default model", "",
             f"{len(photos)} held-out photos ({int(portrait.sum())} portrait) x {len(TYPES)} types x levels "
             f"{list(LEVELS)} + pristine = {len(images)} images, through the runtime.", "",
             "| fit | SRCC vs dynamic: quality | mean over heads | portrait photos (quality) | mean abs diff (quality) "
             "| within-photo level SRCC (quality) |", "|---|---|---|---|---|---|"]
    for name in ("stretch", "crop"):
        r = rows[name]
        s = r["srcc_vs_dynamic"]
        lines.append(f"| {name} | {s['quality']:.4f} | {np.mean(list(s.values())):.4f} | "
                     f"{r['srcc_vs_dynamic_portrait_photos'] or float('nan'):.4f} | {r['mean_abs_diff_quality']:.4f} | "
                     f"{r['within_photo_level_srcc']:.4f} |")
    lines.append(f"| dynamic (reference) | 1 | 1 | 1 | 0 | {rows['dynamic']['within_photo_level_srcc']:.4f} |")
    write_results(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
