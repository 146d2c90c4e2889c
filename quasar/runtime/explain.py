"""Why a photo scores low: the ``reason`` column of ``quasar score --explain``.

A model with explanation heads (the default model: ``sharpness``, ``noise``, ``compression``,
``exposure``, ``color``, ``spatial``, ``optics``, each fitted to stay high on the other families'
defects, so that the lowest one names the defect) can say which family is the weakest; a model
without them uses the heads its combine head summarises. They are ``ModelInfo.explain_heads``.
Every family head reads on the same documented scale as ``quality`` (1 for a
pristine photo, ``1 - level/5`` for a synthetic defect at level 1..5), so one fixed bound serves all
of them: the reason is the family with the lowest score when that score is below
:data:`REASON_BELOW` (about level 2 of 5 of that family's defects, or worse), and empty when nothing
stands out. How often the named family is the true one is measured by
``benchmarks/quality_synthetic.py`` (its ``explain`` section).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

REASON_BELOW = 0.6  # on the heads' scale 1 - level/5: level 2 reads 0.6
REASON_COLUMN = "reason"  # the results-file column (after the head columns, before ``error``)


def reason(scores: Mapping[str, float], families: Sequence[str]) -> str:
    """The weakest family head's name if its score is below :data:`REASON_BELOW`, else ``""``."""
    have = [(scores[f], f) for f in families if scores.get(f) is not None]
    if not have:
        return ""
    low, name = min(have)
    return name if low < REASON_BELOW else ""
