"""Closed-form scoring directions from anchor embeddings, and the calibration that reads them as quality.

Every head scores an L2-normalised embedding ``e`` by a linear *margin* ``m = e . w + bias`` and
``score = sigmoid(logit_scale * m)``. The QUASAR paper's centroid head is the special case
``w = good/|good| - bad/|bad|`` (``m = cos(e, good) - cos(e, bad)``); this module adds two more
ways to find ``w`` from the same anchors, still without any human label:

* **shrinkage LDA** (Fisher's direction): ``w = (S + a I)^-1 (mu_good - mu_bad)`` with ``S`` the
  pooled within-set covariance. It discounts directions in which anchors vary for reasons other
  than quality (content), which the plain centroid difference does not.
* **ridge regression** of the anchors' distortion level (``target = 1 - level/5``: pristine 1,
  strongest 0) on the embedding. It uses the grading of the levels, not only good vs bad.

Regularisation is chosen by cross-validation on anchors only (anchor-photo halves and leave one
family out, :func:`quasar.centroids.families.select_config`). :func:`calibrate` then fits ``logit_scale`` and ``bias`` so that the score
reads on a documented scale: a pristine anchor near 1, the strongest distortion level near 0.
"""

from __future__ import annotations

import numpy as np

from quasar.contract import COMBINE_RULES
from quasar.errors import QuasarError

TARGET_LO, TARGET_HI = 0.02, 0.98  # soft targets are clipped so the logistic fit stays finite


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def level_target(levels: np.ndarray, max_level: int = 5) -> np.ndarray:
    """The documented quality scale of synthetic anchors: 1 for pristine, 0 for the strongest level."""
    return 1.0 - np.asarray(levels, dtype=np.float64) / float(max_level)


def centroid_direction(good: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``good/|good| - bad/|bad|``: the margin ``e . w`` is cos(e, good) - cos(e, bad)."""
    g = np.asarray(good, np.float64)
    b = np.asarray(bad, np.float64)
    return g / np.linalg.norm(g) - b / np.linalg.norm(b)


def _whitened_solve(x: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    """Solve ``(X^T X / n + alpha * mean_var * I) w = rhs`` for centred rows ``x`` [n, D].

    ``alpha`` is relative to the mean variance per dimension, so one grid serves every encoder.
    Uses the n x n dual when n < D.
    """
    n, d = x.shape
    ridge = alpha * max(float((x * x).sum() / (n * d)), 1e-12)
    if n < d:
        # (X^T X/n + r I)^-1 v = (v - X^T (X X^T/n + r I)^-1 X v / n) / r   (Woodbury)
        k = x @ x.T / n
        k[np.diag_indices(n)] += ridge
        return (rhs - x.T @ np.linalg.solve(k, x @ rhs) / n) / ridge
    cov = x.T @ x / n
    cov[np.diag_indices(d)] += ridge
    return np.linalg.solve(cov, rhs)


def lda_direction(emb: np.ndarray, is_good: np.ndarray, alpha: float) -> np.ndarray:
    """Fisher's direction with the pooled within-set covariance shrunk by ``alpha``."""
    e = unit_rows(emb)
    g, b = e[is_good], e[~is_good]
    if len(g) == 0 or len(b) == 0:
        raise QuasarError("LDA needs anchors in both sets")
    centred = np.concatenate([g - g.mean(0), b - b.mean(0)])
    return _whitened_solve(centred, g.mean(0) - b.mean(0), alpha)


def ridge_direction(emb: np.ndarray, target: np.ndarray, alpha: float,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """Ridge regression of ``target`` on the unit embeddings (intercept absorbed by centring).

    ``weights`` (per anchor) balance the sets, e.g. so that the few pristine anchors count as much
    as the many distorted ones.
    """
    e = unit_rows(emb)
    t = np.asarray(target, np.float64)
    w = np.ones(len(e)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.mean()
    mu = (w[:, None] * e).sum(0) / w.sum()
    tm = float((w * t).sum() / w.sum())
    xs = (e - mu) * np.sqrt(w)[:, None]
    return _whitened_solve(xs, xs.T @ ((t - tm) * np.sqrt(w)) / len(e), alpha)


def standardizer(x: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted per-dimension mean and standard deviation of rows ``x`` [n, D]; deviations are floored
    at 5 % of their median, so near-constant dimensions are not blown up."""
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu = w @ x
    sd = np.sqrt(np.maximum(w @ (x * x) - mu * mu, 0.0))
    return mu, np.maximum(sd, 0.05 * float(np.median(sd)) + 1e-12)


def rank_direction(emb: np.ndarray, target: np.ndarray, weights: np.ndarray, better: np.ndarray,
                   worse: np.ndarray, pair_weights: np.ndarray, lam: float, iters: int = 400) -> np.ndarray:
    """A direction that ranks pairs of anchors of the same photo: row ``better[i]`` above row ``worse[i]``.

    Minimises, over the standardised rows ``x = (e - mu) / sd``,
    ``sum_i pw_i log(1 + exp(-(x_b - x_w) . v)) + sum_j w_j (x_j . v + c - t_j)^2 + lam |v|^2``
    (pairwise logistic loss, a ridge regression of the level target that keeps different photos on
    one scale, both with normalised weights) by L-BFGS from zero: convex, deterministic. Returns the
    direction over the raw embedding (``v / sd``); the bias is left to :func:`calibrate`.
    """
    from scipy.optimize import minimize

    mu, sd = standardizer(emb, weights)
    x = ((emb - mu) / sd).astype(np.float32)
    t = np.asarray(target, np.float64)
    w = np.asarray(weights, np.float64) / np.sum(weights)
    pw = np.asarray(pair_weights, np.float64) / np.sum(pair_weights)
    n, d = x.shape

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        v, c = p[:d], p[d]
        z = (x @ v.astype(np.float32)).astype(np.float64)
        m = z[better] - z[worse]
        r = z + c - t
        f = float(pw @ np.logaddexp(0.0, -m) + w @ (r * r) + lam * (v @ v))
        s = pw * _sigmoid(-m)  # d/dm of the pairwise loss is -s
        g_rows = 2.0 * w * r - np.bincount(better, s, n) + np.bincount(worse, s, n)
        g = (x.T @ g_rows.astype(np.float32)).astype(np.float64) + 2.0 * lam * v
        return f, np.concatenate([g, [2.0 * float(w @ r)]])

    p0 = np.zeros(d + 1)
    p0[d] = float(w @ t)
    res = minimize(loss, p0, jac=True, method="L-BFGS-B", options={"maxiter": iters})
    return res.x[:d] / sd


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def calibrate(margin: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None,
              iters: int = 100) -> tuple[float, float]:
    """``(logit_scale, bias)`` with ``sigmoid(logit_scale * (margin + bias))`` ~ ``target`` on anchors.

    A logistic fit with soft targets (cross-entropy, clipped to [0.02, 0.98]) by Newton's method on
    two parameters: convex, deterministic, no learning rate. The scale is positive whenever the
    margin ranks the anchors the right way round; a head whose margin does not is refused.
    """
    m = np.asarray(margin, np.float64)
    t = np.clip(np.asarray(target, np.float64), TARGET_LO, TARGET_HI)
    w = np.ones_like(m) if weights is None else np.asarray(weights, np.float64)
    sd = float(m.std()) or 1.0
    z = (m - m.mean()) / sd
    a, c = 1.0, 0.0
    for _ in range(iters):
        p = _sigmoid(a * z + c)
        r = w * (p - t)
        h = w * p * (1 - p) + 1e-9
        grad = np.array([(r * z).sum(), r.sum()])
        hess = np.array([[(h * z * z).sum(), (h * z).sum()], [(h * z).sum(), h.sum()]])
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
        a, c = a - step[0], c - step[1]
        if np.abs(step).max() < 1e-10:
            break
    if not (np.isfinite(a) and np.isfinite(c)) or a <= 0:
        raise QuasarError("calibration failed: the head's margin does not rank pristine anchors above distorted "
                          "ones")
    scale = a / sd
    bias = c / scale - float(m.mean())
    return float(scale), float(bias)



def calibrate_medians(margin: np.ndarray, target: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """``(logit_scale, bias)`` with the **median** anchor score of each level at its target:
    ``sigmoid(logit_scale * (median margin of the level + bias))`` ~ ``target``, by least squares on
    the score scale over the levels (Levenberg-Marquardt on two parameters, started from the line
    through the levels' logits; deterministic).

    :func:`calibrate` fits every anchor, and the spread within a level flattens its curve (a noisy
    predictor's fit regresses to the mean): it left the median pristine anchor of ``quality`` well below
    the 1.0 its scale promises, and level 1 well below 0.8. Fitting the level medians keeps
    the promise where it is made, for the typical photo of each level; the ranking is the same.
    """
    m = np.asarray(margin, np.float64)
    t = np.asarray(target, np.float64)
    levels = np.unique(t)
    if len(levels) < 2:
        raise QuasarError("calibration needs anchors at two or more levels")
    med = np.array([np.median(m[t == v]) for v in levels])
    sd = float(med.std())
    if not sd > 0:
        raise QuasarError("calibration failed: the median margins do not rank pristine anchors above distorted "
                          "ones")
    z = (med - med.mean()) / sd
    y = np.clip(levels, TARGET_LO, TARGET_HI)
    y = np.log(y / (1.0 - y))
    a = float(z @ (y - y.mean()) / (z @ z))
    c, lam = float(y.mean()), 1e-3

    def sse(a_: float, c_: float) -> float:
        return float(((_sigmoid(a_ * z + c_) - levels) ** 2).sum())

    for _ in range(iters):
        p = _sigmoid(a * z + c)
        r, d = p - levels, p * (1 - p)
        jac = np.stack([d * z, d], 1)
        step = np.linalg.solve(jac.T @ jac + lam * np.eye(2), jac.T @ r)
        if sse(a - step[0], c - step[1]) < sse(a, c):
            a, c, lam = a - step[0], c - step[1], lam * 0.3
        else:
            lam *= 10.0
        if np.abs(step).max() < 1e-12 or lam > 1e12:
            break
    if not (np.isfinite(a) and np.isfinite(c)) or a <= 0:
        raise QuasarError("calibration failed: the median margins do not rank pristine anchors above distorted "
                          "ones")
    scale = a / sd
    return float(scale), float(c / scale - med.mean())


def combine_logits(logits: np.ndarray, rule: str) -> np.ndarray:
    """Combine head logits [..., H] into one logit (the fused graph's combine heads, in numpy):
    ``min``, ``mean``, or ``softmin`` = ``-log(sum(exp(-logit)))``, computed stably."""
    if rule == "min":
        return logits.min(-1)
    if rule == "mean":
        return logits.mean(-1)
    if rule == "softmin":
        m = logits.min(-1, keepdims=True)
        return m[..., 0] - np.log(np.exp(-(logits - m)).sum(-1))
    raise QuasarError(f"unknown combine rule {rule!r} (known: {COMBINE_RULES})")
