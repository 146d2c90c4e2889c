"""Logit scale policies.

The score of an image is softmax(s * [cos_good, cos_bad])[0] = sigmoid(s * margin). SRCC does not
depend on ``s``, but users see the range: cosine margins between centroids are often a few
hundredths, so the paper's s = 1 squeezes every score near 0.5 and the official code's s = 1/0.07
still uses a narrow band. ``calibrated`` (the default) picks s so that the anchors' 5th and 95th
percentile scores lie 0.9 apart, i.e. anchors span the 0..1 range. The method has no bias term, so
asymmetric margins end up asymmetric in score too (that keeps P(good) = 0.5 meaning "as close to
the good centroid as to the bad one").
"""

from __future__ import annotations

import math

import numpy as np

POLICIES = ("calibrated", "paper", "official")
FIXED = {"paper": 1.0, "official": 1.0 / 0.07}
TARGET_P = 0.95


def margins(emb: np.ndarray, good: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """cos(x, good) - cos(x, bad) for each row of ``emb``."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return e @ (good / np.linalg.norm(good)) - e @ (bad / np.linalg.norm(bad))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)  # no overflow for large negative x
    return z / (1.0 + z)


def calibrated_scale(anchor_margins: np.ndarray, target_width: float = 2 * TARGET_P - 1) -> float:
    """Scale s with sigmoid(s*q95) - sigmoid(s*q05) = ``target_width`` (q = anchor margin quantiles).

    The width grows monotonically with s when q05 < 0 < q95, so bisection finds it. When every
    anchor margin has the same sign the width cannot reach the target; the rule then maps the
    larger of |q05|, |q95| to ``TARGET_P``.
    """
    m = np.asarray(anchor_margins, dtype=np.float64)
    lo_q, hi_q = float(np.quantile(m, 0.05)), float(np.quantile(m, 0.95))
    spread = max(abs(lo_q), abs(hi_q))
    if not np.isfinite(spread) or spread <= 1e-9:
        return FIXED["official"]
    if not lo_q < 0 < hi_q:
        return float(math.log(TARGET_P / (1 - TARGET_P)) / spread)
    lo, hi = 1e-3, 1e6
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if _sigmoid(mid * hi_q) - _sigmoid(mid * lo_q) < target_width:
            lo = mid
        else:
            hi = mid
    return float(math.sqrt(lo * hi))


def resolve_scale(policy: str | float, anchor_margins: np.ndarray | None) -> tuple[float, str]:
    """Return (scale, policy name); a number is taken as a user-fixed scale."""
    if isinstance(policy, (int, float)) or _is_number(policy):
        v = float(policy)
        if not v > 0:
            raise ValueError("logit scale must be positive")
        return v, "fixed"
    if policy in FIXED:
        return FIXED[policy], policy
    if policy == "calibrated":
        if anchor_margins is None or len(anchor_margins) == 0:
            raise ValueError("calibrated logit scale needs anchor embeddings")
        return calibrated_scale(anchor_margins), "calibrated"
    raise ValueError(f"unknown logit scale policy {policy!r}; use {POLICIES} or a number")


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False
