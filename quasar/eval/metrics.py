"""Correlation of predicted scores with human opinion scores: SRCC, PLCC, KRCC and bootstrap CIs.

Conventions (the same as piq / pyiqa, with one deliberate difference):

* All metrics are **signed**. A model whose scores go down when people's scores go up gets a
  negative SRCC, not ``abs(SRCC)``: taking the absolute value would hide an inverted head or an
  error-style dataset label read as a quality label. :func:`quasar.eval.evaluate.evaluate` warns
  when that happens instead.
* PLCC is computed after the VQEG four-parameter logistic mapping of the predictions onto the
  opinion scale (see :func:`fit_logistic`), because the model's scale is only expected to be
  monotonic in quality, not linear in it. The sign of the result follows the direction of the
  prediction (see :func:`plcc`).
* Degenerate input (fewer than 3 pairs, or a constant side) gives ``nan`` rather than an
  exception, so one bad bootstrap resample does not abort an evaluation.

Only numpy and scipy are used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import optimize, special, stats

Metric = Callable[[np.ndarray, np.ndarray], float]

__all__ = ["srcc", "plcc", "krcc", "logistic4", "fit_logistic", "bootstrap_ci", "bootstrap_interval", "METRICS"]


def _pair(pred, mos) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as 1-D float64 arrays of equal length (non-finite values are an error)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    m = np.asarray(mos, dtype=np.float64).ravel()
    if p.shape != m.shape:
        raise ValueError(f"pred and mos differ in length: {p.size} vs {m.size}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(m))):
        raise ValueError("pred and mos must be finite")
    return p, m


def _degenerate(p: np.ndarray, m: np.ndarray) -> bool:
    return p.size < 3 or np.ptp(p) == 0 or np.ptp(m) == 0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / denom) if denom > 0 else float("nan")


def srcc(pred, mos) -> float:
    """Spearman rank-order correlation (signed): monotonic agreement, the headline IQA number."""
    p, m = _pair(pred, mos)
    if _degenerate(p, m):
        return float("nan")
    return float(stats.spearmanr(p, m).statistic)


def krcc(pred, mos) -> float:
    """Kendall rank correlation, tau-b (signed): pairwise order agreement, robust to ties."""
    p, m = _pair(pred, mos)
    if _degenerate(p, m):
        return float("nan")
    return float(stats.kendalltau(p, m, variant="b").statistic)


def logistic4(x, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG four-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    ``b1``/``b2`` are the upper/lower asymptotes on the opinion scale, ``b3`` the midpoint and
    ``|b4|`` the slope scale on the prediction axis. Written with ``expit`` so that large
    arguments do not overflow.
    """
    scale = max(abs(float(b4)), 1e-12)
    return b2 + (b1 - b2) * special.expit((np.asarray(x, dtype=np.float64) - b3) / scale)


def _logistic4_jac(x, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """Analytic Jacobian of :func:`logistic4` for ``b4 > 0`` (the fit bounds keep it positive)."""
    z = (np.asarray(x, dtype=np.float64) - b3) / b4
    e = special.expit(z)
    d = e * (1.0 - e) * (b1 - b2) / b4
    return np.stack([e, 1.0 - e, -d, -d * z], axis=1)


# Fit bounds in standardized units (predictions and MOS z-scored): midpoint within 5 SD of the
# predictions, slope scale between 0.02 and 20 SD, asymptotes within 10 SD of the MOS.
_LOWER = (-10.0, -10.0, -5.0, 0.02)
_UPPER = (10.0, 10.0, 5.0, 20.0)


def fit_logistic(pred, mos) -> np.ndarray | None:
    """Least-squares fit of :func:`logistic4` mapping ``pred`` onto ``mos``; None if it fails.

    Returns ``(b1, b2, b3, b4)`` in the original units. The fit runs on z-scored data from the
    usual initial guess (b1 = max MOS, b2 = min MOS, b3 = mean prediction, b4 = one SD), with an
    analytic Jacobian and bounds. The bounds matter: when the relation is close to linear, the
    unconstrained optimum lies at infinity (a logistic with a huge slope scale *is* a straight
    line), and an unbounded fit drifts there for thousands of evaluations; bounded, it stops in
    a few dozen with a curve whose PLCC equals the linear one to about 1e-4. The mapping is
    increasing from the initial guess, so callers with decreasing predictions should flip them
    first (as :func:`plcc` does). Failure means no convergence or non-finite parameters.
    """
    p, m = _pair(pred, mos)
    if _degenerate(p, m):
        return None
    px, sx = float(p.mean()), float(p.std())
    mx, sm = float(m.mean()), float(m.std())
    z, w = (p - px) / sx, (m - mx) / sm
    p0 = [min(float(w.max()), 9.9), max(float(w.min()), -9.9), 0.0, 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # covariance warnings: only the parameters are used
            params, _ = optimize.curve_fit(
                logistic4, z, w, p0=p0, jac=_logistic4_jac, bounds=(_LOWER, _UPPER), maxfev=2000
            )
    except (RuntimeError, ValueError):
        return None
    if not np.all(np.isfinite(params)):
        return None
    b1, b2, b3, b4 = (float(v) for v in params)
    return np.array([mx + sm * b1, mx + sm * b2, px + sx * b3, sx * b4])


def plcc(pred, mos, fit: str = "logistic") -> float:
    """Pearson linear correlation after the VQEG logistic mapping (signed).

    The logistic is fitted to ``s * pred`` with ``s`` the sign of the SRCC, so the mapping is
    always an increasing one and the result is ``s * pearson(logistic(s * pred), mos)``: a model
    whose scores are reversed gets the same magnitude with a negative sign (a free logistic would
    absorb the reversal and report a positive PLCC). If the fit fails, produces a mapping that
    does not increase with the prediction, or fits worse (in least squares) than a straight line,
    the linear Pearson correlation is returned instead, which is what the linear mapping gives.
    ``fit="linear"`` skips the logistic altogether.
    """
    if fit not in ("logistic", "linear"):
        raise ValueError(f"fit must be 'logistic' or 'linear', not {fit!r}")
    p, m = _pair(pred, mos)
    if _degenerate(p, m):
        return float("nan")
    linear = _pearson(p, m)
    if fit == "linear":
        return linear
    s = -1.0 if stats.spearmanr(p, m).statistic < 0 else 1.0
    params = fit_logistic(s * p, m)
    if params is None:
        return linear
    fitted = logistic4(s * p, *params)
    if not np.all(np.isfinite(fitted)) or np.ptp(fitted) == 0:
        return linear
    r = _pearson(fitted, m)
    if not np.isfinite(r) or r < 0:
        return linear
    # The straight line is the limit of the logistic family (slope scale -> infinity), which the
    # fit bounds exclude; when it fits better in least squares, it is the better mapping.
    sse_linear = m.size * m.var() * (1.0 - linear**2)
    if sse_linear < float(np.sum((fitted - m) ** 2)):
        return linear
    return float(s * r)


METRICS: dict[str, Metric] = {"srcc": srcc, "plcc": plcc, "krcc": krcc}


def bootstrap_ci(
    metric: Metric,
    pred,
    mos,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups=None,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` confidence interval ``(low, high)`` for ``metric``.

    Without ``groups`` every resample draws images with replacement. With ``groups`` (one label
    per image, e.g. the reference photo of a synthetic distortion) whole groups are drawn with
    replacement and all their images kept: images distorted from the same photo are not
    independent, and resampling them one by one gives intervals that are too narrow. Resamples on
    which the metric is undefined (``nan``) are dropped; if all are, ``(nan, nan)`` is returned.
    The generator is seeded so that reports are reproducible.
    """
    p, m = _pair(pred, mos)
    return bootstrap_interval(lambda idx: metric(p[idx], m[idx]), p.size, n=n, alpha=alpha, seed=seed,
                              groups=groups)


def bootstrap_interval(
    stat: Callable[[np.ndarray], float],
    size: int,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups=None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of any statistic of ``size`` units (images, photos, rows).

    ``stat(indices)`` computes the statistic on the units at ``indices`` (drawn with replacement;
    ``np.arange(size)`` is the full sample). Resampling, grouping, seeding and the handling of
    undefined (``nan``) resamples are those of :func:`bootstrap_ci`, which is this function applied
    to a metric of (prediction, opinion) pairs.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = (rng.integers(0, size, size) for _ in range(n))
    else:
        g = np.asarray(groups, dtype=object).ravel()
        if g.size != size:
            raise ValueError(f"groups has {g.size} labels for {size} scores")
        _, inverse = np.unique(g.astype(str), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse)
        members = np.split(order, np.cumsum(counts)[:-1])
        if len(members) < 2:
            raise ValueError("a grouped bootstrap needs at least 2 groups")
        draws = (
            np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
            for _ in range(n)
        )
    values = np.fromiter((stat(idx) for idx in draws), dtype=np.float64, count=n)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)
