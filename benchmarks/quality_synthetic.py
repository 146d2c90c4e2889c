"""Quality on graded synthetic distortions of held-out real photos.

Held-out photos (never anchors of the default pack) get every distortion type, seen by the anchors
(``ANCHOR_TYPES``) and unseen (``HELDOUT_TYPES``), at five levels. For each encoder configuration
and aggregation we report

* per-type SRCC: Spearman between the score and ``-level`` over (reference + 5 levels) of one photo,
  averaged over photos;
* pooled SRCC: over all images against ``1 - level/5`` (references = 1);

with 95 % bootstrap confidence intervals over photos. Classical baselines: variance of the
Laplacian, and BRISQUE where the ``brisque`` package works offline.

Embeddings come from the same cache as pack building, so reruns are cheap.
Run: ``python benchmarks/quality_synthetic.py [--configs effnet-lite0/native512,...] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

from quasar.centroids.aggregate import Aggregation
from quasar.centroids.anchors import Anchor, synthetic
from quasar.centroids.build import head_from_embeddings
from quasar.centroids.calibrate import margins
from quasar.centroids.distortions import ANCHOR_TYPES, DISTORTIONS, HELDOUT_TYPES, LEVELS
from quasar.photos import fetch_photos
from quasar.preprocess import read_rgb

RESULTS = Path(__file__).parent / "results"
CONFIGS = {
    "effnet-lite0/native512": ("effnet-lite0", {"policy": "native", "size": 512}),
    "effnet-lite0/crop224": ("effnet-lite0", {"policy": "center_crop", "size": 224}),
    "dinov2-s14/native448": ("dinov2-s14", {"policy": "native", "size": 448}),
    "dinov2-s14/crop224": ("dinov2-s14", {"policy": "center_crop", "size": 224}),
}
AGGREGATIONS = {
    "mean": Aggregation("mean"),
    "offset0.2": Aggregation("offset", offset_ratio=0.2),
    "kmeans4": Aggregation("kmeans", k=4),
}


def eval_set(photos) -> list[Anchor]:
    items = []
    for p in photos:
        items.append(Anchor(p.path, "good", 1.0))
        for d in ANCHOR_TYPES + HELDOUT_TYPES:
            items += [Anchor(p.path, "bad", 1.0 - lv / 5.0, d, lv) for lv in LEVELS]
    return items


def srcc_table(score: np.ndarray, items: list[Anchor], n_boot: int = 1000, seed: int = 0) -> dict:
    """Per-type (within photo) and pooled SRCC with bootstrap CIs over photos."""
    paths = np.array([a.path for a in items])
    photos = sorted(set(paths))
    level = np.array([a.level for a in items])
    dist = np.array([a.distortion or "" for a in items])
    target = 1.0 - level / 5.0
    per_photo: dict[str, np.ndarray] = {}
    for d in ANCHOR_TYPES + HELDOUT_TYPES:
        vals = []
        for ph in photos:
            m = (paths == ph) & ((dist == d) | (dist == ""))
            vals.append(spearmanr(score[m], target[m])[0])
        per_photo[d] = np.nan_to_num(np.array(vals))
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(photos), len(photos)) for _ in range(n_boot)]
    out = {}
    for d, v in per_photo.items():
        bs = [v[b].mean() for b in boots]
        out[d] = (float(v.mean()), float(np.quantile(bs, 0.025)), float(np.quantile(bs, 0.975)))
    idx_by_photo = [np.flatnonzero(paths == ph) for ph in photos]
    pooled = spearmanr(score, target)[0]
    bs = []
    for b in boots[: max(200, n_boot // 5)]:
        idx = np.concatenate([idx_by_photo[i] for i in b])
        bs.append(spearmanr(score[idx], target[idx])[0])
    out["pooled"] = (float(pooled), float(np.quantile(bs, 0.025)), float(np.quantile(bs, 0.975)))
    for group, types in (("seen_mean", ANCHOR_TYPES), ("unseen_mean", HELDOUT_TYPES)):
        out[group] = (float(np.mean([out[t][0] for t in types])), float("nan"), float("nan"))
    return out


def laplacian_variance(items: list[Anchor]) -> np.ndarray:
    cache: dict[str, np.ndarray] = {}
    out = []
    for a in items:
        if a.path not in cache:
            cache[a.path] = read_rgb(a.path)
        g = cv2.cvtColor(a.load(cache[a.path]), cv2.COLOR_RGB2GRAY)
        out.append(cv2.Laplacian(g, cv2.CV_64F).var())
    return np.array(out)


def brisque_scores(items: list[Anchor]) -> np.ndarray | None:
    try:
        from brisque import BRISQUE  # optional, offline model file inside the package

        b = BRISQUE(url=False)
        img = read_rgb(items[0].path)
        b.score(img)
    except Exception as e:  # noqa: BLE001 - report any failure of the optional baseline
        print(f"BRISQUE unavailable: {type(e).__name__}: {e}")
        return None
    cache: dict[str, np.ndarray] = {}
    out = []
    for a in items:
        if a.path not in cache:
            cache[a.path] = read_rgb(a.path)
        out.append(-b.score(a.load(cache[a.path])))  # lower BRISQUE = better
    return np.array(out)


def run(configs: list[str], n_boot: int, quick: bool) -> dict:
    from quasar.centroids.embed import Embedder
    from quasar.encoders import create_encoder

    photos = fetch_photos()
    anchor_photos = [p for p in photos if p.split == "anchor"]
    held = [p for p in photos if p.split == "heldout"]
    if quick:
        anchor_photos, held = anchor_photos[:6], held[:6]
    anchors = synthetic([p.path for p in anchor_photos], ANCHOR_TYPES)
    items = eval_set(held)
    report = {"machine": platform.processor() or platform.machine(), "n_heldout_photos": len(held),
              "n_anchor_photos": len(anchor_photos), "n_eval_images": len(items),
              "anchor_types": list(ANCHOR_TYPES), "heldout_types": list(HELDOUT_TYPES), "results": {}}
    for name in configs:
        enc_id, over = CONFIGS[name]
        enc = create_encoder(enc_id)
        enc.set_spec(replace(enc.spec, **over))
        emb = Embedder(enc, batch_size=16)
        t0 = time.perf_counter()
        a_emb, a_used, _ = emb.embed(anchors.all(), desc=f"{name} anchors")
        e_emb, e_used, _ = emb.embed(items, desc=f"{name} eval")
        secs = time.perf_counter() - t0
        assert len(e_used) == len(items)
        is_good = np.array([a.label == "good" for a in a_used])
        sc = np.array([a.score for a in a_used])
        for agg_name, agg in AGGREGATIONS.items():
            head = head_from_embeddings("quality", a_emb[is_good], a_emb[~is_good], agg, sc[is_good], sc[~is_good], 0.9)
            m = margins(e_emb, head.good, head.bad)
            report["results"][f"{name}/{agg_name}"] = srcc_table(m, items, n_boot)
        report["results"][f"{name}/mean"]["embed_seconds"] = round(secs, 1)
        print(f"{name}: done in {secs:.0f} s", flush=True)
    report["results"]["baseline/laplacian_variance"] = srcc_table(np.log1p(laplacian_variance(items)), items, n_boot)
    bq = brisque_scores(items)
    if bq is not None:
        report["results"]["baseline/brisque"] = srcc_table(bq, items, n_boot)
    return report


def to_markdown(report: dict) -> str:
    types = report["anchor_types"] + report["heldout_types"]
    head = ["method", "pooled [95% CI]", "seen mean", "unseen mean"] + [
        t + ("" if t in report["anchor_types"] else " (unseen)") for t in types]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in report["results"].items():
        p = r["pooled"]
        mark = " (earlier run)" if r.get("from_earlier_run") else ""
        row = [name + mark, f"{p[0]:.3f} [{p[1]:.3f}, {p[2]:.3f}]", f"{r['seen_mean'][0]:.3f}", f"{r['unseen_mean'][0]:.3f}"]
        row += [f"{r[t][0]:.2f}" for t in types]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="6 anchor and 6 held-out photos (smoke test)")
    ap.add_argument("-o", "--output", default=str(RESULTS / "quality_synthetic"))
    ap.add_argument("--merge", action="store_true",
                    help="keep rows of configs not rerun from the existing OUTPUT.json (marked as such)")
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown configs {sorted(unknown)}; known: {list(CONFIGS)}")
    assert set(DISTORTIONS) >= set(ANCHOR_TYPES + HELDOUT_TYPES)
    report = run(configs, args.bootstrap, args.quick)
    old = Path(args.output + ".json")
    if args.merge and old.exists():
        prev = json.loads(old.read_text())
        kept = {k: v for k, v in prev["results"].items() if k not in report["results"]}
        for v in kept.values():
            v.setdefault("from_earlier_run", prev.get("created", "earlier"))
        report["results"] = {**kept, **report["results"]}
    report["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output + ".json").write_text(json.dumps(report, indent=1))
    md = to_markdown(report)
    Path(args.output + ".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
