"""Score a dataset with any path scorer and correlate one head with the human opinion scores.

The scorer is anything with ``score_paths(paths) -> iterable of records`` where a record has
``.source`` (the path it was given), ``.scores`` (head name -> float) and ``.error`` (``None``
or a message). That is the shape of :class:`quasar.runtime.Scorer`'s results, but depending only
on the protocol keeps this module free of ONNX Runtime and lets tests use a fake scorer.
Images that fail (unreadable, missing, no result, non-finite score) are counted and listed, and
the metrics are computed on the rest.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from quasar.errors import QuasarError
from quasar.eval.datasets import LabeledImage
from quasar.eval.metrics import METRICS, bootstrap_ci


class RecordLike(Protocol):
    source: Any
    scores: dict[str, float]
    error: str | None


class PathScorer(Protocol):
    def score_paths(self, paths: Sequence[str]) -> Iterable[RecordLike]: ...


class _ScoreIterAdapter:
    """``score_paths`` for :class:`quasar.runtime.Scorer`, whose lazy, in-order method is ``score_iter``."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer

    def score_paths(self, paths: Sequence[str]) -> Iterable[RecordLike]:
        return self.scorer.score_iter(list(paths))


def as_path_scorer(scorer) -> PathScorer:
    """``scorer`` itself if it has ``score_paths``, else an adapter over its ``score_iter``."""
    if hasattr(scorer, "score_paths"):
        return scorer
    if hasattr(scorer, "score_iter"):
        return _ScoreIterAdapter(scorer)
    raise TypeError(f"{type(scorer).__name__} has neither score_paths() nor score_iter()")


class DirectionWarning(UserWarning):
    """The model's scores fall as the human opinion scores rise (negative SRCC)."""


@dataclass
class MetricResult:
    value: float
    low: float
    high: float


@dataclass
class EvalReport:
    """Everything ``quasar evaluate`` prints and writes; :meth:`to_dict` is JSON-safe."""

    dataset: str
    head: str
    n_items: int
    n_scored: int
    n_failed: int
    metrics: dict[str, MetricResult]
    bootstrap: int
    alpha: float
    seed: int
    grouped: bool
    failures: list[dict[str, str]] = field(default_factory=list)
    direction_warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return clean(asdict(self))


def score_labeled(
    scorer: PathScorer, items: Sequence[LabeledImage], head: str, progress: bool = False
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Model score of ``head`` per item (``nan`` where it failed) and the list of failures.

    Records are matched to items by ``source`` (so a scorer may return them in any order);
    a dataset that lists the same path twice gets the results in order. ``progress`` shows a
    tqdm bar on stderr (scoring a 10k-image dataset on CPU takes minutes).
    """
    pending: dict[str, deque[int]] = defaultdict(deque)
    for i, it in enumerate(items):
        pending[it.path].append(i)
    pred = np.full(len(items), np.nan)
    errors: dict[int, str] = {}
    records = as_path_scorer(scorer).score_paths([it.path for it in items])
    if progress:
        from tqdm import tqdm

        records = tqdm(records, total=len(items), unit="img", leave=False)
    for rec in records:
        queue = pending.get(str(rec.source))
        if not queue:
            continue  # a result for a path we did not ask about
        i = queue.popleft()
        if rec.error:
            errors[i] = str(rec.error)
            continue
        scores = rec.scores or {}
        if head not in scores:
            raise QuasarError(f"the model has no head {head!r} (heads: {', '.join(sorted(scores)) or 'none'})")
        value = float(scores[head])
        if math.isfinite(value):
            pred[i] = value
        else:
            errors[i] = f"non-finite score {value}"
    for queue in pending.values():
        for i in queue:
            errors[i] = "no result from the scorer"
    failures = [{"path": items[i].path, "error": errors[i]} for i in sorted(errors)]
    return pred, failures


def direction_message(srcc_value: float) -> str | None:
    if not (math.isfinite(srcc_value) and srcc_value < 0):
        return None
    return (
        f"SRCC is negative ({srcc_value:.3f}): the model's scores fall as people's scores rise. "
        "Its direction disagrees with this dataset (labels here are oriented higher = better); "
        "check the head and the model's pack."
    )


def correlate(
    pred,
    mos,
    groups=None,
    bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, MetricResult]:
    """SRCC, PLCC and KRCC with percentile bootstrap CIs (grouped when ``groups`` is given).

    ``bootstrap=0`` skips the intervals (reported as ``nan``). PLCC refits the logistic on every
    resample, so it dominates the time: about 40 ms per resample for 10,000 images.
    """
    out = {}
    for name, fn in METRICS.items():
        value = fn(pred, mos)
        low = high = float("nan")
        if bootstrap > 0 and len(pred) >= 3:
            low, high = bootstrap_ci(fn, pred, mos, n=bootstrap, alpha=alpha, seed=seed, groups=groups)
        out[name] = MetricResult(value, low, high)
    return out


def evaluate(
    scorer: PathScorer,
    items: Sequence[LabeledImage],
    *,
    head: str = "quality",
    bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    dataset: str = "",
    progress: bool = False,
) -> EvalReport:
    """Score ``items`` and correlate ``head`` with their MOS; warns (DirectionWarning) if SRCC < 0.

    ``scorer`` has ``score_paths`` (see :class:`PathScorer`) or is a :class:`quasar.runtime.Scorer`.

    The bootstrap resamples whole groups when every scored item has one (synthetic-distortion
    datasets: the reference photo), and single images otherwise.
    """
    if not items:
        raise QuasarError("no images to evaluate")
    heads = getattr(scorer, "heads", None)  # the runtime Scorer knows its heads: fail before scoring
    if heads and head not in heads:
        raise QuasarError(f"the model has no head {head!r} (heads: {', '.join(heads)})")
    pred, failures = score_labeled(scorer, items, head, progress=progress)
    ok = np.isfinite(pred)
    if not ok.any():
        first = failures[0] if failures else {"path": "?", "error": "?"}
        raise QuasarError(f"none of the {len(items)} images could be scored; first: {first['path']}: {first['error']}")
    p = pred[ok]
    m = np.array([it.mos for it in items], dtype=np.float64)[ok]
    kept = [it for it, good in zip(items, ok, strict=True) if good]
    groups = [it.group for it in kept]
    grouped = bool(kept) and all(g is not None for g in groups) and len(set(groups)) >= 2
    metrics = correlate(p, m, groups if grouped else None, bootstrap=bootstrap, alpha=alpha, seed=seed)
    message = direction_message(metrics["srcc"].value)
    if message:
        warnings.warn(message, DirectionWarning, stacklevel=2)
    return EvalReport(
        dataset=dataset,
        head=head,
        n_items=len(items),
        n_scored=int(ok.sum()),
        n_failed=len(failures),
        metrics=metrics,
        bootstrap=bootstrap,
        alpha=alpha,
        seed=seed,
        grouped=grouped,
        failures=failures,
        direction_warning=message,
    )
