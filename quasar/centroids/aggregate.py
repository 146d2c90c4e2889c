"""Aggregating one anchor set's embeddings into one centroid: Mean, Offset and K-means.

Embeddings are L2-normalised before aggregation. Scores only use cosine similarity, i.e. the
direction of an embedding; without normalisation, anchors whose features happen to have a large norm
(bright, textured photos for CNNs) would dominate the centroid. The centroid itself is left
unnormalised here; the exporter normalises the centroid matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ("mean", "offset", "kmeans")


@dataclass(frozen=True)
class Aggregation:
    """An aggregation method and its parameters (stored in the pack).

    ``offset_ratio``: fraction of each set dropped, the samples whose score is nearest the split.
    ``k``: clusters per set for K-means; ``seed`` and ``iters`` make K-means deterministic.
    """

    method: str = "mean"
    offset_ratio: float = 0.0
    k: int = 1
    seed: int = 0
    iters: int = 100
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown aggregation {self.method!r}; expected one of {METHODS}")
        if not 0.0 <= self.offset_ratio < 1.0:
            raise ValueError("offset_ratio must be in [0, 1)")
        if self.k < 1:
            raise ValueError("k must be >= 1")

    def to_dict(self) -> dict:
        d = {"method": self.method}
        if self.method == "offset":
            d["offset_ratio"] = self.offset_ratio
        if self.method == "kmeans":
            d.update(k=self.k, seed=self.seed, iters=self.iters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Aggregation:
        return cls(**d)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def mean_centroid(emb: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised embeddings."""
    if len(emb) == 0:
        raise ValueError("cannot aggregate an empty anchor set")
    return l2_normalize(emb).mean(axis=0)


def offset_select(scores: np.ndarray, split: float, ratio: float) -> np.ndarray:
    """Indices of a set after dropping the ``ratio`` fraction of samples nearest ``split``.

    Ties keep their input order (stable sort), so a set whose scores are all equal (the references
    of synthetic quality anchors) loses its first ``ratio`` fraction: arbitrary but deterministic.
    Every sample of a set lies on one side of the split, so the side needs no argument.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_drop = int(np.floor(len(scores) * ratio))
    if n_drop >= len(scores):
        raise ValueError("offset ratio drops every anchor")
    dist = np.abs(scores - split)
    order = np.argsort(dist, kind="stable")
    return np.sort(order[n_drop:])


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> np.ndarray:
    """Plain Lloyd K-means with k-means++ seeding on L2-normalised rows; returns k centres."""
    x = l2_normalize(x)
    n = len(x)
    if k > n:
        raise ValueError(f"k={k} exceeds the number of anchors ({n})")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
    c = np.asarray(centres)
    for _ in range(iters):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def aggregate(emb: np.ndarray, agg: Aggregation, scores: np.ndarray | None = None, split: float | None = None,
              side: str = "good") -> tuple[np.ndarray, int]:
    """Aggregate one set; returns (centroid, number of anchors used).

    ``scores``/``split`` are needed for Offset: the per-anchor opinion score (or its proxy, e.g.
    ``1 - level/5`` for synthetic distortions) and the value that separated good from bad.
    """
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or len(emb) == 0:
        raise ValueError(f"the {side} anchor set is empty")
    if agg.method == "mean":
        return mean_centroid(emb), len(emb)
    if agg.method == "offset":
        if scores is None or split is None:
            raise ValueError("Offset aggregation needs per-anchor scores and the split value")
        idx = offset_select(scores, split, agg.offset_ratio)
        return mean_centroid(emb[idx]), len(idx)
    centres = kmeans(emb, agg.k, seed=agg.seed, iters=agg.iters)
    return centres.mean(axis=0), len(emb)
