"""The native parity test and the native benchmark rank with the project's one SRCC
(quasar.eval.metrics.srcc): tied scores get average ranks, so a tie-broken order cannot read as SRCC 1.0."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from scipy import stats

from quasar.eval import metrics

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_srcc_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("script", ["native/tests/parity.py", "benchmarks/native_bench.py"])
def test_native_scripts_rank_ties_as_scipy(script):
    srcc = _load(ROOT / script).srcc
    assert srcc is metrics.srcc
    a = [0.5, 0.5, 0.5, 0.7, 0.9]  # three tied scores: an argsort rank would order them 0, 1, 2
    b = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert srcc(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert srcc(a, b) < 0.95
