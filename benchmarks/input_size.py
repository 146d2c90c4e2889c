"""Input size vs quality and speed (issue 24, item 3): the default model at 384x512 and at 320x448.

The shipped fp32 model has free height and width, so the same graph scores either size; only the
preprocessing target changes (spec ``native``, long side 512 vs 448, sides multiples of 32: a 4:3
photo becomes 384x512 vs 320x448). In one run, on the same images:

* **quality** on a small held-out grid: ``--photos`` held-out photos (:func:`quasar.photos.balanced`
  over the ``heldout`` split, never anchors) x ``TYPES`` (one or two per head family) x levels
  0 (pristine), 1, 2 and 5 (:func:`quasar.centroids.distortions.distort` on the decoded working copy,
  as the anchors are made), preprocessed to each size (:func:`quasar.preprocess.preprocess`) and
  scored by the runtime's ONNX Runtime backend. Reported for the ``quality`` head: close-call accuracy
  P(pristine > level 1) and P(pristine > level 2) (:func:`quasar.centroids.families.close_call_wins`),
  per-type SRCC of score vs level (:func:`~quasar.centroids.families.within_srcc`, averaged over
  photos), and the per-head SRCC of the 320x448 scores against the 384x512 ones over all images;
* **speed**, model only: batch 1 and batch 8 of held-out photos cropped to 4:3 and preprocessed to each size, the two
  sizes interleaved round by round (which goes first alternates), wall and process CPU time per image.

Small by design (the machine is shared): a trend, not a verdict; the grid of
``benchmarks/quality_synthetic.py`` is the full protocol.

Run: ``nice -n 10 python benchmarks/input_size.py [--photos 12] [--rounds 8]``; writes
``benchmarks/results/input_size.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quasar_bench import camera  # noqa: E402
from quasar_bench.lscpu import isa_summary, lscpu  # noqa: E402
from quasar_bench.results import write_results  # noqa: E402

from quasar.centroids.distortions import distort  # noqa: E402
from quasar.centroids.families import close_call_wins, within_srcc  # noqa: E402
from quasar.eval.metrics import bootstrap_interval, srcc  # noqa: E402
from quasar.io import read_rgb  # noqa: E402
from quasar.machine import usable_cores  # noqa: E402
from quasar.photos import balanced, fetch_photos  # noqa: E402
from quasar.preprocess import preprocess  # noqa: E402
from quasar.runtime.backends import create_backend  # noqa: E402
from quasar.runtime.model import load_model_info  # noqa: E402
from quasar.shipped import shipped_model_path  # noqa: E402

SIZES = (512, 448)  # the spec's long side: 384x512 (the default) and 320x448 for a 4:3 photo
TYPES = ("gaussian_blur", "motion_blur", "white_noise", "jpeg", "darken", "color_saturation_1", "pixelate", "haze")
LEVELS = (1, 2, 5)
HEAD = "quality"
RULE = 0.01  # issue 24: a smaller input must keep held-out SRCC and close-call accuracy within this
SPEED_BATCHES = (1, 8)


def score_images(backend, images: list[np.ndarray], spec) -> np.ndarray:
    """Scores [N, K] of RGB images preprocessed by ``spec``, run in same-shape batches of up to 8."""
    px = [preprocess(im, spec) for im in images]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(px):
        groups.setdefault(x.shape, []).append(i)
    res: dict[int, np.ndarray] = {}
    for idx in groups.values():
        for k in range(0, len(idx), 8):
            chunk = idx[k : k + 8]
            scores, _ = backend.run(np.stack([px[i] for i in chunk]))
            res.update(zip(chunk, np.asarray(scores, dtype=np.float64), strict=True))
    return np.stack([res[i] for i in range(len(px))])


def grid_images(photos) -> tuple[list[np.ndarray], list[tuple[int, int, int]]]:
    """Pristine + distorted images and their (photo, type, column) slots; column 0 is pristine."""
    images, slots = [], []
    for p, photo in enumerate(photos):
        img = read_rgb(photo.path)
        images.append(img)
        slots.append((p, -1, 0))
        for t, kind in enumerate(TYPES):
            for c, lv in enumerate(LEVELS, start=1):
                images.append(distort(img, kind, lv))
                slots.append((p, t, c))
    return images, slots


def to_grid(scores: np.ndarray, slots, n_photos: int) -> np.ndarray:
    """[P, T, 1 + L] grid of one head's scores (the pristine score repeated in column 0 of every type)."""
    g = np.zeros((n_photos, len(TYPES), 1 + len(LEVELS)))
    for s, (p, t, c) in zip(scores, slots, strict=True):
        if c == 0:
            g[p, :, 0] = s
        else:
            g[p, t, c] = s
    return g


def quality_at(grid: np.ndarray) -> dict:
    wins = close_call_wins(grid)
    within = within_srcc(grid)  # [P, T]
    return {"p_pristine_over_L1": float(wins["pristine_over_L1"].mean()),
            "p_pristine_over_L2": float(wins["pristine_over_L2"].mean()),
            "p_pristine_over_L1_per_type": {t: float(wins["pristine_over_L1"][:, j].mean()) for j, t in enumerate(TYPES)},
            "per_type_srcc": {t: float(within[:, j].mean()) for j, t in enumerate(TYPES)},
            "mean_per_type_srcc": float(within.mean()),
            "mean_score_by_level": [float(grid[:, :, c].mean()) for c in range(grid.shape[2])]}


def paired_delta(ref: np.ndarray, other: np.ndarray) -> dict:
    """Delta (other - ref) of close-call accuracy and mean per-type SRCC, with 95 % bootstrap intervals over
    photos (the same photos resampled for both sizes: a paired comparison)."""
    stats = {"p_pristine_over_L1": lambda g: close_call_wins(g)["pristine_over_L1"],
             "p_pristine_over_L2": lambda g: close_call_wins(g)["pristine_over_L2"],
             "mean_per_type_srcc": within_srcc}
    out = {}
    for name, fn in stats.items():
        d = fn(other).mean(axis=1) - fn(ref).mean(axis=1)  # per photo [P]
        lo, hi = bootstrap_interval(lambda idx, d=d: float(d[idx].mean()), len(d))
        out[name] = {"delta": float(d.mean()), "ci95": [lo, hi]}
    return out


def speed(backend, batches: dict[int, dict[int, np.ndarray]], rounds: int, log) -> dict:
    """Per size and batch: median wall and CPU ms per image over ``rounds`` interleaved rounds."""
    for size in batches:  # warm-up: the shape sessions are made on first use
        for b in batches[size].values():
            backend.run(b)
    wall = {(s, n): [] for s in batches for n in SPEED_BATCHES}
    cpu = {(s, n): [] for s in batches for n in SPEED_BATCHES}
    order = list(batches)
    for r in range(rounds):
        for s in (order if r % 2 == 0 else order[::-1]):
            for n, b in batches[s].items():
                t, c = time.perf_counter(), time.process_time()
                backend.run(b)
                wall[(s, n)].append((time.perf_counter() - t) * 1e3 / n)
                cpu[(s, n)].append((time.process_time() - c) * 1e3 / n)
        log(f"speed round {r + 1}/{rounds}")
    out = {}
    for (s, n), w in wall.items():
        shape = list(batches[s][n].shape[1:3])
        out[f"{s}/b{n}"] = {"size": s, "shape": shape, "batch": n, "wall_ms_per_image_median": float(np.median(w)),
                            "wall_ms_per_image_min": float(np.min(w)),
                            "cpu_ms_per_image_median": float(np.median(cpu[(s, n)])), "rounds": len(w)}
    return out


def markdown(d: dict) -> list[str]:
    sizes = [str(s) for s in d["sizes"]]
    shape = {s: "x".join(map(str, d["shape_4_3"][s])) for s in sizes}
    q = d["quality"]
    lines = ["# Input size: quality and speed of the default model at two preprocessing targets (issue 24, item 3)", "",
             f"Machine: {d['cpu']['model_name']} ({d['isa']}), {d['cores']} usable cores, load average "
             f"{d['load_avg'][0]:.1f} / {d['load_avg'][1]:.1f} at start / end. Created {d['created']}. Model "
             f"{d['model']} (fp32, ONNX Runtime, the runtime's backend); spec `native`, long side 512 (default) "
             "vs 448, multiples of 32.", "",
             f"Quality grid: {d['n_photos']} held-out photos × {len(d['types'])} types × levels 0, "
             f"{', '.join(map(str, d['levels']))} = {d['n_images']} images per size; `{HEAD}` head. Small: "
             "a trend, not a verdict.", "",
             "| | " + " | ".join(f"{shape[s]} (long side {s})" for s in sizes) + " | Δ |",
             "|---|" + "---|" * (len(sizes) + 1)]

    def row(label, key, nd=3):
        vals = [q[s][key] for s in sizes]
        lines.append(f"| {label} | " + " | ".join(f"{v:.{nd}f}" for v in vals) + f" | {vals[1] - vals[0]:+.{nd}f} |")

    row("close calls: P(pristine > level 1)", "p_pristine_over_L1")
    row("close calls: P(pristine > level 2)", "p_pristine_over_L2")
    row("per-type SRCC (score vs level), mean over types", "mean_per_type_srcc")
    lines.append("| *Δ with 95 % bootstrap CI over photos (paired)* | | | " + "; ".join(
        f"{k.replace('_', ' ')}: {v['delta']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]" for k, v in d["delta"].items())
        + " |")
    for t in d["types"]:
        vals = [q[s]["per_type_srcc"][t] for s in sizes]
        p1 = [q[s]["p_pristine_over_L1_per_type"][t] for s in sizes]
        lines.append(f"| {t}: SRCC / P(pristine > L1) | " + " | ".join(f"{v:.3f} / {p:.3f}" for v, p in zip(vals, p1, strict=True))
                     + f" | {vals[1] - vals[0]:+.3f} / {p1[1] - p1[0]:+.3f} |")
    a = d["agreement_vs_default"]
    lines += ["", f"Scores at {shape[sizes[1]]} vs {shape[sizes[0]]} over all {d['n_images']} images: worst-head SRCC "
              f"{a['worst_srcc']:.4f} ({a['worst_head']}), `{HEAD}` head {a['per_head'][HEAD]:.4f}, max |Δ score| "
              f"{a['max_abs_diff']:.3f}.", "",
              "## Model-only speed (same run, sizes interleaved)", "",
              "Wall time is distorted by other jobs on a shared machine; process CPU time (all of ORT's threads) "
              "much less so: compare the CPU column.", "",
              "| input | batch | wall ms/image (median, min) | CPU ms/image (median, all threads) |", "|---|---|---|---|"]
    for r in d["speed"].values():
        lines.append(f"| {'x'.join(map(str, r['shape']))} | {r['batch']} | {r['wall_ms_per_image_median']:.1f} "
                     f"({r['wall_ms_per_image_min']:.1f}) | {r['cpu_ms_per_image_median']:.1f} |")
    for n in SPEED_BATCHES:
        a_, b_ = d["speed"][f"{sizes[0]}/b{n}"], d["speed"][f"{sizes[1]}/b{n}"]
        lines.append("")
        lines.append(f"Batch {n}: {shape[sizes[1]]} takes {b_['wall_ms_per_image_median'] / a_['wall_ms_per_image_median']:.2f}× "
                     f"the wall time and {b_['cpu_ms_per_image_median'] / a_['cpu_ms_per_image_median']:.2f}× the CPU time of "
                     f"{shape[sizes[0]]} (pixel ratio {d['pixel_ratio']:.2f}).")
    dl = d["delta"]
    wk = min(dl, key=lambda k: dl[k]["delta"])
    worst = dl[wk]["delta"]
    verdict = ("within" if worst >= -RULE else "outside")
    lines += ["", f"Issue 24's rule for a smaller input: held-out SRCC and close-call accuracy within {RULE}. On this grid "
              f"{shape[sizes[1]]} is **{verdict}** it (largest loss: {wk.replace('_', ' ')} {worst:+.3f}, 95 % CI "
              f"[{dl[wk]['ci95'][0]:+.3f}, {dl[wk]['ci95'][1]:+.3f}] over photos; small grid); "
              + ("the default stays 384x512." if verdict == "outside" else
                 "confirm on the full protocol (`benchmarks/quality_synthetic.py`) before changing the default.")]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=12, help="held-out photos [12]")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved speed rounds [8]")
    ap.add_argument("--out", default=str(HERE / "results" / "input_size"), help="results path without suffix")
    ap.add_argument("--render", action="store_true", help="rewrite the Markdown from --out's JSON")
    args = ap.parse_args(argv)
    if args.render:
        import json

        data = json.loads(Path(f"{args.out}.json").read_text())
        write_results(args.out, data, markdown(data))
        return 0

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    load0 = os.getloadavg()
    info = load_model_info(shipped_model_path())
    specs = {s: dataclasses.replace(info.spec, size=s) for s in SIZES}
    backend = create_backend(info, "onnxruntime", "cpu", threads=usable_cores())
    photos = balanced([p for p in fetch_photos() if p.split == "heldout"], args.photos)
    log(f"{len(photos)} held-out photos; distorting")
    images, slots = grid_images(photos)
    k = info.heads.index(HEAD)
    scores, quality = {}, {}
    for s in SIZES:
        log(f"scoring {len(images)} images at long side {s}")
        scores[s] = score_images(backend, images, specs[s])
        quality[str(s)] = quality_at(to_grid(scores[s][:, k], slots, len(photos)))
    grids = {s: to_grid(scores[s][:, k], slots, len(photos)) for s in SIZES}
    delta = paired_delta(grids[SIZES[0]], grids[SIZES[1]])
    a, b = scores[SIZES[0]], scores[SIZES[1]]
    per = {h: float(srcc(a[:, j], b[:, j])) for j, h in enumerate(info.heads)}
    worst = min(per, key=per.get)
    agree = {"per_head": per, "worst_head": worst, "worst_srcc": per[worst], "max_abs_diff": float(np.abs(a - b).max())}
    # speed: the first 8 held-out photos centre-cropped to 4:3 landscape (a camera photo's shape), so
    # every batch is one shape: 384x512 and 320x448
    sp_imgs = [camera.crop_to_aspect(read_rgb(p.path), 4, 3) for p in photos[:8]]
    sp_imgs = (sp_imgs * 8)[:8]
    batches = {}
    for s in SIZES:
        px = [preprocess(im, specs[s]) for im in sp_imgs]
        if len({x.shape for x in px}) != 1:
            raise RuntimeError(f"4:3 crops gave several shapes at long side {s}: {sorted({x.shape for x in px})}")
        batches[s] = {n: np.stack(px[:n]) for n in SPEED_BATCHES}
    sp = speed(backend, batches, args.rounds, log)
    backend.close()
    cpu = lscpu()
    shape_4_3 = {str(s): list(preprocess(np.zeros((3000, 4000, 3), np.uint8), specs[s]).shape[:2]) for s in SIZES}
    data = {"created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "cpu": cpu, "isa": isa_summary(cpu["flags"]),
            "cores": usable_cores(), "load_avg": [load0[0], os.getloadavg()[0]], "model": os.path.basename(info.path),
            "sizes": list(SIZES), "shape_4_3": shape_4_3,
            "pixel_ratio": float(np.prod(shape_4_3[str(SIZES[1])]) / np.prod(shape_4_3[str(SIZES[0])])),
            "types": list(TYPES), "levels": list(LEVELS), "n_photos": len(photos), "n_images": len(images),
            "photos": [p.name for p in photos], "quality": quality, "delta": delta, "agreement_vs_default": agree,
            "speed": sp, "quality_head_grids": {str(s): g.round(6).tolist() for s, g in grids.items()}}
    write_results(args.out, data, markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
