"""Result files and exit status of ``quasar score``: any file name gets a row, write errors, resume, exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from fixtures_images import encode, pattern
from hypothesis import given, settings
from hypothesis import strategies as st

from quasar.cli import main
from quasar.runtime.pathtext import decode_text, encode_text, resume_key

pytest.importorskip("onnx")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_rows(path) -> list[dict]:
    if str(path).endswith(".jsonl"):
        return [json.loads(line, parse_constant=_no_constants) for line in open(path, encoding="utf-8")]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _no_constants(name):
    raise ValueError(f"invalid JSON constant {name}")


def awkward_names(d) -> list[str]:
    """Files whose names are not valid UTF-8 or hold control characters; returns their paths as Python sees them."""
    png = encode(pattern(), ".png")
    names = [b"bad\xff\xfe.png", "caf\xe9".encode("latin-1") + b".png", b"cr\rx.png", b"nl\nx.png",
             b"back\\slash\\x41.png", b"plain.png"]
    out = []
    for n in names:
        p = os.path.join(os.fsencode(str(d)), n)
        with open(p, "wb") as f:
            f.write(png)
        out.append(os.fsdecode(p))
    return sorted(out)


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_every_file_name_gets_a_row_and_resume_recognises_it(tiny, tmp_path, ext, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    want = awkward_names(d)
    out = tmp_path / f"x.{ext}"
    assert main(["score", str(d), "--model", tiny, "-o", str(out), "-q"]) == 0
    rows = read_rows(out)  # valid UTF-8, valid CSV / strict JSON
    assert sorted(decode_text(r["path"]) for r in rows) == want
    assert all(r["error"] in ("", None) for r in rows)
    assert any(r["path"].endswith(r"/bad\xff\xfe.png") for r in rows)  # the documented escaped form
    capsys.readouterr()
    assert main(["score", str(d), "--model", tiny, "-o", str(out), "--resume"]) == 0
    assert f"0 of 0 scored, 0 failed, {len(want)} already in the output" in capsys.readouterr().err
    assert len(read_rows(out)) == len(want)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_path_text_round_trips_any_bytes(raw):
    path = os.fsdecode(raw)
    text = encode_text(path)
    text.encode("utf-8")  # always encodable
    assert "\n" not in text and "\r" not in text
    assert decode_text(text) == path


def test_full_disk_is_one_line_error(tiny, tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    img = tmp_path / "a.png"
    img.write_bytes(encode(pattern(), ".png"))
    assert main(["score", str(img), "--model", tiny, "-o", "/dev/full"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["quasar: error: /dev/full: cannot write results: No space left on device"]


@pytest.mark.parametrize("argv", [["score", "{img}", "--model", "{tiny}"], ["centroids", "info", "default", "--json"]],
                         ids=["score", "centroids-info"])
def test_closed_pipe_ends_quietly(tiny, tmp_path, argv):
    img = tmp_path / "a.png"
    img.write_bytes(encode(pattern(), ".png"))
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first byte is written, like `| head` that has finished
    try:
        p = subprocess.run([sys.executable, "-m", "quasar.cli", *[a.format(img=img, tiny=tiny) for a in argv]],
                           stdout=w, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 141 and p.stderr == ""


def test_resume_matches_paths_however_spelled(tiny, tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"{i}.png").write_bytes(encode(pattern(seed=i), ".png"))
    monkeypatch.chdir(tmp_path)
    for spelling in ("photos", "./photos/", str(photos), "photos/../photos"):
        assert main(["score", spelling, "--model", tiny, "-o", "out.csv", "--resume", "-q"]) == 0
    assert len(read_rows(tmp_path / "out.csv")) == 3
    assert resume_key("photos/a.png") == resume_key("./photos/a.png") == str(photos / "a.png")


def test_resume_rewrites_a_torn_header(tiny, tmp_path, capsys):
    img = tmp_path / "a.png"
    img.write_bytes(encode(pattern(), ".png"))
    out = tmp_path / "out.csv"
    out.write_text("path,qual")  # the run died while writing the header
    assert main(["score", str(img), "--model", tiny, "-o", str(out), "--resume"]) == 0
    assert out.read_text().splitlines()[0] == "path,quality,aesthetics,error"
    assert [r["path"] for r in read_rows(out)] == [str(img)]
    assert "half-written last line" in capsys.readouterr().err


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_resume_cuts_a_nul_filled_tail_and_refuses_nuls_inside(tiny, tmp_path, ext, capsys):
    imgs = []
    for i in range(2):
        imgs.append(tmp_path / f"{i}.png")
        imgs[-1].write_bytes(encode(pattern(seed=i), ".png"))
    out = tmp_path / f"out.{ext}"
    assert main(["score", str(imgs[0]), "--model", tiny, "-o", str(out), "-q"]) == 0
    with open(out, "ab") as f:
        f.write(b"\0" * 300)  # a crash after the file grew, before its data reached the disk
    assert main(["score", *map(str, imgs), "--model", tiny, "-o", str(out), "--resume"]) == 0
    assert [decode_text(r["path"]) for r in read_rows(out)] == [str(p) for p in imgs]
    assert "NUL-filled tail (300 bytes)" in capsys.readouterr().err
    lines = out.read_bytes().splitlines(keepends=True)  # NULs with a row after them: damage inside the file
    out.write_bytes(b"".join(lines[:-1]) + b"\0" * 10 + b"\n" + lines[-1])
    assert main(["score", *map(str, imgs), "--model", tiny, "-o", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NUL bytes in the middle of the file" in err[0]


def test_resume_refuses_a_deeply_nested_json_line(tiny, tmp_path, capsys):
    img = tmp_path / "a.png"
    img.write_bytes(encode(pattern(), ".png"))
    out = tmp_path / "o.jsonl"
    out.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    assert main(["score", str(img), "--model", tiny, "-o", str(out), "--resume"]) == 2
    assert "o.jsonl:1: not a JSON line" in capsys.readouterr().err


def test_exit_status(tiny, tmp_path, capsys):
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    good.write_bytes(encode(pattern(), ".png"))
    bad.write_bytes(b"not an image")
    run = lambda *a: main(["score", *map(str, a), "--model", tiny, "-q"])  # noqa: E731
    assert run(good, bad) == 0  # something scored
    assert run(bad) == 1  # nothing scored
    assert run(tmp_path / "missing.jpg") == 1
    assert run(good, bad, "--strict") == 1  # any failure
    assert run(good, "--strict") == 0
    out = tmp_path / "o.csv"
    assert run(good, "-o", out) == 0
    assert run(good, "-o", out, "--resume") == 0  # everything was already done
    many = tmp_path / "many"
    many.mkdir()
    for i in range(50):
        (many / f"{i}.jpg").write_bytes(b"junk")
    assert run(many) == 1


def test_help_documents_exit_status_and_path_escaping(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "--strict" in text and "141" in text and r"\xNN" in text
