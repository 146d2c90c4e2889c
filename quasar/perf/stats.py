"""Numbers over repetitions: percentiles of latencies, median and spread, and ratios between configurations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def latency_summary(ms: np.ndarray) -> dict | None:
    """count, mean and p50/p90/p99/max of latencies in ms (None when there are none)."""
    if ms is None or len(ms) == 0:
        return None
    q = np.percentile(ms, [50, 90, 99])
    return {"count": int(len(ms)), "mean": round(float(np.mean(ms)), 3), "p50": round(float(q[0]), 3),
            "p90": round(float(q[1]), 3), "p99": round(float(q[2]), 3), "max": round(float(np.max(ms)), 3)}


def spread(values: Sequence[float | None]) -> dict | None:
    """median, min, max and n of the values that exist (None when none do)."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return None
    return {"median": float(np.median(v)), "min": min(v), "max": max(v), "n": len(v)}


def speedup(value: float | None, baseline: float | None, higher_is_better: bool) -> float | None:
    """How many times better ``value`` is than ``baseline`` (>1: better), whichever way the metric points."""
    if value is None or baseline is None or value <= 0 or baseline <= 0:
        return None
    return value / baseline if higher_is_better else baseline / value
