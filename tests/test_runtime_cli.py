"""``quasar score``: output formats, incremental rows, resume, summary, exit codes."""

from __future__ import annotations

import csv
import json
import os

import pytest
from fixtures_images import encode, jpeg, pattern, truncated

from quasar.cli import main
from quasar.runtime.scorer import Scorer

pytest.importorskip("onnx")


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    (d / "a.png").write_bytes(encode(pattern(seed=1), ".png"))
    (d / "b.jpg").write_bytes(jpeg(pattern(seed=2)))
    (d / "broken.jpg").write_bytes(truncated(jpeg(pattern(300, 400))))
    (d / "sub" / "c.png").write_bytes(encode(pattern(seed=3), ".png"))
    return d


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_output_and_summary(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out.csv"
    rc = main(["score", str(folder), "-r", "--model", tiny, "-o", str(out), "--batch-size", "2", "--workers", "2"])
    assert rc == 0  # per-file failures are not fatal
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "quality", "aesthetics", "error"]
    assert [os.path.relpath(r["path"], folder) for r in rows] == ["a.png", "b.jpg", "broken.jpg",
                                                                 os.path.join("sub", "c.png")]
    broken = rows[2]
    assert broken["quality"] == "" and "truncated JPEG" in broken["error"]
    assert all(0 <= float(r["quality"]) <= 1 and r["error"] == "" for r in rows if r is not broken)
    err = capsys.readouterr().err
    assert "3 of 4 scored, 1 failed" in err and "broken.jpg: truncated JPEG" in err


def test_jsonl_output_with_margins(tiny, folder, tmp_path):
    out = tmp_path / "out.jsonl"
    assert main(["score", str(folder), "--model", tiny, "-o", str(out), "--margins", "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    assert set(rows[0]) == {"path", "quality", "aesthetics", "quality_margin", "aesthetics_margin", "error"}
    assert rows[0]["error"] is None and rows[2]["quality"] is None and rows[2]["error"]


def test_stdout_csv(tiny, folder, capsys):
    assert main(["score", str(folder / "a.png"), "--model", tiny, "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,quality,aesthetics,error" and lines[1].startswith(str(folder / "a.png"))


def test_resume_skips_done_rows_and_repairs_a_partial_line(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert main(["score", str(folder), "--model", tiny, "-o", str(out)]) == 0
    first = read_csv(out)
    assert len(first) == 3
    # An interrupted writer left half a row for a file that is not really done.
    with open(out, "a") as f:
        f.write(f"{folder / 'sub' / 'c.png'},0.12")
    capsys.readouterr()
    assert main(["score", str(folder), "-r", "--model", tiny, "-o", str(out), "--resume"]) == 0
    rows = read_csv(out)
    assert [r["path"] for r in rows[:3]] == [r["path"] for r in first]
    assert len(rows) == 4 and rows[3]["path"] == str(folder / "sub" / "c.png") and rows[3]["error"] == ""
    assert "1 of 1 scored, 0 failed, 3 already in the output" in capsys.readouterr().err
    assert out.read_text().count("path,quality") == 1


def test_resume_jsonl(tiny, folder, tmp_path):
    out = tmp_path / "out.jsonl"
    assert main(["score", str(folder / "a.png"), "--model", tiny, "-o", str(out), "-q"]) == 0
    assert main(["score", str(folder), "--model", tiny, "-o", str(out), "--resume", "-q"]) == 0
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert sorted(paths) == sorted(str(folder / n) for n in ("a.png", "b.jpg", "broken.jpg"))


def test_resume_refuses_a_file_with_other_columns(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out.csv"
    out.write_text("path,sharpness,error\nx.jpg,0.5,\n")
    assert main(["score", str(folder), "--model", tiny, "-o", str(out), "--resume"]) == 2
    assert "differ from this run's" in capsys.readouterr().err


def test_interrupted_run_keeps_scored_rows(tiny, folder, tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    real = Scorer.score_items

    def interrupted(self, items):
        for n, rec in enumerate(real(self, items)):
            if n == 2:
                raise KeyboardInterrupt
            yield rec

    monkeypatch.setattr(Scorer, "score_items", interrupted)
    assert main(["score", str(folder), "-r", "--model", tiny, "-o", str(out)]) == 130
    assert len(read_csv(out)) == 2  # flushed before the interruption
    monkeypatch.setattr(Scorer, "score_items", real)
    assert main(["score", str(folder), "-r", "--model", tiny, "-o", str(out), "--resume", "-q"]) == 0
    assert len(read_csv(out)) == 4


@pytest.mark.parametrize("argv,message", [
    (["--model", "{bad}"], "not an ONNX model"),
    (["--model", "{missing}"], "model file not found"),
    (["--resume"], "--resume needs an output file"),
])
def test_fatal_errors_exit_2(tiny, folder, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.onnx"
    bad.write_text("nope")
    argv = [a.format(bad=bad, missing=tmp_path / "missing.onnx") for a in argv]
    if "--model" not in argv:
        argv += ["--model", tiny]
    assert main(["score", str(folder), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_arguments_exit_2(tiny, folder):
    with pytest.raises(SystemExit) as e:
        main(["score", str(folder), "--model", tiny, "--batch-size", "0"])
    assert e.value.code == 2


def test_folder_without_images_is_an_error_row_and_exit_1(tiny, tmp_path, capsys):
    out = tmp_path / "o.csv"
    assert main(["score", str(tmp_path), "--model", tiny, "-o", str(out)]) == 1  # nothing was scored
    (row,) = read_csv(out)
    assert row["path"] == str(tmp_path) and "is a directory with no image files in it; use -r" in row["error"]
    assert "0 of 1 scored, 1 failed" in capsys.readouterr().err
