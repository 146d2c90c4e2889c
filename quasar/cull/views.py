"""Which part of a model's embedding says "same scene": the *view* used to group near-duplicates.

A quality embedding is built to move when a photo is blurred, noisy or badly exposed, which is the
opposite of what grouping a burst wants (its frames differ by exactly those defects). The default
model's ``effnet-lite0+taps`` embedding is a concatenation of blocks (per-channel means and standard
deviations of each EfficientNet stage, each block L2-normalised; see
:mod:`quasar.encoders.taps`), so a view is a set of those blocks, re-normalised. Which view groups
best was measured on bursts made from anchor photos and checked on bursts from held-out photos
(``benchmarks/burst_eval.py``, numbers in ``benchmarks/README.md``).

``LAYOUTS`` records the block layout of known encoders as plain data (the runtime imports no
torch); a test checks it against :class:`quasar.encoders.taps.TappedBackbone`'s own layout.
"""

from __future__ import annotations

import numpy as np

from quasar.errors import QuasarError

_EFFNET_STAGES = (("bn1", 32), ("blocks.0", 16), ("blocks.1", 24), ("blocks.2", 40), ("blocks.3", 80),
                  ("blocks.4", 112), ("blocks.5", 192), ("blocks.6", 320), ("bn2", 1280))


def _taps_layout(stages) -> tuple[tuple[str, int, int], ...]:
    out, i = [("input.mean", 0, 3), ("input.std", 3, 6)], 6
    for name, width in stages:
        for stat in ("mean", "std"):
            out.append((f"{name}.{stat}", i, i + width))
            i += width
    return tuple(out)


# encoder id -> ((block name, start, end), ...) of its embedding
LAYOUTS: dict[str, tuple[tuple[str, int, int], ...]] = {"effnet-lite0+taps": _taps_layout(_EFFNET_STAGES)}

# view name -> block names (``full``: the whole embedding, whatever the encoder)
VIEWS: dict[str, tuple[str, ...]] = {
    "full": (),
    "deep": ("bn2.mean",),  # the pooled feature of the classifier: content, not defects
    "deep-stats": ("bn2.mean", "bn2.std"),
    "late": ("blocks.5.mean", "blocks.6.mean", "bn2.mean"),
    "mid": ("blocks.3.mean", "blocks.4.mean", "blocks.5.mean"),
}
# The view and threshold with the best pairwise F1 on bursts made from anchor photos
# (benchmarks/burst_eval.py, validation split); held-out bursts were scored once with these.
DEFAULT_VIEW = "deep-stats"
THRESHOLDS: dict[str, dict[str, float]] = {
    "effnet-lite0+taps": {"full": 0.91, "deep": 0.74, "deep-stats": 0.715, "late": 0.81, "mid": 0.885},
}


def default_view(encoder: str) -> str:
    """``DEFAULT_VIEW`` where the encoder's block layout is known, else ``full``."""
    return DEFAULT_VIEW if encoder in LAYOUTS else "full"


def default_threshold(encoder: str, view: str) -> float:
    """The validated similarity threshold for this encoder and view; QuasarError if there is none."""
    t = THRESHOLDS.get(encoder, {}).get(view)
    if t is None:
        raise QuasarError(f"no validated similarity threshold for encoder {encoder!r} with view {view!r}; "
                          "give one with --threshold")
    return t


def view_columns(encoder: str, view: str, dim: int) -> np.ndarray | None:
    """Column indices of ``view`` in an embedding of width ``dim`` (None: all of it).

    QuasarError when the view needs a layout this encoder does not have, or the width disagrees.
    """
    if view not in VIEWS:
        raise QuasarError(f"unknown embedding view {view!r}; expected one of {sorted(VIEWS)}")
    if not VIEWS[view]:
        return None
    layout = LAYOUTS.get(encoder)
    if layout is None:
        raise QuasarError(f"the view {view!r} needs the block layout of the embedding; it is known for "
                          f"{sorted(LAYOUTS)}, not {encoder!r} (use --view full)")
    if layout[-1][2] != dim:
        raise QuasarError(f"{encoder} embeddings have {layout[-1][2]} dimensions, this one has {dim}")
    spans = {name: (a, b) for name, a, b in layout}
    return np.concatenate([np.arange(*spans[b]) for b in VIEWS[view]])


def apply_view(emb: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
    """Rows of ``emb`` restricted to ``columns`` and scaled to unit length (float32)."""
    x = np.asarray(emb, dtype=np.float32)
    if columns is not None:
        x = x[:, columns]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)
