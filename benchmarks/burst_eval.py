"""Best-of-burst evaluation: grouping precision/recall and keeper accuracy of ``quasar cull``.

Data (``burst_sets.py``): one synthetic burst per real photo (1..6 hand-held frames: shifted,
zoomed, rolled crops; one clean keeper, the others motion-blurred, out of focus, dark, bright or
noisy at levels 1..3), written as camera-roll JPEGs with EXIF capture times. Bursts made from
**anchor** photos are the validation set: the embedding view and the similarity threshold are
chosen there (best pairwise F1). Bursts from **held-out** photos are the test set, scored once with
those choices; nothing is tuned on them.

Metrics: pairwise precision / recall / F1 over all pairs of frames (a pair is positive when both
frames come from one photo), the share of bursts recovered exactly (one predicted group, nothing
else in it), and keeper accuracy: (a) with the true groups, how often the frame ranked first by the
``quality`` head is the clean frame (ranking alone; chance is 1/size), (b) end to end, how often the
clean frame of a multi-frame burst is marked keep and none of its degraded frames is.

Timing (one run, side by side): the model with and without the embedding output (the same pass),
and the grouping itself on N = 10,000 / 50,000 random unit vectors, all pairs vs a 2 s window.

Run: ``python benchmarks/burst_eval.py [--quick]``; writes ``benchmarks/results/burst_eval.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from burst_sets import make_roll, write_frames
from quasar_bench.results import write_results

from quasar.cull.group import group, rank
from quasar.cull.views import VIEWS, apply_view, view_columns
from quasar.machine import machine_info
from quasar.paths import cache_dir

RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLDS = np.round(np.arange(0.50, 0.995, 0.005), 3)
ENCODER = "effnet-lite0+taps"


def build_split(photos, split: str, root: Path, limit: int | None, mild: bool = False) -> tuple[list, list[str]]:
    """Frames (metadata only kept) and JPEG paths of the roll made from ``photos`` of ``split``
    (``mild``: every degraded frame at level 1)."""
    import cv2

    chosen = [p for p in photos if p.split == split]
    if limit:
        chosen = chosen[:limit]
    folder = root / (split + ("-mild" if mild else ""))
    imgs = []
    for p in chosen:
        bgr = cv2.imread(p.path, cv2.IMREAD_COLOR)
        imgs.append((p.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    frames = make_roll(imgs, mild=mild)
    manifest = folder / "manifest.json"
    want = [[f.burst, f.index, f.keeper, f.degradation, f.time.isoformat()] for f in frames]
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        paths = [str(folder / f"IMG_{k:05d}.jpg") for k in range(len(frames))]
    else:
        paths = write_frames(frames, str(folder))
        manifest.write_text(json.dumps(want))
    meta = [{"burst": f.burst, "keeper": f.keeper, "degradation": f.degradation, "time": f.time.timestamp()}
            for f in frames]
    return meta, paths


def score(paths: list[str], cache: Path, embeddings: bool = True):
    """Scores (dict of head -> array) and embeddings [N, D], cached by the file list and the default
    model's pack hash (a new default model is scored again)."""
    from quasar.centroids.pack import CentroidPack
    from quasar.runtime import Scorer

    key = cache.with_name(f"{cache.name}-{CentroidPack.load('default').content_hash[7:19]}.npz")
    if key.exists():
        z = np.load(key, allow_pickle=False)
        if list(z["paths"]) == paths:
            return {h: z[f"score_{h}"] for h in z["heads"]}, z["emb"]
    with Scorer(embeddings=embeddings) as s:
        recs = s.score(paths)
    bad = [r for r in recs if not r.ok]
    if bad:
        raise SystemExit(f"{bad[0].source}: {bad[0].error}")
    heads = list(recs[0].scores)
    scores = {h: np.array([r.scores[h] for r in recs]) for h in heads}
    emb = np.stack([r.embedding for r in recs]) if embeddings else np.zeros((len(recs), 0), np.float32)
    np.savez(key, paths=np.array(paths), heads=np.array(heads), emb=emb,
             **{f"score_{h}": v for h, v in scores.items()})
    return scores, emb


def pair_metrics(labels: np.ndarray, truth: np.ndarray) -> dict:
    same_pred = labels[:, None] == labels[None, :]
    same_true = truth[:, None] == truth[None, :]
    iu = np.triu_indices(len(labels), 1)
    p, t = same_pred[iu], same_true[iu]
    tp = int((p & t).sum())
    prec = tp / max(1, int(p.sum()))
    rec = tp / max(1, int(t.sum()))
    f1 = 2 * prec * rec / max(1e-12, prec + rec)
    exact = 0
    bursts = np.unique(truth)
    for b in bursts:
        members = np.nonzero(truth == b)[0]
        g = np.unique(labels[members])
        if len(g) == 1 and int((labels == g[0]).sum()) == len(members):
            exact += 1
    return {"precision": prec, "recall": rec, "f1": f1, "exact_bursts": exact / len(bursts),
            "groups": int(len(np.unique(labels))), "bursts": int(len(bursts))}


def keeper_metrics(labels: np.ndarray, truth: np.ndarray, keeper: np.ndarray, quality: np.ndarray) -> dict:
    multi = [b for b in np.unique(truth) if (truth == b).sum() > 1]
    true_ranks = rank(truth, quality)
    pred_ranks = rank(labels, quality)
    ranked_ok = sum(int(true_ranks[np.nonzero((truth == b) & keeper)[0][0]] == 0) for b in multi)
    chance = float(np.mean([1.0 / (truth == b).sum() for b in multi]))
    e2e = 0
    for b in multi:
        members = np.nonzero(truth == b)[0]
        kept = members[pred_ranks[members] == 0]
        e2e += int(len(kept) == 1 and keeper[kept[0]])
    return {"multi_bursts": len(multi), "keeper_true_groups": ranked_ok / len(multi), "chance": chance,
            "keeper_end_to_end": e2e / len(multi)}


def by_degradation(truth, keeper, degradation, quality) -> dict:
    """Per degradation type: how often the clean frame outscores a frame with it (pairwise, same burst)."""
    wins: dict[str, list[int]] = {}
    for b in np.unique(truth):
        members = np.nonzero(truth == b)[0]
        k = [m for m in members if keeper[m]]
        for m in members:
            if keeper[m]:
                continue
            kind = degradation[m].split(":")[0]
            wins.setdefault(kind, []).append(int(quality[k[0]] > quality[m]))
    return {k: round(float(np.mean(v)), 3) for k, v in sorted(wins.items())}


def embedding_cost(rounds: int = 10) -> dict:
    """Model-only ms per batch (4 x 384x512) without and with the embedding output, interleaved (median)."""
    from quasar.runtime import Scorer

    batch = np.random.default_rng(0).integers(0, 256, (4, 384, 512, 3), dtype=np.uint8)
    times: dict[str, list[float]] = {"scores only": [], "scores + embedding": []}
    with Scorer(threads=2) as plain, Scorer(threads=2, embeddings=True) as emb:
        for _ in range(rounds):
            for name, s in (("scores only", plain), ("scores + embedding", emb)):
                t0 = time.perf_counter()
                s.backend.run(batch)
                times[name].append(time.perf_counter() - t0)
    return {k: round(1000 * float(np.median(v)), 1) for k, v in times.items()} | {"rounds": rounds}


def grouping_timing(dim: int, sizes=(10_000, 50_000)) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for n in sizes:
        x = rng.normal(size=(n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        times = np.cumsum(rng.uniform(0.1, 30, n))
        t0 = time.perf_counter()
        group(x, 0.9, times, window=2.0)
        windowed = time.perf_counter() - t0
        row = {"n": n, "dim": dim, "window_2s_s": round(windowed, 3)}
        if n <= 10_000:
            t0 = time.perf_counter()
            group(x, 0.9)
            row["all_pairs_s"] = round(time.perf_counter() - t0, 3)
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 photos per split (smoke run)")
    args = ap.parse_args(argv)
    from quasar.photos import fetch_photos

    photos = fetch_photos()
    root = cache_dir() / "bench" / "bursts"
    limit = 30 if args.quick else None
    data = {}
    for split in ("anchor", "heldout"):
        meta, paths = build_split(photos, split, root, limit)
        t0 = time.perf_counter()
        scores, emb = score(paths, root / f"{split}{'-quick' if args.quick else ''}")
        data[split] = dict(meta=meta, paths=paths, scores=scores, emb=emb, seconds=time.perf_counter() - t0)
        print(f"{split}: {len(paths)} frames, {len({m['burst'] for m in meta})} bursts", file=sys.stderr)

    def arrays(split):
        meta = data[split]["meta"]
        names = sorted({m["burst"] for m in meta})
        truth = np.array([names.index(m["burst"]) for m in meta])
        keeper = np.array([m["keeper"] for m in meta])
        times = np.array([m["time"] for m in meta])
        return truth, keeper, times, np.array([m["degradation"] for m in meta])

    # 1. choose the view and threshold on the validation (anchor) bursts
    val_truth, _, val_times, _ = arrays("anchor")
    dim = data["anchor"]["emb"].shape[1]
    selection = []
    for view in VIEWS:
        x = apply_view(data["anchor"]["emb"], view_columns(ENCODER, view, dim))
        best = None
        for t in THRESHOLDS:
            m = pair_metrics(group(x, float(t)), val_truth)
            if best is None or m["f1"] > best[1]["f1"]:
                best = (float(t), m)
        selection.append({"view": view, "threshold": best[0], **{k: round(v, 4) if isinstance(v, float) else v
                                                                 for k, v in best[1].items()}})
    chosen = max(selection, key=lambda r: r["f1"])
    print(json.dumps(selection, indent=1), file=sys.stderr)

    # 2. evaluate every view at its validation threshold on the held-out bursts (the chosen one is the result)
    truth, keeper, times, degradation = arrays("heldout")
    test = []
    for row in selection:
        x = apply_view(data["heldout"]["emb"], view_columns(ENCODER, row["view"], dim))
        for window in (None, 2.0):
            labels = group(x, row["threshold"], times, window)
            m = pair_metrics(labels, truth)
            k = keeper_metrics(labels, truth, keeper, data["heldout"]["scores"]["quality"])
            test.append({"view": row["view"], "threshold": row["threshold"], "window_s": window,
                         **{a: round(b, 4) if isinstance(b, float) else b for a, b in {**m, **k}.items()}})
    heads = {h: keeper_metrics(truth, truth, keeper, v)["keeper_true_groups"]
             for h, v in data["heldout"]["scores"].items()}
    degr = by_degradation(truth, keeper, degradation, data["heldout"]["scores"]["quality"])
    # 3. close calls: the held-out photos again, every degraded frame at level 1 (true groups: ranking only)
    meta, paths = build_split(photos, "heldout", root, limit, mild=True)
    q_mild = score(paths, root / f"heldout-mild{'-quick' if args.quick else ''}", embeddings=False)[0]["quality"]
    names = sorted({m["burst"] for m in meta})
    m_truth = np.array([names.index(m["burst"]) for m in meta])
    m_keeper = np.array([m["keeper"] for m in meta])
    mild = {**keeper_metrics(m_truth, m_truth, m_keeper, q_mild),
            "clean_beats_degraded": by_degradation(m_truth, m_keeper, np.array([m["degradation"] for m in meta]),
                                                   q_mild)}
    timing = grouping_timing(len(view_columns(ENCODER, chosen["view"], dim) if VIEWS[chosen["view"]] else range(dim)))
    cost = embedding_cost(3 if args.quick else 10)
    result = {"machine": machine_info(), "chosen": chosen, "validation": selection, "test": test,
              "keeper_by_head_true_groups": heads, "clean_beats_degraded": degr, "mild_level1": mild,
              "grouping_timing": timing,
              "embedding_cost_s": cost,
              "frames": {s: len(data[s]["paths"]) for s in data}, "quick": args.quick}
    suffix = "-quick" if args.quick else ""
    write_results(RESULTS / f"burst_eval{suffix}", result, markdown(result))
    return 0


def markdown(r: dict) -> str:
    lines = [f"Validation (anchor photos, {r['frames']['anchor']} frames): view and threshold by best pairwise F1, all pairs.",
             "", "| view | threshold | precision | recall | F1 | exact bursts |", "|---|---|---|---|---|---|"]
    for v in r["validation"]:
        lines.append(f"| {v['view']} | {v['threshold']:.3f} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} "
                     f"| {v['exact_bursts']:.3f} |")
    lines += ["", f"Test (held-out photos, {r['frames']['heldout']} frames), thresholds from validation; chosen view "
              f"**{r['chosen']['view']}**.", "",
              "| view | window | precision | recall | F1 | exact bursts | keeper (true groups) | chance | keeper (end to end) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in r["test"]:
        w = "all pairs" if t["window_s"] is None else f"{t['window_s']:g} s"
        lines.append(f"| {t['view']} | {w} | {t['precision']:.3f} | {t['recall']:.3f} | {t['f1']:.3f} | "
                     f"{t['exact_bursts']:.3f} | {t['keeper_true_groups']:.3f} | {t['chance']:.3f} | "
                     f"{t['keeper_end_to_end']:.3f} |")
    lines += ["", "Keeper accuracy by ranking head (true groups): " + ", ".join(
        f"{h} {v:.3f}" for h, v in r["keeper_by_head_true_groups"].items()),
        "", "Clean frame scores above a frame with (quality head, pairs within a burst): " + ", ".join(
        f"{k} {v:.2f}" for k, v in r["clean_beats_degraded"].items()),
        "", "Grouping time (random unit vectors): " + "; ".join(
        f"N={t['n']}, D={t['dim']}: 2 s window {t['window_2s_s']} s" + (f", all pairs {t['all_pairs_s']} s"
                                                                         if "all_pairs_s" in t else "")
        for t in r["grouping_timing"])]
    if "mild_level1" in r:
        m = r["mild_level1"]
        lines += ["", f"Mild bursts (the held-out photos again, every degraded frame at level 1, true groups): clean "
                      f"frame ranked first in {m['keeper_true_groups']:.3f} of {m['multi_bursts']} bursts (chance "
                      f"{m['chance']:.3f}); clean above a frame with: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in m["clean_beats_degraded"].items())]
    c = r["embedding_cost_s"]
    lines += ["", f"Model only, batch 4 x 384x512, 2 threads, median of {c['rounds']} interleaved rounds: scores only "
              f"{c['scores only']} ms, scores + embedding {c['scores + embedding']} ms (one forward pass)."]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
