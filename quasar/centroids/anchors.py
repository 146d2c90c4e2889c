"""Anchor sources: what goes into the good and the bad set of one head.

An :class:`Anchor` is one image (optionally with a synthetic distortion applied on the fly) with its
set label and, where known, a score (opinion score, or the ``1 - level/5`` proxy for synthetic
distortions) used by Offset aggregation. Sources:

* quality: two folders, two file lists, or a CSV ``path,is_reference`` (KADIS700k / PIPAL style);
* synthetic quality: pristine photos + graded distortions (:mod:`quasar.centroids.distortions`);
* aesthetics: a CSV ``path,mos`` split at the median (AVA style);
* random subsampling of a fraction of each set with a seed (the paper's data-size ablation).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quasar.centroids.distortions import ANCHOR_TYPES, LEVELS, distort, signature
from quasar.errors import QuasarError
from quasar.io import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Anchor:
    path: str
    label: str  # "good" | "bad"
    score: float | None = None
    distortion: str | None = None
    level: int = 0

    @property
    def tag(self) -> str:
        return f"{self.distortion}:{self.level}" if self.distortion else "orig"

    @property
    def cache_tag(self) -> str:
        """``tag`` plus the distortion's code signature (embedding cache key)."""
        return f"{self.tag}:{signature(self.distortion)}" if self.distortion else self.tag

    def load(self, decoded: np.ndarray) -> np.ndarray:
        """Apply this anchor's distortion to the decoded source image."""
        return distort(decoded, self.distortion, self.level) if self.distortion else decoded


@dataclass
class AnchorSet:
    good: list[Anchor]
    bad: list[Anchor]
    kind: str
    split: float | None = None  # score value separating good from bad (Offset)
    provenance: dict | None = None

    def counts(self) -> dict:
        return {"good": len(self.good), "bad": len(self.bad)}

    def all(self) -> list[Anchor]:
        return self.good + self.bad


def list_images(folder: str | os.PathLike) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        raise QuasarError(f"{folder}: not a folder")
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise QuasarError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found")
    return files


def read_file_list(path: str | os.PathLike) -> list[str]:
    base = Path(path).parent
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    return [str(p if os.path.isabs(p) else base / p) for p in lines]


def _read_csv(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
    rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in rows]
    return rows, fields


def _resolve(base: Path, p: str) -> str:
    return p if os.path.isabs(p) else str(base / p)


def from_folders(good: str, bad: str) -> AnchorSet:
    return AnchorSet([Anchor(p, "good", 1.0) for p in _paths(good)], [Anchor(p, "bad", 0.0) for p in _paths(bad)],
                     kind="folders", split=0.5, provenance={"good": str(good), "bad": str(bad)})


def _paths(src: str) -> list[str]:
    return list_images(src) if os.path.isdir(src) else read_file_list(src)


def from_reference_csv(path: str, root: str | None = None) -> AnchorSet:
    """CSV with columns ``path`` and ``is_reference`` (1/0, true/false): references are the good set."""
    rows, fields = _read_csv(path)
    if "path" not in fields or "is_reference" not in fields:
        raise QuasarError(f"{path}: expected CSV columns path,is_reference (found {fields})")
    base = Path(root) if root else Path(path).parent
    good, bad = [], []
    for r in rows:
        ref = r["is_reference"].lower() in ("1", "true", "yes", "y")
        (good if ref else bad).append(Anchor(_resolve(base, r["path"]), "good" if ref else "bad", 1.0 if ref else 0.0))
    return AnchorSet(good, bad, kind="reference_csv", split=0.5, provenance={"csv": str(path)})


def from_mos_csv(path: str, root: str | None = None) -> AnchorSet:
    """CSV with columns ``path`` and ``mos``: above the median is good, below is bad, ties dropped."""
    rows, fields = _read_csv(path)
    if "path" not in fields or "mos" not in fields:
        raise QuasarError(f"{path}: expected CSV columns path,mos (found {fields})")
    base = Path(root) if root else Path(path).parent
    try:
        items = [(_resolve(base, r["path"]), float(r["mos"])) for r in rows]
    except ValueError as e:
        raise QuasarError(f"{path}: non-numeric MOS ({e})") from None
    if len(items) < 2:
        raise QuasarError(f"{path}: need at least two rows")
    median = float(np.median([m for _, m in items]))
    good = [Anchor(p, "good", m) for p, m in items if m > median]
    bad = [Anchor(p, "bad", m) for p, m in items if m < median]
    return AnchorSet(good, bad, kind="mos_csv", split=median, provenance={"csv": str(path), "median": median})


def synthetic(pristine: list[str], distortions: tuple[str, ...] = ANCHOR_TYPES,
              levels: tuple[int, ...] = LEVELS) -> AnchorSet:
    """Pristine photos are the good set; each distortion at each level of each photo is the bad set.

    Scores are the proxy ``1 - level/5`` so Offset can drop the mildest distortions (level 1 is
    nearest to the split at 0.9).
    """
    if not pristine:
        raise QuasarError("synthetic anchors need at least one pristine photo")
    good = [Anchor(p, "good", 1.0) for p in pristine]
    bad = [Anchor(p, "bad", 1.0 - lv / 5.0, d, lv) for p in pristine for d in distortions for lv in levels]
    return AnchorSet(good, bad, kind="synthetic", split=0.9,
                     provenance={"distortions": list(distortions), "levels": list(levels)})


def subsample(anchors: AnchorSet, fraction: float, seed: int = 0) -> AnchorSet:
    """Keep a random ``fraction`` of each set (at least one anchor each), reproducibly."""
    if not 0 < fraction <= 1:
        raise QuasarError("subsample fraction must be in (0, 1]")
    if fraction == 1:
        return anchors
    rng = np.random.default_rng(seed)

    def pick(items: list[Anchor]) -> list[Anchor]:
        n = max(1, round(len(items) * fraction))
        idx = np.sort(rng.choice(len(items), size=n, replace=False))
        return [items[i] for i in idx]

    prov = dict(anchors.provenance or {}, subsample={"fraction": fraction, "seed": seed})
    return AnchorSet(pick(anchors.good), pick(anchors.bad), anchors.kind, anchors.split, prov)
