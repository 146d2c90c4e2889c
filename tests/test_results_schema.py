"""The results-file schema has one home (``quasar.runtime.output``): what ``quasar score`` and ``quasar cull``
write, ``--resume``, ``quasar cull --resume`` and ``quasar report`` read back the same way, with the same guards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quasar.cull.run import read_scored
from quasar.errors import QuasarError
from quasar.report.data import read_results
from quasar.runtime.output import columns, open_writer, read_done, read_text, text_cell
from quasar.runtime.pathtext import resume_key
from quasar.runtime.scorer import ScoreRecord

# U+2028 / U+2029 / U+0085 are line breaks to str.splitlines() but not to the writer: they stay in the row.
ODD_NAMES = ["line\u2028sep.png", "para\u2029sep.png", "nel\x85.png", "fs\x1c.png"]


def _write(out, records, heads=("quality",), embeddings=False):
    writer, _ = open_writer(str(out), None, heads, embeddings=embeddings)
    for rec in records:
        writer.write(rec)
    writer.close()


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_report_reads_names_that_splitlines_would_break(tmp_path, ext):
    out = tmp_path / f"scores.{ext}"
    names = [str(tmp_path / n) for n in ODD_NAMES]
    _write(out, [ScoreRecord(n, {"quality": 0.25}) for n in names])
    data = read_results(str(out))
    assert [p.path for p in data.photos] == names
    assert [p.scores for p in data.photos] == [{"quality": 0.25}] * len(names)


def test_resume_reads_names_that_splitlines_would_break(tmp_path):
    out = tmp_path / "scores.jsonl"
    names = [str(tmp_path / n) for n in ODD_NAMES]
    _write(out, [ScoreRecord(n, {"quality": 0.5}) for n in names])
    assert read_done(str(out), "jsonl", columns(("quality",), False)) == {resume_key(n) for n in names}


def test_report_refuses_a_deeply_nested_json_line(tmp_path):
    out = tmp_path / "scores.jsonl"
    out.write_text('{"path": "a.png", "quality": 0.5, "error": null}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(QuasarError, match=r"scores.jsonl:2: not a JSON line"):
        read_results(str(out))


def test_report_refuses_a_row_whose_path_or_error_is_not_text(tmp_path):
    out = tmp_path / "scores.jsonl"
    out.write_text('{"path": 5, "quality": 0.5, "error": null}\n')
    with pytest.raises(QuasarError, match=r"scores.jsonl:1: not a result row"):
        read_results(str(out))
    out.write_text('{"path": "a.png", "quality": null, "error": ["x"]}\n')
    with pytest.raises(QuasarError, match=r"scores.jsonl:1: .*error"):
        read_results(str(out))


def test_report_refuses_a_csv_row_shorter_than_its_header(tmp_path):
    """A torn cull row would otherwise show a photo named 'None'."""
    out = tmp_path / "cull.csv"
    out.write_text("group,rank,keep,similarity,group_size,path,quality,capture_time,error\n"
                   "0,0,1,1.0,2,a.png,0.9,,\n0,1,0\n")
    with pytest.raises(QuasarError, match=r"cull.csv:3: row has 3 fields, expected 9"):
        read_results(str(out))


def test_cull_resume_reads_errors_back_as_written(tmp_path):
    """The side file's error is decoded like the path: written again, it is not escaped twice."""
    side = tmp_path / "out.csv.scores.jsonl"
    _write(side, [ScoreRecord(str(tmp_path / "a.png"), error="bad \\ byte \udcff")], embeddings=True)
    (rec,) = read_scored(str(side)).values()
    assert rec.error == "bad \\ byte \udcff"


def test_cull_resume_refuses_a_damaged_side_file(tmp_path):
    side = tmp_path / "out.csv.scores.jsonl"
    good = ScoreRecord(str(tmp_path / "a.png"), {"quality": 0.5}, embedding=np.ones(4, np.float32))
    short = ScoreRecord(str(tmp_path / "b.png"), {"quality": 0.5}, embedding=np.ones(3, np.float32))
    _write(side, [good, short], embeddings=True)
    with pytest.raises(QuasarError, match=r"row 2: an embedding of 3 values, the others have 4"):
        read_scored(str(side))
    side.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(QuasarError, match=r"scores.jsonl:1: not a JSON line; cannot resume"):
        read_scored(str(side))


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(), st.booleans())
def test_text_cells_round_trip(text, is_csv):
    cell = text_cell(text, is_csv)
    assert "\n" not in cell and "\r" not in cell
    assert read_text(cell, is_csv) == text


def test_cull_resume_reads_its_scores_file_once(tmp_path, monkeypatch):
    """``cull --resume`` takes the rows the writer already read to find what is done; it used to read
    and parse the whole side file a second time."""
    from quasar.cull import run as cull_run
    from quasar.runtime import output
    from quasar.runtime.scorer import ScoreRecord
    from quasar.runtime.sources import Item

    class FakeScorer:
        heads = ("quality",)

        def score_items(self, items):
            for it in items:
                yield ScoreRecord(it.label, {"quality": 0.5}, embedding=np.ones(4, np.float32))

    out = str(tmp_path / "cull.csv")
    items = [Item(str(tmp_path / f"p{i}.jpg")) for i in range(3)]
    cull_run.score_resumable(FakeScorer(), items[:2], out)
    reads = []
    real = output.read_rows
    monkeypatch.setattr(output, "read_rows", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    recs, reused = cull_run.score_resumable(FakeScorer(), items, out)
    assert reused == 2 and [r.source for r in recs] == [it.label for it in items]
    assert reads == [out + cull_run.SCORES_SUFFIX]
