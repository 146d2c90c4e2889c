"""Result files for ``quasar score``: CSV or JSON Lines, written row by row and resumable.

Each row is flushed as soon as it is written, so an interrupted run keeps everything it scored.
``--resume`` reads the paths already present (dropping a half-written last line) and appends.
Columns: ``path``, one per head (P(good)), optionally ``<head>_margin``, then ``error`` (empty / null
when the image was scored).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import TextIO

from quasar.errors import QuasarError
from quasar.runtime.scorer import ScoreRecord

FORMATS = ("csv", "jsonl")


def infer_format(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def columns(heads: tuple[str, ...], margins: bool) -> list[str]:
    cols = ["path", *heads]
    if margins:
        cols += [f"{h}_margin" for h in heads]
    return cols + ["error"]


class RowWriter:
    """Writes one row per :class:`ScoreRecord` and flushes it."""

    def __init__(self, stream: TextIO, fmt: str, heads: tuple[str, ...], margins: bool, header: bool,
                 owns: bool) -> None:
        self.stream, self.fmt, self.heads, self.margins, self.owns = stream, fmt, heads, margins, owns
        self.columns = columns(heads, margins)
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if header and self._csv is not None:
            self._csv.writerow(self.columns)
            stream.flush()

    def write(self, rec: ScoreRecord) -> None:
        if self._csv is not None:
            row = [rec.source] + [_fmt(rec.scores.get(h)) for h in self.heads]
            if self.margins:
                row += [_fmt(rec.margins.get(h)) for h in self.heads]
            self._csv.writerow(row + [rec.error or ""])
        else:
            d: dict = {"path": rec.source}
            d.update({h: rec.scores.get(h) for h in self.heads})
            if self.margins:
                d.update({f"{h}_margin": rec.margins.get(h) for h in self.heads})
            d["error"] = rec.error
            self.stream.write(json.dumps(d, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.owns:
            self.stream.close()


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def open_writer(out: str, fmt: str | None, heads: tuple[str, ...], margins: bool = False,
                resume: bool = False) -> tuple[RowWriter, set[str]]:
    """Open ``out`` (``-``: stdout) for writing; with ``resume``, also return the paths already done."""
    fmt = infer_format(out, fmt)
    if fmt not in FORMATS:
        raise QuasarError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    if out == "-":
        if resume:
            raise QuasarError("--resume needs an output file (-o FILE), not stdout")
        return RowWriter(sys.stdout, fmt, heads, margins, header=True, owns=False), set()
    done: set[str] = set()
    existing = resume and os.path.exists(out) and os.path.getsize(out) > 0
    if existing:
        done = read_done(out, fmt, columns(heads, margins))
    stream = open(out, "a" if existing else "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by RowWriter
    return RowWriter(stream, fmt, heads, margins, header=not existing, owns=True), done


def _drop_partial_line(path: str) -> None:
    """An interrupted write can leave a last line without its newline; cut it off before appending."""
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def read_done(path: str, fmt: str, want: list[str]) -> set[str]:
    """Paths already in a results file; QuasarError if its columns do not match this run's."""
    _drop_partial_line(path)
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    done: set[str] = set()
    if fmt == "csv":
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None:
            return done
        if header != want:
            raise QuasarError(f"{path}: columns {header} differ from this run's {want}; "
                              "use another output file or drop --resume")
        done.update(r[0] for r in rows if r)
        return done
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError:
            raise QuasarError(f"{path}:{n}: not a JSON line; cannot resume from this file") from None
        if n == 1 and sorted(d) != sorted(want):
            raise QuasarError(f"{path}: keys {sorted(d)} differ from this run's {sorted(want)}; "
                              "use another output file or drop --resume")
        done.add(d["path"])
    return done
