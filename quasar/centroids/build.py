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
    """Embed an anchor set (cached) and aggregate it into one centroid head: the QUASAR method's
    head (Ilyin et al., 2025, "QUASAR: Quality and Aesthetics Scoring with Advanced Representations").

    Each set's embeddings are L2-normalised and aggregated (:mod:`quasar.centroids.aggregate`: mean,
    Offset, K-means) into a good and a bad centroid; the logit scale is then chosen by ``logit_scale``.

    Args:
        name: the head's name (a column of the scores).
        anchors: good and bad anchors (:mod:`quasar.centroids.anchors`: folders, CSVs, synthetic).
        embedder: embeds the anchors with its encoder, through the embedding cache.
        agg: how each set becomes its centroid.
        logit_scale: ``levels`` calibrates scale and bias on the anchors' scores (see
            :func:`build_linear_head`); ``calibrated``, ``paper`` or a number are the policies of
            :mod:`quasar.centroids.calibrate`.

    Returns:
        A ``centroid`` :class:`~quasar.centroids.pack.Head`; its ``anchors`` record how many anchors
        of each set were read, used and skipped.

    Raises:
        QuasarError: a set has no readable anchor.
        ValueError: an aggregation the set cannot support (Offset without scores, k above its size).

    Examples:
        Three flat images against noisy copies of them, with the ``effnet-lite0`` encoder:

        >>> import os, tempfile, cv2, numpy as np
        >>> from quasar.centroids.aggregate import Aggregation
        >>> from quasar.centroids.anchors import from_folders
        >>> from quasar.centroids.embed import Embedder
        >>> from quasar.encoders import create_encoder
        >>> root, rng = tempfile.mkdtemp(), np.random.default_rng(0)
        >>> for i in range(3):
        ...     img = np.full((96, 128, 3), 50 + 60 * i, np.uint8)
        ...     noisy = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
        ...     for side, pixels in (("good", img), ("bad", noisy)):
        ...         os.makedirs(os.path.join(root, side), exist_ok=True)
        ...         _ = cv2.imwrite(os.path.join(root, side, f"{i}.png"), pixels)
        >>> embedder = Embedder(create_encoder("effnet-lite0"), use_cache=False, progress=False, engine="torch")
        >>> anchors = from_folders(os.path.join(root, "good"), os.path.join(root, "bad"))
        >>> head = build_head("noise", anchors, embedder, Aggregation("mean"))
        >>> head.kind, head.good.shape, head.anchors["used_good"], head.anchors["used_bad"]
        ('centroid', (1280,), 3, 3)
    """
    emb, is_good, scores, meta = _anchor_arrays(anchors, embedder, name)
    head = head_from_embeddings(name, emb[is_good], emb[~is_good], agg, scores[is_good], scores[~is_good],
                                anchors.split, "paper" if logit_scale == "levels" else logit_scale, meta)
    if logit_scale == "levels":
        from quasar.centroids import heads as H

        target, weight = _calibration_targets(is_good, scores)
        head.logit_scale, head.bias = H.calibrate(margins(emb, head.good, head.bad), target, weight)
        head.logit_scale_policy = "levels"
    return head


def _anchor_arrays(anchors: AnchorSet, embedder: Embedder, name: str):
    emb, used, failed = embedder.embed(anchors.all(), desc=f"{name} anchors")
    is_good = np.array([a.label == "good" for a in used], dtype=bool)
    scores = np.array([np.nan if a.score is None else a.score for a in used], dtype=np.float64)
    meta = {"kind": anchors.kind, "good": int(is_good.sum()), "bad": int((~is_good).sum()),
            "skipped": len(failed), "provenance": anchors.provenance or {}, "quasar_version": __version__}
    return emb, is_good, scores, meta


def _calibration_targets(is_good: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets on 0..1 (the anchors' scores rescaled, else 1 good / 0 bad) and weights that make the
    two sets weigh the same."""
    target = np.where(np.isnan(scores), is_good.astype(float), scores)
    lo, hi = float(target.min()), float(target.max())
    target = (target - lo) / (hi - lo) if hi > lo else is_good.astype(float)
    return target, np.where(is_good, (~is_good).sum() / max(is_good.sum(), 1), 1.0)


def build_linear_head(name: str, anchors: AnchorSet, embedder: Embedder, method: str, alpha: float = 1.0,
                      logit_scale: str | float = "levels") -> Head:
    """A ``linear`` head from an anchor set: ``lda`` (shrinkage Fisher direction, good vs bad) or
    ``ridge`` (regression of the anchors' scores: ``1 - level/5`` for synthetic anchors, the MOS for
    a MOS CSV, 1/0 for good/bad sets). ``logit_scale`` ``levels`` (also what ``calibrated`` means
    here) fits scale and bias so that the score reads as the anchors' score scale (rescaled to 0..1);
    a number fixes the scale with no bias. See :mod:`quasar.centroids.heads`.
    """
    from quasar.centroids import heads as H

    emb, is_good, scores, meta = _anchor_arrays(anchors, embedder, name)
    if is_good.all() or not is_good.any():
        raise QuasarError(f"head {name!r}: the good and the bad set both need at least one readable anchor")
    target, weight = _calibration_targets(is_good, scores)
    if method == "lda":
        w = H.lda_direction(emb, is_good, alpha)
    elif method == "ridge":
        w = H.ridge_direction(emb, target, alpha, weight)
    else:
        raise QuasarError(f"unknown linear head method {method!r} (lda or ridge)")
    margin = H.unit_rows(emb) @ w
    if logit_scale in ("levels", "calibrated"):
        scale, bias = H.calibrate(margin, target, weight)
        policy = "levels"
    else:
        scale, policy = resolve_scale(logit_scale, margin)
        bias = 0.0
    meta.update(used_good=int(is_good.sum()), used_bad=int((~is_good).sum()))
    return Head(name, None, None, scale, policy, {"method": method, "alpha": alpha}, meta, kind="linear",
                bias=bias, weight=w.astype(np.float32))


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
