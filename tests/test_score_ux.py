"""`quasar score` as a first run meets it: progress never mixed with rows (and with a total and an
ETA), the first-use note of the default model, Ctrl-C naming --resume, a warning for tiny images."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from fixtures_images import encode, pattern

from quasar.cli import main

pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i in range(3):
        (d / f"{i}.png").write_bytes(encode(pattern(seed=i), ".png"))
    (d / "notes.txt").write_text("not an image")
    (d / "sub" / "s.png").write_bytes(encode(pattern(seed=9), ".png"))
    return d


# --------------------------------------------------------------------------- progress never mixes with rows


def _run_on_pty(argv: list[str], stdout_on_pty: bool) -> tuple[int, str, str]:
    """Run ``python -m quasar.cli ARGV`` with stderr (and stdout if asked) on a 120-column pty; returns
    (exit status, what the terminal got, what the stdout pipe got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "quasar.cli", *argv], stdin=subprocess.DEVNULL,
                         stdout=slave if stdout_on_pty else subprocess.PIPE, stderr=slave, cwd=REPO, env=ENV)
    os.close(slave)
    out = p.stdout.read() if p.stdout else b""  # the child writes little: no deadlock with the pty below
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        tty += chunk
    rc = p.wait(timeout=300)
    os.close(master)
    return rc, tty.decode("utf-8", "replace"), out.decode()


def test_rows_to_the_terminal_get_no_progress_bar(tiny, folder):
    rc, tty, _ = _run_on_pty(["score", str(folder), "-r", "--model", tiny], stdout_on_pty=True)
    assert rc == 0
    lines = tty.replace("\r\n", "\n").split("\n")
    assert "\r" not in tty.replace("\r\n", "") and "scoring" not in tty and "img/s]" not in tty
    assert lines[0] == "path,quality,aesthetics,error"
    rows = [ln for ln in lines[1:] if ln and not ln.startswith("quasar score: ")]
    assert len(rows) == 4 and all(r.startswith(str(folder)) for r in rows)
    assert lines[5].startswith("quasar score: 4 of 4 scored") and lines[6:] == [""]


def test_piped_rows_stay_clean_and_the_bar_has_a_total(tiny, folder):
    rc, tty, out = _run_on_pty(["score", str(folder), "-r", "--model", tiny], stdout_on_pty=False)
    assert rc == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["path", "quality", "aesthetics", "error"] and len(rows) == 5
    assert all(len(r) == 4 and r[0].startswith(str(folder)) for r in rows[1:])
    assert "scoring" in tty and "4/4 [" in tty and "<00:00" in tty  # a total and an ETA
    assert "quasar score: 4 of 4 scored" in tty and "path,quality" not in tty


def test_count_inputs(tmp_path, folder):
    from quasar.runtime.progress import count_inputs

    empty = tmp_path / "empty"
    empty.mkdir()
    missing = str(tmp_path / "missing.jpg")
    assert count_inputs([str(folder)], recursive=False) == 3
    assert count_inputs([str(folder)], recursive=True) == 4
    assert count_inputs([str(folder), missing, str(folder / "notes.txt")], recursive=True) == 6
    assert count_inputs([str(empty)], recursive=True) == 1  # its "no image files" row
    assert count_inputs([str(folder)], recursive=True, skip=lambda p: p.endswith("1.png")) == 3
    assert count_inputs([str(folder)], recursive=True, cap=3) is None  # too many to count cheaply
    # the same rows as scoring lists
    from quasar.runtime.sources import iter_items

    assert len(list(iter_items([str(folder), str(empty), missing], recursive=True))) == \
        count_inputs([str(folder), str(empty), missing], recursive=True)


# --------------------------------------------------------------------------- the first-use note


def test_exporter_notes_are_passed_on_and_errors_kept(capfd):
    from quasar.runtime.model import run_forwarding_notes

    code = ("import sys; print('quasar: preparing the default model (first use, ~10 s): x', file=sys.stderr, "
            "flush=True); print('noise', file=sys.stderr); print('quasar: error: bad', file=sys.stderr); "
            "print('/tmp/model.onnx')")
    r = run_forwarding_notes([sys.executable, "-c", code])
    err = capfd.readouterr().err
    assert r.returncode == 0 and r.stdout.strip() == "/tmp/model.onnx"
    assert err == "quasar: preparing the default model (first use, ~10 s): x\n"  # not the noise, not the error
    assert "noise" in r.stderr and "quasar: error: bad" in r.stderr


def test_default_export_says_what_it_does(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from quasar.export import default, onnx_export

    monkeypatch.setenv("QUASAR_CACHE", str(tmp_path))

    def fake_export(encoder, pack, path, precision="fp32"):
        Path(path).write_bytes(b"not really a model")
        return path

    monkeypatch.setattr(onnx_export, "export_onnx", fake_export)
    monkeypatch.setattr("quasar.shipped.shipped_model_path", lambda *a: None)  # a tree whose pack changed
    path = default.default_pack_model()
    err = capsys.readouterr().err
    assert path.startswith(str(tmp_path)) and Path(path).exists()
    assert err.startswith("quasar: preparing the default model (first use, ~10 s)") and path in err
    monkeypatch.setattr(default, "_is_current", lambda *a: True)  # a cache hit: nothing to say
    assert default.default_pack_model() == path and capsys.readouterr().err == ""


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_keeps_rows_and_mentions_resume(tiny, folder, tmp_path, monkeypatch, capsys):
    from quasar.runtime import output

    out = tmp_path / "out.csv"
    real_write = output.RowWriter.write
    calls = []

    def write_then_interrupt(self, rec):
        calls.append(rec.source)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(self, rec)

    monkeypatch.setattr(output.RowWriter, "write", write_then_interrupt)
    rc = main(["score", str(folder), "-r", "--model", tiny, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 130
    assert err.splitlines() == [f"quasar score: interrupted; the 2 rows written to {out} are kept: run the same "
                                "command with --resume to continue"]
    assert len(out.read_text().splitlines()) == 3  # header + 2 rows
    monkeypatch.setattr(output.RowWriter, "write", real_write)
    assert main(["score", str(folder), "-r", "--model", tiny, "-o", str(out), "--resume"]) == 0
    assert "2 of 2 scored, 0 failed, 2 already in the output" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 5


# --------------------------------------------------------------------------- tiny images


def test_a_tiny_image_is_scored_with_a_warning(tiny, tmp_path, capsys):
    from quasar.runtime import Scorer

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (8, 10, 3), np.uint8)
    with Scorer(tiny, workers=1) as s:
        big, little = s.score([rng.integers(0, 256, (96, 128, 3), np.uint8), small])
    assert big.ok and big.warning is None
    assert little.ok and 0 <= little.scores["quality"] <= 1
    assert little.warning.startswith("tiny image (10x8 px, under 32 px on its short side)")
    (tmp_path / "t.png").write_bytes(encode(small, ".png"))
    assert main(["score", str(tmp_path / "t.png"), "--model", tiny, "-o", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"quasar score: warning: {tmp_path / 't.png'}: {little.warning}"
    assert err[1].startswith("quasar score: 1 of 1 scored, 0 failed, 1 with a warning")
    assert main(["score", str(tmp_path / "t.png"), "--model", tiny, "-o", str(tmp_path / "q.csv"), "-q"]) == 0
    assert capsys.readouterr().err == ""
