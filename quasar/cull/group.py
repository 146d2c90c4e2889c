"""Group near-duplicate photos by embedding similarity and rank each group by a quality head.

Two photos are *linked* when the cosine similarity of their (viewed, unit) embeddings is at least
``threshold``; groups are the connected components of the links (single linkage), so a burst whose
first and last frames drifted apart stays one group through the frames between them.

Which pairs are compared (the cost):

* with capture times and a ``window`` (seconds): only photos taken within ``window`` of each other,
  found by sorting on time, so the cost grows with N times the photos per window, not N^2; photos
  without a capture time are compared among themselves (all pairs);
* otherwise all pairs, as blocked matrix products (``BLOCK`` rows at a time, so memory stays at
  ``BLOCK x N`` similarities): exact, and about N^2 x D / 2 multiply-adds.

Everything is deterministic: ties and group numbers follow the input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

BLOCK = 1024


class _Links:
    """Union-find over N items; the representative of a set is its smallest index."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        root = i
        while p[root] != root:
            root = p[root]
        while p[i] != root:
            p[i], i = root, p[i]
        return int(root)

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _all_pairs(x: np.ndarray, idx: np.ndarray, threshold: float) -> Iterator[tuple[int, int]]:
    """Linked pairs among rows ``idx`` of ``x``, compared all against all in blocks."""
    sub = x[idx]
    for a in range(0, len(idx), BLOCK):
        sims = sub[a : a + BLOCK] @ sub[a:].T
        rows, cols = np.nonzero(sims >= threshold)
        keep = cols > rows  # the upper triangle (each pair once, no self-pairs)
        for r, c in zip(rows[keep], cols[keep], strict=True):
            yield int(idx[a + r]), int(idx[a + c])


def _windowed_pairs(x: np.ndarray, idx: np.ndarray, times: np.ndarray, window: float,
                    threshold: float) -> Iterator[tuple[int, int]]:
    """Linked pairs among rows ``idx`` whose times are at most ``window`` seconds apart."""
    order = idx[np.argsort(times[idx], kind="stable")]
    t = times[order]
    ends = np.searchsorted(t, t + window, side="right")
    for k in range(len(order)):
        if ends[k] <= k + 1:
            continue
        sims = x[order[k + 1 : ends[k]]] @ x[order[k]]
        for c in np.nonzero(sims >= threshold)[0]:
            yield int(order[k]), int(order[k + 1 + c])


def group(x: np.ndarray, threshold: float, times: Sequence[float | None] | None = None,
          window: float | None = None) -> np.ndarray:
    """Group number (0, 1, ... in order of each group's first member) for each row of unit vectors ``x``.

    ``times``: capture times in seconds (None where unknown); with ``window``, only photos at most
    ``window`` seconds apart are compared (those without a time among themselves).
    """
    n = len(x)
    links = _Links(n)
    if n:
        everyone = np.arange(n)
        if window is not None and times is not None:
            t = np.array([np.nan if v is None else float(v) for v in times], dtype=np.float64)
            timed = everyone[~np.isnan(t)]
            untimed = everyone[np.isnan(t)]
            pairs = list(_windowed_pairs(x, timed, t, float(window), threshold))
            pairs += list(_all_pairs(x, untimed, threshold))
        else:
            pairs = list(_all_pairs(x, everyone, threshold))
        for i, j in sorted(pairs):
            links.union(i, j)
    roots = np.array([links.find(i) for i in range(n)], dtype=np.int64)
    _, labels = np.unique(roots, return_inverse=True)  # roots are smallest members: numbers follow input order
    return labels.astype(np.int64)


def rank(labels: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Rank of each photo within its group (0 = best ``quality``; ties: earlier input first).

    A NaN quality (a photo that could not be scored) ranks last.
    """
    q = np.where(np.isnan(quality), -np.inf, quality)
    ranks = np.zeros(len(labels), dtype=np.int64)
    order = np.lexsort((np.arange(len(labels)), -q, labels))
    start = 0
    for k in range(1, len(order) + 1):
        if k == len(order) or labels[order[k]] != labels[order[start]]:
            ranks[order[start:k]] = np.arange(k - start)
            start = k
    return ranks
