"""``cull``: score a folder once, group near-duplicate shots, mark the best of each group to keep.

One forward pass per photo gives both the quality scores and the embedding (the scorer's
``embeddings=True``, :mod:`quasar.runtime.embedding`); the embedding's *view*
(:mod:`quasar.cull.views`) is compared by cosine similarity (:mod:`quasar.cull.group`), optionally
only within an EXIF capture-time window (:mod:`quasar.cull.capture`); each group is ranked by a
quality head and its best ``keep`` photos are marked keep, the rest drop. Photos that could not be
scored are rows with their error and no group.

Rows (CSV or JSONL): ``group``, ``rank`` (0 = best), ``keep`` (1/0), ``similarity`` (cosine to the
group's best photo, in the view), ``group_size``, ``path``, one column per head, ``capture_time``
(ISO 8601 as the EXIF says, empty when unknown), ``error``; ordered by group, then rank.
``quasar report`` reads the file and shows the groups. The columns, the escaping of the path and the
error and the reader of the ``--resume`` side file are :mod:`quasar.runtime.output`'s, the one home of the
results-file schema.

Safety of the user's files: :func:`unique_items` resolves the inputs to real files (symlinks and hard
links followed: one (device, inode) is one photo) and keeps one entry per file before grouping, so
a photo given twice or through a link is never its own near-duplicate. :func:`place` never moves or
replaces a file that any kept row resolves to, and is idempotent: a file already in the target
folder (the same file, a link to it, or an identical copy) is left as it is, so running the same
cull again adds nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from quasar.cull.capture import capture_time
from quasar.cull.group import group, rank
from quasar.cull.views import apply_view, default_threshold, default_view, view_columns
from quasar.errors import QuasarError

HOW = ("symlink", "hardlink", "copy", "move")


@dataclass
class CullRow:
    path: str
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    group: int | None = None
    rank: int | None = None
    keep: bool = False
    similarity: float | None = None
    group_size: int = 0
    time: float | None = None


@dataclass
class CullResult:
    rows: list[CullRow]  # by group, then rank; failures last
    heads: tuple[str, ...]
    view: str
    threshold: float
    window: float | None

    @property
    def groups(self) -> int:
        return len({r.group for r in self.rows if r.group is not None})


def cull(records: Iterable, *, encoder: str, heads: tuple[str, ...], head: str = "quality",
         threshold: float | None = None, window: float | None = None, view: str | None = None, keep: int = 1,
         times: Callable[[str], float | None] = capture_time) -> CullResult:
    """Group and rank scored records (``ScoreRecord`` with ``embedding``), in the order given.

    ``encoder``: the model's encoder id (picks the view's block layout and default threshold);
    ``times``: capture time of a path (only called with a ``window``).
    """
    if head not in heads:
        raise QuasarError(f"the model has no head {head!r} to rank by (heads: {', '.join(heads)})")
    if keep < 1:
        raise QuasarError("--keep must be at least 1")
    view = view or default_view(encoder)
    if threshold is None:
        threshold = default_threshold(encoder, view)
    ok: list[CullRow] = []
    failed: list[CullRow] = []
    vecs: list[np.ndarray] = []
    cols: list = []  # the view's columns, found from the first embedding
    for rec in records:
        if rec.error is not None or rec.embedding is None:
            failed.append(CullRow(rec.source, error=rec.error or "no embedding"))
            continue
        if not cols:
            cols.append(view_columns(encoder, view, rec.embedding.shape[0]))
        vecs.append(apply_view(rec.embedding[None, :], cols[0])[0])  # keep only the view: less memory
        ok.append(CullRow(rec.source, dict(rec.scores)))
    x = np.stack(vecs) if vecs else np.zeros((0, 1), np.float32)
    t = None
    if window is not None:
        t = [times(r.path) for r in ok]
        for r, v in zip(ok, t, strict=True):
            r.time = v
    labels = group(x, float(threshold), t, window)
    quality = np.array([r.scores[head] for r in ok], dtype=np.float64)
    ranks = rank(labels, quality)
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, np.int64)
    best = {int(g): i for i, g in enumerate(labels) if ranks[i] == 0}
    for i, r in enumerate(ok):
        g = int(labels[i])
        r.group, r.rank, r.group_size = g, int(ranks[i]), int(sizes[g])
        r.keep = r.rank < keep
        r.similarity = float(np.clip(x[i] @ x[best[g]], -1.0, 1.0))
    ok.sort(key=lambda r: (r.group, r.rank))
    return CullResult(ok + failed, heads, view, float(threshold), window)


def unique_items(items: Iterable) -> list:
    """``items`` (:class:`quasar.runtime.sources.Item`) with one entry per real file, in order.

    Entries are the same file when their paths resolve to one (device, inode); of those, the first
    that is not a symlink is kept (else the first). Items that are not readable files pass as they are.
    """
    out: list = []
    where: dict[tuple[int, int], int] = {}
    for it in items:
        key = None
        if it.path is not None:
            try:
                st = os.stat(it.path)
                key = (st.st_dev, st.st_ino)
            except OSError:
                key = None
        if key is None:
            out.append(it)
            continue
        if key not in where:
            where[key] = len(out)
            out.append(it)
        elif os.path.islink(out[where[key]].path) and not os.path.islink(it.path):
            out[where[key]] = it
    return out


SCORES_SUFFIX = ".scores.jsonl"  # beside OUT with --resume: every photo's scores and embedding


def read_scored(path: str) -> dict[str, object]:
    """The records of a ``--resume`` scores file (JSON Lines of ``quasar score --embeddings``), by resume key;
    QuasarError naming the file for a damaged one (the reader's guards, and embeddings of one length)."""
    from quasar.runtime.output import read_rows

    if not os.path.isfile(path):
        return {}
    return scored_records(read_rows(path, "jsonl", why="cannot resume from it: delete it or drop --resume"), path)


def scored_records(found, path: str) -> dict[str, object]:
    """:func:`read_scored` on rows already read (``found``, from :func:`quasar.runtime.output.read_rows`)."""
    from quasar.runtime.output import head_columns
    from quasar.runtime.pathtext import resume_key
    from quasar.runtime.scorer import ScoreRecord

    heads = head_columns(found.columns)
    records: dict[str, object] = {}
    dim = None
    for i, d in enumerate(found.rows, 1):
        source = found.text(d, "path") or ""
        emb = _embedding(d.get("embedding"), f"{path}: row {i}")
        if emb is not None:
            dim = dim or emb.shape[0]
            if emb.shape[0] != dim:
                raise QuasarError(f"{path}: row {i}: an embedding of {emb.shape[0]} values, the others have {dim}; "
                                  "cannot resume from it: delete it or drop --resume")
        scores = {h: float(d[h]) for h in heads if isinstance(d.get(h), (int, float))}
        records[resume_key(source)] = ScoreRecord(source, scores, error=found.text(d, "error"), embedding=emb)
    return records


def _embedding(value, where: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        emb = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        emb = None
    if emb is None or emb.ndim != 1 or not emb.size or not np.isfinite(emb).all():
        raise QuasarError(f"{where}: the embedding is not a list of numbers; cannot resume from it: "
                          "delete it or drop --resume")
    return emb


def score_resumable(scorer, items: list, out: str, on_record: Callable[[], None] | None = None):
    """Records for ``items``: those already in ``out`` + :data:`SCORES_SUFFIX` as they were, the others
    scored now and appended to it row by row (locked, in place), so an interrupted cull loses nothing."""
    from quasar.runtime.output import open_writer
    from quasar.runtime.pathtext import resume_key

    side = out + SCORES_SUFFIX
    # 9 significant digits: the embeddings read back on --resume are the float32 values grouped now
    writer, done = open_writer(side, "jsonl", scorer.heads, resume=True, embeddings=True, embedding_digits=9)
    try:
        old = scored_records(writer.previous, side) if writer.previous is not None else {}
        todo = [it for it in items if resume_key(it.label) not in old]
        fresh = {}
        for rec in scorer.score_items(todo):
            writer.write(rec)
            fresh[resume_key(rec.source)] = rec
            if on_record is not None:
                on_record()
    finally:
        writer.close()
    return [old.get(k) or fresh[k] for k in (resume_key(it.label) for it in items)], len(items) - len(todo)


def _iso(t: float | None) -> str:
    return "" if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def write_rows(result: CullResult, out: str, fmt: str | None = None) -> None:
    """Write the rows as CSV or JSONL (``out`` ``-``: stdout, CSV unless ``fmt``)."""
    import sys

    from quasar.runtime.outfile import Output
    from quasar.runtime.output import cull_columns, infer_format, json_line, text_cell
    from quasar.runtime.pathtext import encode_text

    fmt = infer_format(out, fmt)
    cols = cull_columns(result.heads)
    output = None if out == "-" else Output(out, what="results")
    stream = sys.stdout if output is None else output.stream
    try:
        writer = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writerow(cols)
        for r in result.rows:
            is_csv = writer is not None
            path, error = text_cell(r.path, is_csv), None if r.error is None else text_cell(r.error, is_csv)
            values = {"group": r.group, "rank": r.rank, "keep": int(r.keep) if r.group is not None else None,
                      "similarity": None if r.similarity is None else round(r.similarity, 6),
                      "group_size": r.group_size or None, "path": path,
                      **{h: (None if h not in r.scores else round(r.scores[h], 6)) for h in result.heads},
                      "capture_time": _iso(r.time) or None, "error": error}
            if writer is not None:
                writer.writerow(["" if values[c] is None else values[c] for c in cols])
            else:
                stream.write(json_line({c: values[c] for c in cols}))
    except OSError as e:
        if output is not None:
            output.discard()
        raise QuasarError(f"{encode_text(out)}: cannot write results: {e.strerror or e}") from None
    except BaseException:
        if output is not None:
            output.discard()
        raise
    if output is None:
        stream.flush()
    else:
        output.commit()


def place(result: CullResult, keep_to: str | None, drop_to: str | None, how: str = "symlink") -> dict[str, int]:
    """Put the kept photos into ``keep_to`` and/or the dropped ones into ``drop_to`` (``how``: one of ``HOW``).

    Names are kept; a name already taken in the folder by another file gets ``-1``, ``-2``... before
    its extension. A photo already there (see :func:`_already_there`) is left alone and not counted
    again, so re-running a cull changes nothing. A dropped row that resolves to the same file as a
    kept row is never moved (nor placed). Returns how many files were placed where, and how many
    were already there (``present``). A file that cannot be placed raises QuasarError naming it.
    """
    if how not in HOW:
        raise QuasarError(f"unknown --how {how!r}; expected one of {HOW}")
    kept_files = {k for r in result.rows if r.group is not None and r.keep and (k := _file_key(r.path))}
    counts = {"kept": 0, "dropped": 0, "present": 0}
    for folder, want, key in ((keep_to, True, "kept"), (drop_to, False, "dropped")):
        if folder is None:
            continue
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise QuasarError(f"{folder}: cannot create the folder: {e.strerror or e}") from None
        for r in result.rows:
            if r.group is None or r.keep != want:
                continue
            if not want and _file_key(r.path) in kept_files:
                continue  # the same file is kept under another name: never move it away
            dst = _destination(r.path, folder, how)
            if dst is None:
                counts["present"] += 1
                continue
            _place_one(r.path, dst, how)
            counts[key] += 1
    return counts


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _already_there(src: str, dst: str, how: str) -> bool:
    """Whether ``dst`` already is ``src`` as ``how`` would place it: the same file (a link, a hard link)
    or, for ``copy``, a regular file with the same bytes; a symlink counts when it points at ``src``."""
    if os.path.islink(dst) and os.path.realpath(dst) == os.path.realpath(src):
        return True
    try:
        if os.path.samefile(src, dst):
            return True
    except OSError:
        return False
    if how in ("copy", "move") and os.path.isfile(dst) and not os.path.islink(dst):
        import filecmp

        try:
            return filecmp.cmp(src, dst, shallow=False)
        except OSError:
            return False
    return False


def _destination(src: str, folder: str, how: str) -> str | None:
    """A free name in ``folder`` for ``src`` (``name``, ``stem-1.ext``...), or None when it is already there."""
    name = os.path.basename(src)
    stem, ext = os.path.splitext(name)
    k = 0
    while True:
        dst = os.path.join(folder, name if k == 0 else f"{stem}-{k}{ext}")
        if not os.path.lexists(dst):
            return dst
        if _already_there(src, dst, how):
            return None
        k += 1


def _place_one(src: str, dst: str, how: str) -> None:
    try:
        if how == "symlink":
            os.symlink(os.path.abspath(src), dst)
        elif how == "hardlink":
            os.link(src, dst)
        elif how == "copy":
            shutil.copy2(src, dst)
        else:
            shutil.move(src, dst)
    except OSError as e:
        raise QuasarError(f"{src}: cannot {how} to {dst}: {e.strerror or e}") from None
