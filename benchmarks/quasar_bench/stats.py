"""Timing statistics in numpy only: percentiles, min/median/max, throughput, timed calls.

The benchmark's worker processes import this and must not import torch or scipy (their peak RSS
is part of what is measured). Percentiles are numpy's default linear interpolation; ``spread`` is
:func:`quasar.perf.stats.spread` (numpy only). Score agreement (SRCC) is not computed here:
:mod:`quasar_bench.report` uses :func:`quasar.eval.metrics.srcc`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from quasar.perf.stats import spread  # the one median/min/max/n of repetitions (quasar perf's)

__all__ = ["percentiles", "spread", "throughput", "time_calls"]


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` with linear interpolation; empty input gives NaNs."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    return {f"p{q:g}": float(np.percentile(a, q)) for q in qs}


def throughput(n_images: int, rep_seconds: Sequence[float]) -> dict[str, float]:
    """Images/s of each repetition, summarised; the slowest repetition gives ``min``."""
    return spread([n_images / s for s in rep_seconds if s > 0])


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
