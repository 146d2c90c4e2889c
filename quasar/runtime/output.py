"""Result files: CSV or JSON Lines, written row by row and resumable; the one home of their schema.

The schema of every results file (``quasar score``'s, ``quasar cull``'s and the ``--resume`` side
file of ``quasar cull``) lives here: the columns (:func:`columns`, :func:`cull_columns`, which are
heads: :func:`head_columns`), how text cells are escaped (:func:`text_cell`, :func:`json_line`) and
the one reader of them all (:func:`read_rows`), with every guard: UTF-8, lines split on ``\n`` only
(a path may hold U+2028), one JSON object with a text ``path`` per line, CSV rows as wide as the
header, each refusal one line naming the file and the line.

Each row is flushed as soon as it is written, so an interrupted run keeps everything it scored.
Text fields (the path and the error) are written through :func:`quasar.runtime.pathtext.encode_text`:
always valid UTF-8 on one line, with undecodable bytes and control characters as ``\\xNN``, so every
file gets its row; in CSV a path or error cell that a spreadsheet would run as a formula gets a
leading ``'`` (:func:`~quasar.runtime.pathtext.csv_cell`, stripped again when read back). CSV fields are quoted by the csv module where needed; JSON is written with
``allow_nan=False`` (scores are finite by then: a non-finite score is a per-file error).

``--resume`` reads the rows already present and matches them by
:func:`~quasar.runtime.pathtext.resume_key` (absolute, normalised path). A damaged file is repaired
when the damage is at its end (a half-written last line, a NUL-filled tail left by a crash, a torn
header) and refused with one line otherwise. Columns: ``path``, one per head (P(good)), optionally
``<head>_margin``, then ``error`` (empty / null when the image was scored). With ``embeddings``
(``quasar score --embeddings``) JSONL rows get an ``embedding`` list (null on failure) and a CSV gets
a side file ``OUT.embeddings.npy`` (float32 [rows, D] in row order, NaN rows for failures), written
when the file is closed. The output is locked for the run and, without ``--resume``, written
through a temporary file renamed into place; with ``--resume`` rows are appended in place
(:mod:`quasar.runtime.outfile` says why). A write error (a full
disk) is a :class:`~quasar.errors.QuasarError` naming the file; a closed pipe raises
``BrokenPipeError`` for the CLI to end quietly.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from typing import TextIO

from quasar.errors import QuasarError
from quasar.runtime.explain import REASON_COLUMN, reason
from quasar.runtime.outfile import Output, OutputLock, is_device
from quasar.runtime.pathtext import csv_cell, csv_uncell, decode_text, encode_text, resume_key
from quasar.runtime.scorer import ScoreRecord

FORMATS = ("csv", "jsonl")
EMBEDDINGS_SUFFIX = ".embeddings.npy"  # beside a CSV written with embeddings


def infer_format(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def columns(heads: tuple[str, ...], margins: bool, reasons: tuple[str, ...] = ()) -> list[str]:
    """The columns of a results file; ``reasons`` (the family heads, ``--explain``) adds ``reason``."""
    cols = ["path", *heads]
    if margins:
        cols += [f"{h}_margin" for h in heads]
    if reasons:
        cols.append(REASON_COLUMN)
    return cols + ["error"]


CULL_COLUMNS = ("group", "rank", "keep", "similarity", "group_size")  # before the path in quasar cull's rows
CAPTURE_COLUMN = "capture_time"
EMBEDDING_KEY = "embedding"  # JSONL rows written with embeddings
NON_HEAD_COLUMNS = frozenset({"path", "error", REASON_COLUMN, *CULL_COLUMNS, CAPTURE_COLUMN, EMBEDDING_KEY})


def cull_columns(heads: tuple[str, ...]) -> list[str]:
    """The columns of a ``quasar cull`` results file."""
    return [*CULL_COLUMNS, "path", *heads, CAPTURE_COLUMN, "error"]


def head_columns(cols) -> list[str]:
    """Which of a results file's columns are heads (P(good) scores): not a margin, not a fixed column."""
    return [c for c in cols if c not in NON_HEAD_COLUMNS and not c.endswith("_margin")]


def text_cell(text: str, csv_file: bool) -> str:
    """A path or an error as written: :func:`encode_text`, and in CSV no leading formula character."""
    text = encode_text(text)
    return csv_cell(text) if csv_file else text


def read_text(cell: str, csv_file: bool) -> str:
    """The inverse of :func:`text_cell`: the path or error a cell holds."""
    return decode_text(csv_uncell(cell) if csv_file else cell)


def json_line(row: dict) -> str:
    """One JSON Lines row: UTF-8 as is, no NaN (scores are finite by then)."""
    return json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n"


@dataclass
class Rows:
    """A results file read back: its columns (JSONL: every key in order of appearance), its rows as dicts
    (CSV: text cells; JSONL: as parsed) and whether it is CSV (for :func:`read_text`)."""

    columns: list[str]
    rows: list[dict]
    csv: bool

    def text(self, row: dict, column: str) -> str | None:
        """A text cell (``path``, ``error``) decoded, or None when empty."""
        v = row.get(column)
        return None if v is None or v == "" else read_text(str(v), self.csv)


def read_rows(path: str, fmt: str | None = None, why: str = "") -> Rows:
    """Read a results file (``fmt`` None: JSONL when it starts with ``{``, else CSV); QuasarError naming the
    file (and line) for anything that is not one, with ``; why`` appended (e.g. "cannot resume from it")."""
    tail = f"; {why}" if why else ""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise QuasarError(f"{path}: not UTF-8 text at byte {e.start}{tail}") from None
    if fmt is None:
        fmt = "jsonl" if text.lstrip()[:1] == "{" else "csv"
    if fmt == "csv":
        return _read_csv(path, text, tail)
    rows: list[dict] = []
    cols: dict[str, None] = {}
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 or U+0085 may be in a path
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except (ValueError, RecursionError):
            raise QuasarError(f"{path}:{n}: not a JSON line{tail}") from None
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            raise QuasarError(f"{path}:{n}: not a result row (no \"path\"){tail}")
        if not isinstance(d.get("error"), (str, type(None))):
            raise QuasarError(f"{path}:{n}: not a result row (\"error\" is not text){tail}")
        cols.update(dict.fromkeys(d))
        rows.append(d)
    return Rows(list(cols), rows, csv=False)


def _read_csv(path: str, text: str, tail: str) -> Rows:
    reader = csv.reader(io.StringIO(text))  # StringIO: rows end at \n only, quoted newlines stay in their cell
    try:
        header = next(reader, None)
        if header is None:
            return Rows([], [], csv=True)
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise QuasarError(f"{path}:{reader.line_num}: row has {len(row)} fields, expected {len(header)} "
                                  f"(damaged file){tail}")
            rows.append(dict(zip(header, row, strict=True)))
    except csv.Error as e:
        raise QuasarError(f"{path}:{reader.line_num}: malformed CSV ({e}){tail}") from None
    return Rows(header, rows, csv=True)


class RowWriter:
    """Writes one row per :class:`ScoreRecord` and flushes it."""

    def __init__(self, stream: TextIO, fmt: str, heads: tuple[str, ...], margins: bool, header: bool,
                 owns: bool, name: str = "<stdout>", embeddings: bool = False, reasons: tuple[str, ...] = (),
                 embedding_digits: int = 6) -> None:
        self.stream, self.fmt, self.heads, self.margins, self.owns = stream, fmt, heads, margins, owns
        self.reasons = reasons
        self.embedding_digits = embedding_digits  # JSONL: significant digits (9 round-trips float32 exactly)
        self.name = name
        self.embeddings = embeddings
        self._npy_rows: list = []  # CSV with embeddings: one entry per row, written by close()
        self.notes: list[str] = []  # what --resume repaired, for the CLI to report
        self.previous = None  # --resume: the rows already in the file (read once, by open_writer)
        self.columns = columns(heads, margins, reasons)
        self._failed = False
        self.output: Output | None = None  # set by open_writer: committed (or discarded) by close()
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if header and self._csv is not None:
            self._guarded(lambda: self._csv.writerow(self.columns))

    def _guarded(self, write) -> None:
        """Run ``write`` and flush; a full disk or an I/O error becomes one QuasarError naming the file."""
        try:
            write()
            self.stream.flush()
        except BrokenPipeError:
            self._failed = True
            raise
        except OSError as e:
            self._failed = True
            raise QuasarError(f"{self.name}: cannot write results: {e.strerror or e}") from None

    def write(self, rec: ScoreRecord) -> None:
        is_csv = self._csv is not None
        path = text_cell(rec.source, is_csv)
        error = None if rec.error is None else text_cell(rec.error, is_csv)
        if self._csv is not None:
            row = [path] + [_fmt(rec.scores.get(h)) for h in self.heads]
            if self.margins:
                row += [_fmt(rec.margins.get(h)) for h in self.heads]
            if self.reasons:
                row.append(reason(rec.scores, self.reasons) if rec.ok else "")
            self._guarded(lambda: self._csv.writerow(row + [error or ""]))
            if self.embeddings:
                self._npy_rows.append(rec.embedding)
            return
        d: dict = {"path": path}
        d.update({h: rec.scores.get(h) for h in self.heads})
        if self.margins:
            d.update({f"{h}_margin": rec.margins.get(h) for h in self.heads})
        if self.reasons:
            d[REASON_COLUMN] = reason(rec.scores, self.reasons) if rec.ok else None
        d["error"] = error
        if self.embeddings:
            d[EMBEDDING_KEY] = None if rec.embedding is None else [float(f"{v:.{self.embedding_digits}g}")
                                                                    for v in rec.embedding.tolist()]
        line = json_line(d)
        self._guarded(lambda: self.stream.write(line))

    def close(self) -> None:
        """Close (a temporary file: renamed into place unless a write failed) and release the lock."""
        try:
            if self.embeddings and self._csv is not None and self.owns and not self._failed:
                self._write_npy()
            if not self.owns:
                return
            if self.output is not None:
                if self._failed:  # the rows did not all reach the file: OUT stays as it was
                    self.output.discard()
                else:
                    self.output.commit()
                return
            try:
                self.stream.close()
            except OSError as e:
                if not self._failed:  # after a failed write the same error was already reported
                    raise QuasarError(f"{self.name}: cannot write results: {e.strerror or e}") from None
        except BaseException:
            if self.output is not None:
                self.output.discard()
            raise


    def _write_npy(self) -> None:
        import numpy as np

        dim = next((len(e) for e in self._npy_rows if e is not None), 0)
        out = np.full((len(self._npy_rows), dim), np.nan, np.float32)
        for i, e in enumerate(self._npy_rows):
            if e is not None:
                out[i] = e
        path = self.name + EMBEDDINGS_SUFFIX
        f = Output(path, what="embeddings", binary=True)
        try:
            np.save(f.stream, out)
        except OSError as e:
            f.discard()
            raise QuasarError(f"{path}: cannot write embeddings: {e.strerror or e}") from None
        f.commit()


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def open_writer(out: str, fmt: str | None, heads: tuple[str, ...], margins: bool = False,
                resume: bool = False, embeddings: bool = False,
                reasons: tuple[str, ...] = (), embedding_digits: int = 6) -> tuple[RowWriter, set[str]]:
    """Open ``out`` (``-``: stdout) for writing; with ``resume``, also return the
    :func:`~quasar.runtime.pathtext.resume_key` of every path already done. ``reasons``: the family
    heads whose weakest one the ``reason`` column names (:mod:`quasar.runtime.explain`)."""
    fmt = infer_format(out, fmt)
    if fmt not in FORMATS:
        raise QuasarError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    if embeddings and resume and fmt == "csv":  # the .npy side file is written whole at the end
        raise QuasarError("--embeddings cannot be combined with --resume in CSV (write JSONL, or a new output file)")
    if embeddings and fmt == "csv" and out == "-":
        raise QuasarError("--embeddings with CSV needs an output file (-o OUT.csv writes OUT.csv.embeddings.npy), "
                          "or use JSONL")
    if out == "-":
        if resume:
            raise QuasarError("--resume needs an output file (-o FILE), not stdout")
        return RowWriter(sys.stdout, fmt, heads, margins, header=True, owns=False, embeddings=embeddings,
                         reasons=reasons), set()
    if os.path.isdir(out):
        raise QuasarError(f"{encode_text(out)}: is a directory; give a file name for the results")
    lock = None if is_device(out) else OutputLock(out).acquire()  # before reading what is done
    try:
        done: set[str] = set()
        previous = None
        notes: list[str] = []
        existing = resume and os.path.isfile(out) and os.path.getsize(out) > 0
        if existing:
            notes = repair_tail(out)
            want = columns(heads, margins, reasons) + ([EMBEDDING_KEY] if embeddings else [])  # (JSONL only here)
            previous = read_existing(out, fmt, want)
            done = {resume_key(previous.text(row, "path") or "") for row in previous.rows}
            existing = os.path.getsize(out) > 0  # a torn header was cut: start the file again
        # --resume appends in place, each row durable at once; else a temporary file (quasar.runtime.outfile)
        output = Output(out, what="results", append=resume, lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    try:
        writer = RowWriter(output.stream, fmt, heads, margins, header=not existing, owns=True, name=out,
                           embeddings=embeddings, reasons=reasons, embedding_digits=embedding_digits)
    except BaseException:
        output.discard()
        raise
    writer.output = output
    writer.notes = notes
    writer.previous = previous  # the rows already there (read once; cull --resume reuses them)
    return writer, done


def repair_tail(path: str) -> list[str]:
    """Cut damage at the end of a results file so rows can be appended; returns what was cut.

    A crash can leave a NUL-filled tail (the file grew before its data reached the disk) and a
    half-written last line; both are cut back to the last complete line. NUL bytes followed by more
    data are damage in the middle of the file: refused with a QuasarError.
    """
    with open(path, "rb+") as f:
        data = f.read()
        keep = len(data)
        nul = data.find(b"\0")
        notes = []
        if nul >= 0:
            if data[nul:].strip(b"\0\r\n"):
                line = data.count(b"\n", 0, nul) + 1
                raise QuasarError(f"{path}:{line}: NUL bytes in the middle of the file (damaged); "
                                  "cannot resume from it: use another output file or drop --resume")
            keep = data.rfind(b"\n", 0, nul) + 1
            notes.append(f"cut a NUL-filled tail ({len(data) - keep} bytes)")
        if keep and data[keep - 1 : keep] != b"\n":
            cut = data.rfind(b"\n", 0, keep) + 1
            notes.append(f"cut a half-written last line ({keep - cut} bytes)")
            keep = cut
        if keep < len(data):
            f.truncate(keep)
        if keep == 0 and data:
            notes.append("no complete header line was left; the header is written again")
        return notes


def read_done(path: str, fmt: str, want: list[str]) -> set[str]:
    """Resume keys of the paths already in a results file; QuasarError if its columns do not match
    this run's or a row is malformed (call :func:`repair_tail` first)."""
    found = read_existing(path, fmt, want)
    return {resume_key(found.text(row, "path") or "") for row in found.rows}


def read_existing(path: str, fmt: str, want: list[str]):
    """The rows already in a results file (:func:`read_rows`), checked against this run's columns
    ``want``: QuasarError if they differ or a row is malformed (call :func:`repair_tail` first)."""
    found = read_rows(path, fmt, why="cannot resume from it")
    if found.csv:
        if found.columns and found.columns != want:
            raise QuasarError(f"{path}: columns {found.columns} differ from this run's {want}; "
                              "use another output file or drop --resume")
    elif found.rows and sorted(found.rows[0]) != sorted(want):
        raise QuasarError(f"{path}: keys {sorted(found.rows[0])} differ from this run's {sorted(want)}; "
                          "use another output file or drop --resume")
    return found
