"""Quality protocol: held-out photos x every anchor type, leave-one-family-out, classical baselines.

All in one run, on the same images, with 95 % bootstrap confidence intervals over photos:

(a) **held-out photos** (the ``heldout`` split of :func:`quasar.photos.fetch_photos`, never anchors)
    x every distortion type x 5 levels: per-type SRCC (Spearman of the score against the level over
    one photo's pristine + 5 levels, averaged over photos), per family, and pooled SRCC (over all
    images against ``1 - level/5``, so different photos are ranked against each other too);
(b) **leave-one-family-out**: for each head family, the default recipe is refitted on the anchors
    without that family's types, and its ``quality`` head scores that family's held-out images, the
    honest measure of distortions the model never saw;
(c) **baselines** side by side: the previous default (issue 8's six softmin-combined family heads,
    ``benchmarks/baselines/default_quality_v2.qpack.json``), the paper's **plain QUASAR** (one
    Mean-centroid head, pristine vs every distorted anchor, on the same tapped encoder and anchors),
    the former default pack (effnet-lite0 pooled embedding, six types,
    Mean centroids: ``benchmarks/baselines/default_quality_v1.qpack.json``), BRISQUE (pip
    ``brisque`` 0.2.0, LIVE-trained SVM), NIQE (fitted on the *anchor* pristine photos, since its
    original parameters cannot be downloaded here) and the variance of the Laplacian;
(d) the **JPEG-quality curve**: the held-out pristine photos saved as PNG and as JPEG at qualities
    95..50, scored by the current and the former default through the real runtime (encoded files in,
    scores out), mean score and mean difference to the PNG;
(e) the exported graphs through ONNX Runtime on 8 held-out photos x 25 types x 3 levels: SRCC of
    int8 and of the former default against the default fp32, and the time per image of each (one
    worker, timed in turn, three rounds: compare ratios within the run).

(f) **close calls** for every method and type (same photo, same type): P(pristine scores above level
    1), P(pristine above level 2) and P(level k above level k+1), with CIs over photos; the
    ``--explain`` confusion matrix (single distortions at levels 3-5: is the lowest explanation head
    the true family?); and what a ``quality`` score reads (held-out pristine median, 10th and 90th
    percentile; mean at each level), the numbers the README quotes.

Types: the 25 KADID types and the camera defects beyond them (optics, white balance, mixtures).

Scores of (a) and (b) come from cached ``effnet-lite0+taps`` embeddings and the pack's own numpy
head (:meth:`CentroidPack.score_embeddings`, which equals the graph to 1e-5); the former default
reads its pooled embedding off the same vectors (the ``bn2.mean`` block is EfficientNet-Lite0's
pooled feature, up to scale, and cosine scores ignore scale).

Run: ``python benchmarks/quality_synthetic.py [--quick] [--photos N]``; writes
``benchmarks/results/quality_synthetic.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from quasar_bench.results import write_results

from quasar.centroids.default import DEFAULT_ANCHOR_PHOTOS, DEFAULT_ENCODER, anchor_grid
from quasar.centroids.distortions import ANCHOR_TYPES, distort
from quasar.centroids.families import (
    EXPLAIN_LEVELS,
    MIXTURE_TYPES,
    QUALITY_HEADS,
    AnchorGrid,
    HeadConfig,
    close_call_wins,
    fit_head,
    fit_quality,
    grid_scores,
    part_name,
    pooled_srcc,
    within_srcc,
)
from quasar.centroids.pack import CentroidPack
from quasar.eval.metrics import bootstrap_interval
from quasar.io import read_rgb
from quasar.machine import machine_info
from quasar.photos import balanced, fetch_photos

HERE = Path(__file__).parent
RESULTS = HERE / "results"
FORMER_PACK = HERE / "baselines" / "default_quality_v1.qpack.json"
# The default of issue 8 (six ridge family heads over the 25 KADID types, combined by softmin): the
# "before" of the close-call work, scored from the same embeddings.
PREVIOUS_PACK = HERE / "baselines" / "default_quality_v2.qpack.json"
JPEG_QUALITIES = (95, 92, 85, 75, 50)
FAMILY_OF = {t: f for f, ts in QUALITY_HEADS.items() for t in ts} | {t: "mixture" for t in MIXTURE_TYPES}


# --------------------------------------------------------------------------- metrics with CIs


def summary(scores: np.ndarray, grid: AnchorGrid, types: list[str], n_boot: int, seed: int = 0) -> dict:
    """Per-type, per-family and pooled SRCC over the given types; bootstrap over photos."""
    tidx = grid.type_index(types)
    sub = scores[:, tidx]
    per = within_srcc(sub)  # [P, T]

    def ci(stat) -> list[float]:
        v = float(stat(np.arange(len(per))))
        if not n_boot:
            return [v, v, v]
        return [v, *bootstrap_interval(stat, len(per), n=n_boot, seed=seed)]

    out = {"per_type": {t: ci(lambda b, j=j: per[b, j].mean()) for j, t in enumerate(types)}}
    fams = sorted({FAMILY_OF[t] for t in types})
    out["per_family"] = {f: ci(lambda b, f=f: per[b][:, [FAMILY_OF[t] == f for t in types]].mean()) for f in fams}
    out["mean_per_type"] = ci(lambda b: per[b].mean())
    out["min_type"] = float(per.mean(0).min())
    out["pooled"] = ci(lambda b: pooled_srcc(sub[b], grid.levels))
    out["close_calls"] = close_call_summary(sub, types, ci)
    return out


def close_call_summary(sub: np.ndarray, types: list[str], ci) -> dict:
    """Pairwise accuracies (same photo, same type): P(pristine > level 1), P(pristine > level 2) and
    P(level k > level k + 1) averaged over k, overall, per family and per type, with CIs over photos."""
    wins = close_call_wins(sub)  # [P, T] each
    fams = sorted({FAMILY_OF[t] for t in types})
    out = {}
    for name, w in wins.items():
        out[name] = {"all": ci(lambda b, w=w: w[b].mean()),
                     "per_family": {f: ci(lambda b, w=w, f=f: w[b][:, [FAMILY_OF[t] == f for t in types]].mean())
                                    for f in fams},
                     "per_type": {t: float(w[:, j].mean()) for j, t in enumerate(types)}}
    return out


def explain_confusion(pack: CentroidPack, grid: AnchorGrid, levels: tuple[int, ...] = EXPLAIN_LEVELS) -> dict:
    """For single distortions at ``levels``: how often the lowest explanation head (the family heads of a
    model without them) is the true family
    (``quasar score --explain``'s ``reason``), and the whole confusion matrix (rows: true family)."""
    fams = list(QUALITY_HEADS)
    idx = [pack.output_names.index(f) for f in fams]
    types = [t for t in grid.types if t in FAMILY_OF and FAMILY_OF[t] != "mixture"]
    ti = grid.type_index(types)
    li = [grid.levels.index(v) for v in levels]
    e = grid.distorted[:, ti][:, :, li].reshape(-1, grid.distorted.shape[-1]).astype(np.float64)
    fam_scores = pack.score_embeddings(e)[0][:, idx]
    pred = np.asarray(fams)[fam_scores.argmin(-1)].reshape(len(grid.photos), len(types), len(levels))
    truth = np.asarray([FAMILY_OF[t] for t in types])[None, :, None]
    matrix = {f: {g: int(((truth == f) & (pred == g)).sum()) for g in fams} for f in fams}
    per_family = {f: float((pred == truth)[:, [FAMILY_OF[t] == f for t in types]].mean()) for f in fams}
    return {"levels": list(levels), "accuracy": float((pred == truth).mean()), "per_family": per_family,
            "matrix": matrix}


def score_scale(sc: np.ndarray, grid: AnchorGrid) -> dict:
    """What a ``quality`` score reads on held-out photos: the spread of pristine scores (median, 10th and
    90th percentile, mean) and the mean at each distortion level over every type."""
    pristine = sc[:, 0, 0]
    return {"pristine": {"median": float(np.median(pristine)), "p10": float(np.percentile(pristine, 10)),
                         "p90": float(np.percentile(pristine, 90)), "mean": float(pristine.mean())},
            "level_means": {str(v): float(sc[:, :, k + 1].mean()) for k, v in enumerate(grid.levels)}}


def plain_quasar(anchor_g: AnchorGrid, types: list[str]):
    """The paper's method on the same tapped encoder and anchors: one Mean-centroid head (pristine vs
    every distorted anchor), calibrated like the shipped heads; returns its logit function."""
    head = fit_head(anchor_g, "quality", types, np.ones(len(anchor_g.photos), bool), HeadConfig("centroid", 0.0, 1))
    return head.logits


# --------------------------------------------------------------------------- classical baselines


def pixel_scores(grid: AnchorGrid, fns: dict) -> dict[str, np.ndarray]:
    """``fn(rgb) -> higher-is-better`` for each of ``fns`` over the grid's images, each image decoded
    and distorted once for all of them. Results are cached per photo (content hash, the distortion
    types' code signatures and the metric names), so a rerun of the benchmark costs nothing here."""
    import hashlib

    from quasar.centroids.distortions import signature
    from quasar.paths import cache_dir

    p, t, n_l = grid.distorted.shape[:3]
    out = {name: np.full((p, t, 1 + n_l), np.nan) for name in fns}
    cache = cache_dir() / "bench" / "pixel_scores"
    cache.mkdir(parents=True, exist_ok=True)
    sig = hashlib.sha1("|".join([*grid.types, *map(signature, grid.types), *map(str, grid.levels)]).encode())
    for i, path in enumerate(grid.photos):
        key = hashlib.sha1(open(path, "rb").read() + sig.digest()).hexdigest()[:24]
        todo = {}
        for name, fn in fns.items():
            f = cache / f"{key}-{hashlib.sha1(name.encode()).hexdigest()[:8]}.npy"
            if f.exists():
                out[name][i] = np.load(f)
            else:
                todo[name] = (fn, f)
        if not todo:
            continue
        img = read_rgb(path)
        for name, (fn, _) in todo.items():
            out[name][i, :, 0] = fn(img)
        for j, kind in enumerate(grid.types):
            for k, lv in enumerate(grid.levels):
                d = distort(img, kind, lv)
                for name, (fn, _) in todo.items():
                    out[name][i, j, 1 + k] = fn(d)
        for name, (_, f) in todo.items():
            np.save(f, out[name][i])
        print(f"pixel metrics: photo {i + 1}/{p}", file=sys.stderr, flush=True)
    return out


def laplacian_variance(rgb: np.ndarray) -> float:
    return float(np.log1p(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()))


# --------------------------------------------------------------------------- the JPEG curve


def jpeg_curve(photos: list[str], models: dict[str, str]) -> dict:
    """Mean score of PNG vs JPEG q in JPEG_QUALITIES through the runtime, per model file."""
    import tempfile

    from quasar.runtime import Scorer

    with tempfile.TemporaryDirectory() as tmp:
        files = {"png": []} | {f"q{q}": [] for q in JPEG_QUALITIES}
        for i, path in enumerate(photos):
            bgr = cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2BGR)
            files["png"].append(os.path.join(tmp, f"{i}.png"))
            cv2.imwrite(files["png"][-1], bgr)
            for q in JPEG_QUALITIES:
                files[f"q{q}"].append(os.path.join(tmp, f"{i}_q{q}.jpg"))
                cv2.imwrite(files[f"q{q}"][-1], bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
        out = {}
        for name, model in models.items():
            with Scorer(model) as scorer:
                head = "quality"
                res = {}
                for key, paths in files.items():
                    recs = list(scorer.score_iter(paths))
                    res[key] = np.array([r.scores[head] for r in recs])
                png = res["png"]
                out[name] = {k: {"mean": float(v.mean()), "mean_diff_to_png": float((v - png).mean()),
                                 "max_abs_diff_to_png": float(np.abs(v - png).max())} for k, v in res.items()}
    return out


# --------------------------------------------------------------------------- the exported models


def former_model(out_dir: Path) -> str:
    """The former default pack exported with the current exporter (cached in ``out_dir``)."""
    from quasar.export.onnx_export import export_onnx

    pack = CentroidPack.load(FORMER_PACK)
    from quasar.export.metadata import EXPORT_REVISION

    path = out_dir / f"former-{pack.content_hash[7:19]}-r{EXPORT_REVISION}-fp32.onnx"  # a new exporter: new file
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        export_onnx(None, pack, path)
    return str(path)


def model_checks(photos: list[str], models: dict[str, str], reps: int = 3) -> dict:
    """Through ONNX Runtime, on the same images: SRCC of every model's quality score against the first
    model's (int8 vs fp32 agreement) and time per image, each model timed in turn, ``reps`` rounds."""
    from quasar.eval.metrics import srcc
    from quasar.runtime import Scorer

    images = []
    for path in photos:
        img = read_rgb(path)
        images.append(img)
        images += [distort(img, t, lv) for t in ANCHOR_TYPES for lv in (1, 3, 5)]
    out, scores = {}, {}
    scorers = {name: Scorer(m, workers=1) for name, m in models.items()}
    try:
        for name, sc in scorers.items():  # warm-up, and the scores
            scores[name] = np.array([r.scores["quality"] for r in sc.score(images)])
        times = {name: [] for name in models}
        for _ in range(reps):
            for name, sc in scorers.items():
                t = time.perf_counter()
                sc.score(images[:64])
                times[name].append((time.perf_counter() - t) / 64)
    finally:
        for sc in scorers.values():
            sc.close()
    ref = next(iter(models))
    for name in models:
        out[name] = {"srcc_vs_" + ref: srcc(scores[name], scores[ref]),
                     "ms_per_image_median": 1000 * float(np.median(times[name])),
                     "ms_per_image_all": [round(1000 * t, 1) for t in times[name]]}
    out["images"] = len(images)
    return out


# --------------------------------------------------------------------------- run


def run(args) -> dict:
    from quasar.encoders import create_encoder

    photos = fetch_photos()
    anchors = balanced([p for p in photos if p.split == "anchor"], DEFAULT_ANCHOR_PHOTOS)
    held = [p for p in photos if p.split == "heldout"]
    if args.photos:
        held = balanced(held, args.photos)
    if args.quick:
        anchors, held = anchors[:4], held[:3]
    types = list(ANCHOR_TYPES)
    enc = create_encoder(DEFAULT_ENCODER)
    t0 = time.perf_counter()
    held_grid, _ = anchor_grid([p.path for p in held], enc, progress=args.progress)
    anchor_g, _ = anchor_grid([p.path for p in anchors], enc, progress=args.progress)
    embed_s = time.perf_counter() - t0
    pack = CentroidPack.load("default") if not args.quick else None
    report = {"machine": machine_info(), "heldout_photos": len(held_grid.photos), "anchor_photos": len(anchor_g.photos),
              "images_per_method": int(len(held_grid.photos) * (1 + len(types) * 5)), "types": types,
              "families": {f: list(ts) for f, ts in QUALITY_HEADS.items()}, "embed_seconds": round(embed_s, 1),
              "results": {}}
    cfg = None
    if pack is not None:
        qi = pack.output_names.index("quality")
        sc = grid_scores(held_grid, lambda e: pack.score_embeddings(e)[1][:, qi])
        report["results"]["default (quality head)"] = summary(sc, held_grid, types, args.bootstrap)
        report["score_scale"] = score_scale(grid_scores(held_grid, lambda e: pack.score_embeddings(e)[0][:, qi]),
                                            held_grid)
        report["explain"] = explain_confusion(pack, held_grid)
        cfg = HeadConfig.from_aggregation(pack.head("quality").aggregation)
        report["default_config"] = cfg.to_dict()
        # the family heads quality averages, on their own types: does each head see its family?
        fam = {}
        for name, ts in QUALITY_HEADS.items():
            hi = pack.output_names.index(part_name(name) if part_name(name) in pack.output_names else name)
            s_h = grid_scores(held_grid, lambda e, hi=hi: pack.score_embeddings(e)[1][:, hi])
            fam[name] = summary(s_h, held_grid, list(ts), 0)["mean_per_type"][0]
        report["family_heads_on_own_types"] = fam
    cfg = cfg or HeadConfig()
    previous = CentroidPack.load(PREVIOUS_PACK)
    pq = previous.output_names.index("quality")
    report["results"]["previous default (issue 8: 6 families, softmin)"] = summary(
        grid_scores(held_grid, lambda e: previous.score_embeddings(e)[1][:, pq]), held_grid, types, args.bootstrap)
    # the paper's plain QUASAR (Mean centroids) on the same encoder and anchors, beside the shipped heads
    plain = plain_quasar(anchor_g, types)
    report["results"]["plain QUASAR (Mean centroids, same anchors)"] = summary(
        grid_scores(held_grid, plain), held_grid, types, args.bootstrap)
    # (b) leave one family out, refitted on anchors only
    lofo_scores = np.full((len(held_grid.photos), len(types), 6), np.nan)
    for fam, ts in QUALITY_HEADS.items():
        rest = {k: v for k, v in QUALITY_HEADS.items() if k != fam}
        model = fit_quality(anchor_g, cfg, None, rest)
        s = grid_scores(held_grid, model.quality_logit)
        idx = held_grid.type_index(list(ts))
        lofo_scores[:, idx] = s[:, idx]
    single = [t for t in types if FAMILY_OF[t] != "mixture"]  # a mixture belongs to no one family
    report["results"]["default recipe, leave-one-family-out"] = summary(lofo_scores, held_grid, single, args.bootstrap)
    # (c) baselines
    former = CentroidPack.load(FORMER_PACK)
    layout = dict((n, (a, b)) for n, a, b in enc.backbone.layout)
    a, b = layout["bn2.mean"]
    sc_former = grid_scores(held_grid, lambda e: former.score_embeddings(e[:, a:b])[1][:, 0])
    report["results"]["former default (v1 pack)"] = summary(sc_former, held_grid, types, args.bootstrap)
    fns = {"laplacian variance": laplacian_variance}
    if not args.no_classical:
        from quasar.eval.classical import NiqeModel, brisque_score

        niqe = NiqeModel.fit([read_rgb(p.path) for p in anchors])
        fns["BRISQUE"] = lambda x: -brisque_score(x)
        fns["NIQE (fitted on anchor photos)"] = lambda x: -niqe.score(x)
    t1 = time.perf_counter()
    for name, sc in pixel_scores(held_grid, fns).items():
        report["results"][name] = summary(sc, held_grid, types, args.bootstrap)
    report["classical_seconds"] = round(time.perf_counter() - t1, 1)
    # (d) JPEG curve and (e) int8 agreement and cost, through the runtime
    if not args.quick and not args.no_models:
        from quasar.export.default import default_pack_model
        from quasar.paths import cache_dir

        models = {"default": default_pack_model(), "former default": former_model(cache_dir() / "bench")}
        report["jpeg_curve"] = jpeg_curve([p.path for p in held], models)
        report["model_checks"] = model_checks([p.path for p in held[:8]], {
            "default fp32": models["default"], "default int8": default_pack_model("int8"),
            "former default fp32": models["former default"]})
    return report


def to_markdown(r: dict) -> str:
    def fmt(v) -> str:
        return f"{v[0]:.3f} [{v[1]:.2f}, {v[2]:.2f}]"

    m = r["machine"]
    lines = [f"Machine: {m['cpu']} ({m['cores']} cores; {', '.join(m['isa'])}; {m['memory_gib']} GiB)",
             f"Held-out photos: {r['heldout_photos']} (x {len(r['types'])} types x 5 levels + pristine = "
             f"{r['images_per_method']} images per method); anchor photos: {r['anchor_photos']}.", ""]
    fams = list(next(iter(r["results"].values()))["per_family"])
    lines += ["| method | mean per-type SRCC | pooled SRCC | worst type | " + " | ".join(fams) + " |",
              "|---|---|---|---|" + "---|" * len(fams)]
    def cell(d: dict, key: str, f: str = "{:.2f}") -> str:
        v = d.get(key)
        return "—" if v is None else f.format(v[0] if isinstance(v, list) else v)

    for name, v in r["results"].items():
        lines.append(f"| {name} | {fmt(v['mean_per_type'])} | {fmt(v['pooled'])} | {v['min_type']:.2f} | "
                     + " | ".join(cell(v["per_family"], f) for f in fams) + " |")
    lines += ["", "Close calls (same photo, same distortion type; 95 % CIs over photos): P(pristine scores above "
              "level 1), P(pristine above level 2), P(level k above level k+1) averaged over k:", "",
              "| method | pristine > L1 | pristine > L2 | steps | " + " | ".join(f"{f} > L1" for f in fams) + " |",
              "|---|---|---|---|" + "---|" * len(fams)]
    for name, v in r["results"].items():
        cc = v["close_calls"]
        lines.append(f"| {name} | {fmt(cc['pristine_over_L1']['all'])} | {fmt(cc['pristine_over_L2']['all'])} | "
                     f"{fmt(cc['steps']['all'])} | "
                     + " | ".join(cell(cc["pristine_over_L1"]["per_family"], f) for f in fams) + " |")
    if "explain" in r:
        ex = r["explain"]
        heads = list(ex["matrix"])
        lines += ["", f"`--explain` (the lowest family head) on single distortions at levels "
                      f"{', '.join(map(str, ex['levels']))}: the true family named {ex['accuracy']:.3f} of the time. "
                      "Rows: true family; columns: the head named.", "",
                  "| true \\ named | " + " | ".join(heads) + " | accuracy |", "|---|" + "---|" * (len(heads) + 1)]
        for f in heads:
            lines.append(f"| {f} | " + " | ".join(str(ex["matrix"][f][g]) for g in heads)
                         + f" | {ex['per_family'][f]:.2f} |")
    if "score_scale" in r:
        sc = r["score_scale"]
        p = sc["pristine"]
        lines += ["", f"Default `quality` on held-out photos: pristine median {p['median']:.2f}, 10th percentile "
                      f"{p['p10']:.2f}, 90th percentile {p['p90']:.2f}, mean {p['mean']:.2f}; mean at levels 1..5: "
                      + ", ".join(f"{v:.2f}" for v in sc["level_means"].values()) + "."]
    names = list(r["results"])
    lines += ["", "Per type (mean within-photo SRCC):", "",
              "| type | family | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for t in r["types"]:
        lines.append(f"| {t} | {FAMILY_OF[t]} | " + " | ".join(cell(r['results'][n]['per_type'], t) for n in names)
                     + " |")
    if "model_checks" in r:
        mc = r["model_checks"]
        lines += ["", f"Exported models through ONNX Runtime ({mc['images']} images of 8 held-out photos):", "",
                  "| model | SRCC vs default fp32 | ms per image (median of 3) |", "|---|---|---|"]
        for name, v in mc.items():
            if name != "images":
                lines.append(f"| {name} | {v['srcc_vs_default fp32']:.4f} | {v['ms_per_image_median']:.1f} |")
    if "jpeg_curve" in r:
        lines += ["", "JPEG curve (mean quality score; in brackets the mean difference to the PNG):", "",
                  "| model | " + " | ".join(next(iter(r["jpeg_curve"].values()))) + " |",
                  "|---|" + "---|" * len(next(iter(r["jpeg_curve"].values())))]
        for name, v in r["jpeg_curve"].items():
            lines.append(f"| {name} | " + " | ".join(f"{x['mean']:.3f} ({x['mean_diff_to_png']:+.3f})"
                                                     for x in v.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over photos (default: 1000)")
    ap.add_argument("--photos", type=int, default=40,
                    help="held-out photos, round-robin across sources (default: %(default)s; 0: all)")
    ap.add_argument("--quick", action="store_true", help="4 anchor and 3 held-out photos (smoke test)")
    ap.add_argument("--no-classical", action="store_true", help="skip BRISQUE and NIQE (the slow part)")
    ap.add_argument("--no-models", action="store_true",
                    help="skip what needs exported models: the JPEG-quality curve, int8 agreement and cost")
    ap.add_argument("--progress", action="store_true", help="show embedding progress bars")
    ap.add_argument("-o", "--output", default=str(RESULTS / "quality_synthetic"))
    args = ap.parse_args()
    report = run(args)
    report["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_results(args.output, report, to_markdown(report))


if __name__ == "__main__":
    main()
