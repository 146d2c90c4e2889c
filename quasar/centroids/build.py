"""From anchors to heads to packs: the centroid stage's public API."""

from __future__ import annotations

import numpy as np

from quasar import __version__
from quasar.centroids.aggregate import Aggregation, aggregate
from quasar.centroids.anchors import AnchorSet
from quasar.centroids.calibrate import margins, resolve_scale
from quasar.centroids.embed import Embedder
from quasar.centroids.pack import CentroidPack, Head
from quasar.errors import QuasarError


def head_from_embeddings(name: str, good_emb: np.ndarray, bad_emb: np.ndarray, agg: Aggregation,
                         good_scores=None, bad_scores=None, split: float | None = None,
                         logit_scale: str | float = "calibrated", anchors_meta: dict | None = None) -> Head:
    """Aggregate two embedding sets into a head (no encoder needed: used by benchmarks too)."""
    if len(good_emb) == 0 or len(bad_emb) == 0:
        raise QuasarError(f"head {name!r}: the good and the bad set both need at least one readable anchor")
    g, n_good = aggregate(good_emb, agg, good_scores, split, "good")
    b, n_bad = aggregate(bad_emb, agg, bad_scores, split, "bad")
    m = margins(np.concatenate([good_emb, bad_emb]), g, b)
    scale, policy = resolve_scale(logit_scale, m)
    meta = dict(anchors_meta or {})
    meta.update(used_good=n_good, used_bad=n_bad)
    return Head(name, g.astype(np.float32), b.astype(np.float32), scale, policy, agg.to_dict(), meta)


def build_head(name: str, anchors: AnchorSet, embedder: Embedder, agg: Aggregation,
               logit_scale: str | float = "calibrated") -> Head:
    """Embed an anchor set (cached) and aggregate it into one head."""
    emb, used, failed = embedder.embed(anchors.all(), desc=f"{name} anchors")
    is_good = np.array([a.label == "good" for a in used], dtype=bool)
    scores = np.array([np.nan if a.score is None else a.score for a in used], dtype=np.float64)
    meta = {"kind": anchors.kind, "good": int(is_good.sum()), "bad": int((~is_good).sum()),
            "skipped": len(failed), "provenance": anchors.provenance or {}, "quasar_version": __version__}
    return head_from_embeddings(name, emb[is_good], emb[~is_good], agg, scores[is_good], scores[~is_good],
                                anchors.split, logit_scale, meta)


def text_head(name: str, encoder, good_prompts: list[str], bad_prompts: list[str],
              logit_scale: str | float = 100.0) -> Head:
    """CLIP-IQA baseline: centroids are the (mean, normalised) text embeddings of the prompts.

    The default scale 100 is CLIP's learned logit scale, as CLIP-IQA uses it.
    """
    import torch

    with torch.no_grad():
        g = torch.nn.functional.normalize(encoder.encode_text(good_prompts), dim=-1).mean(0).numpy()
        b = torch.nn.functional.normalize(encoder.encode_text(bad_prompts), dim=-1).mean(0).numpy()
    scale, policy = resolve_scale(logit_scale, None) if logit_scale != "calibrated" else (100.0, "clip")
    meta = {"kind": "text", "good": len(good_prompts), "bad": len(bad_prompts),
            "provenance": {"good_prompts": good_prompts, "bad_prompts": bad_prompts}}
    return Head(name, g.astype(np.float32), b.astype(np.float32), scale, policy, {"method": "text"}, meta)


def make_pack(encoder, heads: list[Head]) -> CentroidPack:
    pack = CentroidPack(encoder.encoder_id, encoder.spec, heads)
    pack.validate()
    return pack
