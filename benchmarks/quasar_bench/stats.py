"""Small statistics for timings and score agreement, in numpy only (the runtime has no scipy).

Why our own: the benchmark's worker processes for the QUASAR engine must not import torch or scipy
(their peak RSS is part of what is measured), and the definitions need to be pinned down anyway:
percentiles are numpy's default linear interpolation, SRCC is Pearson on average ranks (ties share
their mean rank, as ``scipy.stats.spearmanr`` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` with linear interpolation; empty input gives NaNs."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    return {f"p{q:g}": float(np.percentile(a, q)) for q in qs}


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of repeated measurements (the median is what targets are judged on)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"min": float("nan"), "median": float("nan"), "max": float("nan")}
    return {"min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


def throughput(n_images: int, rep_seconds: Sequence[float]) -> dict[str, float]:
    """Images/s of each repetition, summarised; the slowest repetition gives ``min``."""
    return spread([n_images / s for s in rep_seconds if s > 0])


def rankdata(a: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values get the mean of the ranks they span."""
    x = np.asarray(a, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def srcc(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when fewer than 2 pairs or one side is constant."""
    if len(a) != len(b):
        raise ValueError(f"srcc needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def agreement(ref: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """SRCC and absolute differences of two score maps over the keys they share."""
    keys = sorted(set(ref) & set(other))
    a = np.array([ref[k] for k in keys], dtype=np.float64)
    b = np.array([other[k] for k in keys], dtype=np.float64)
    diff = np.abs(a - b) if keys else np.array([np.nan])
    return {"n": len(keys), "srcc": srcc(a, b), "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())}


def time_calls(fn: Callable[[Any], object], args: Sequence[Any], reps: int) -> tuple[list[float], list[float]]:
    """Call ``fn`` on each of ``args``, ``reps`` times: (seconds per repetition, per-call latencies in ms)."""
    rep_secs, lat = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        for a in args:
            t = time.perf_counter()
            fn(a)
            lat.append((time.perf_counter() - t) * 1e3)
        rep_secs.append(time.perf_counter() - t0)
    return rep_secs, lat
