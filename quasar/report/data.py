"""What a report shows, read from ``quasar score`` / ``quasar cull`` result files or built from records.

A results file is CSV or JSONL with a ``path`` column, an ``error`` column and one column per head;
``<head>_margin`` columns are ignored; ``quasar cull``'s ``group``, ``rank``, ``keep``,
``similarity``, ``group_size`` and ``capture_time`` columns, when present, make the report show the
groups. The file is read by :func:`quasar.runtime.output.read_rows`, the one reader of results files (its
schema, escaping and guards live there), and the paths are resolved for the thumbnails.

A results file may come from anyone, and its paths name files to open: :func:`read_results` reads
(for thumbnails) only files with an image extension (:data:`quasar.io.files.IMAGE_EXTENSIONS`) whose
real location (symlinks resolved) is inside ROOT: ``--images ROOT``, by default the results file's
folder. A relative path is looked up under ROOT (as written, then by its base name); an absolute path
is used only when it lies under ROOT. Anything else gets no thumbnail ("not under ROOT"). ``quasar
score --report`` and ``quasar cull --report`` show the files that very run read, without this limit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from quasar.errors import QuasarError


@dataclass
class Photo:
    path: str  # as written in the results (display)
    file: str | None  # where its pixels are, for the thumbnail (None: unknown)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    group: int | None = None
    rank: int | None = None
    keep: bool | None = None
    similarity: float | None = None


@dataclass
class ReportData:
    photos: list[Photo]
    heads: list[str]
    title: str = "QUASAR report"
    source: str = ""  # the results file, or what made the data

    @property
    def has_groups(self) -> bool:
        return any(p.group is not None for p in self.photos)

    def default_sort(self) -> str | None:
        """``quality`` when present, else the first head."""
        if "quality" in self.heads:
            return "quality"
        return self.heads[0] if self.heads else None


def _float(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(v) -> int | None:
    x = _float(v)
    return None if x is None else int(x)


def _under(path: str, root_real: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def resolve(path: str, root: str | None, results_dir: str = "", confine: bool = True) -> str | None:
    """Where the image file written as ``path`` is (see the module docstring), or None.

    ``confine``: only image files under ``root`` (default ``results_dir``); without it (the paths of
    this very run) ``path`` itself, then ``root``/``path``, are tried.
    """
    root = root or results_dir
    if not confine:
        for c in (path, os.path.join(root, path)):
            if os.path.isfile(c):
                return c
        return None
    from quasar.io.files import IMAGE_EXTENSIONS

    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        return None
    root_real = os.path.realpath(root)
    candidates = [path] if os.path.isabs(path) else [os.path.join(root, path)]
    candidates.append(os.path.join(root, os.path.basename(path)))
    for c in candidates:
        if _under(c, root_real) and os.path.isfile(c):
            return c
    return None


def read_results(path: str, images_root: str | None = None, confine: bool = True) -> ReportData:
    """A ``quasar score`` or ``quasar cull`` results file (CSV or JSONL) as :class:`ReportData`.

    ``images_root`` and ``confine``: which files may be read for thumbnails (see the module docstring).
    """
    from quasar.runtime.output import head_columns, read_rows

    if not os.path.isfile(path):
        raise QuasarError(f"{path}: results file not found")
    found = read_rows(path)
    if found.csv and "path" not in found.columns:
        raise QuasarError(f"{path}: no 'path' column (is this a quasar score/cull results file?)")
    heads = head_columns(found.columns)
    base = os.path.dirname(os.path.abspath(path))
    photos = []
    for d in found.rows:
        shown = found.text(d, "path") or ""
        keep = d.get("keep")
        photos.append(Photo(
            path=shown, file=resolve(shown, images_root, base, confine),
            scores={h: v for h in heads if (v := _float(d.get(h))) is not None},
            error=found.text(d, "error"),
            group=_int(d.get("group")), rank=_int(d.get("rank")),
            keep=None if keep in (None, "") else bool(_int(keep)), similarity=_float(d.get("similarity"))))
    return ReportData(photos, heads, title=f"QUASAR report: {os.path.basename(path)}", source=path)


def from_records(records, heads) -> ReportData:
    """Scored records (``quasar.runtime.ScoreRecord``) of one run, e.g. ``quasar score --report``."""
    photos = [Photo(r.source, r.source if os.path.isfile(r.source) else None,
                    {h: v for h, v in r.scores.items() if h in heads}, r.error) for r in records]
    return ReportData(photos, list(heads))


def from_cull(result) -> ReportData:
    """A :class:`quasar.cull.run.CullResult`."""
    photos = [Photo(r.path, r.path if os.path.isfile(r.path) else None, dict(r.scores), r.error, r.group, r.rank,
                    r.keep if r.group is not None else None, r.similarity) for r in result.rows]
    return ReportData(photos, list(result.heads), title="QUASAR cull report")
