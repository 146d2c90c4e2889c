"""Issue 21, "never lose or misplace a user's file": outputs that are inputs, atomic writes, the output
lock, CSV formula cells, cull's placing and re-runs, the report's embedding of names and which files
it reads, symlinked folders under -r, and the quiet / missing-extra command-line details."""

from __future__ import annotations

import csv
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from fixtures_images import encode, pattern

from quasar.cli import main
from quasar.errors import QuasarError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "quasar", "data", "default_quality-fp32.onnx")


def _png(path, seed: int = 0) -> str:
    with open(path, "wb") as f:
        f.write(encode(pattern(48, 64, seed), ".png"))
    return str(path)


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quasar: error: "), err
    return err[0]


# --------------------------------------------------------------------------- 1. an output that is an input


@pytest.mark.parametrize("how", ["same", "link", "image-ext"])
def test_score_refuses_an_output_that_is_an_input(tiny, tmp_path, capsys, how):
    a, b = _png(tmp_path / "a.png", 0), _png(tmp_path / "b.png", 1)
    before = open(b, "rb").read()
    out = {"same": b, "image-ext": str(tmp_path / "new.jpg")}.get(how)
    if how == "link":  # the same file under another name, not an image extension
        out = str(tmp_path / "results.csv")
        os.link(b, out)
    assert main(["score", a, b, "--model", tiny, "-o", out, "-q"]) == 2
    assert "refusing" in _one_error(capsys)
    assert open(b, "rb").read() == before
    assert how != "image-ext" or not os.path.exists(out)


def test_score_report_and_report_command_refuse_inputs_and_non_html(tiny, tmp_path, capsys):
    a, b = _png(tmp_path / "a.png", 0), _png(tmp_path / "b.png", 1)
    before = open(b, "rb").read()
    assert main(["score", a, b, "--model", tiny, "-o", str(tmp_path / "r.csv"), "--report", b, "-q"]) == 2
    assert "refusing" in _one_error(capsys) and open(b, "rb").read() == before
    assert not (tmp_path / "r.csv").exists()  # refused before anything was scored or written
    assert main(["score", a, "--model", tiny, "-o", str(tmp_path / "r.csv"), "-q"]) == 0
    results = (tmp_path / "r.csv").read_bytes()
    assert main(["report", str(tmp_path / "r.csv"), "-o", str(tmp_path / "r.csv"), "-q"]) == 2
    assert ".html" in _one_error(capsys) and (tmp_path / "r.csv").read_bytes() == results
    from quasar.runtime.outfile import check_output

    with pytest.raises(QuasarError, match="also an input"):
        check_output(str(tmp_path / "x.html"), [str(tmp_path / "x.html")], report=True)


def test_outputs_are_written_through_a_temporary_file(tiny, tmp_path, monkeypatch, capsys):
    """A report that fails while being written leaves the old file, and no 0-byte or temporary file."""
    a = _png(tmp_path / "a.png")
    page = tmp_path / "r.html"
    page.write_text("old report")
    assert main(["score", a, "--model", tiny, "-o", str(tmp_path / "r.csv"), "-q"]) == 0
    import quasar.report.build as build

    monkeypatch.setattr(build, "render", lambda **kw: "x" * 100_000 + "\udcff")  # fails half-way through
    assert main(["report", str(tmp_path / "r.csv"), "-o", str(page), "-q"]) == 2
    assert "cannot write the report" in _one_error(capsys)
    assert page.read_text() == "old report"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "r.csv", "r.html"]


def test_results_replace_a_symlinked_output_through_the_link(tiny, tmp_path):
    a = _png(tmp_path / "a.png")
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    os.symlink(real, tmp_path / "link.csv")
    assert main(["score", a, "--model", tiny, "-o", str(tmp_path / "link.csv"), "-q"]) == 0
    assert os.path.islink(tmp_path / "link.csv") and real.read_text().startswith("path,")


# --------------------------------------------------------------------------- 5. one run per output


def test_a_second_run_on_a_locked_output_names_the_first_ones_pid(tiny, tmp_path, capsys):
    a = _png(tmp_path / "a.png")
    out = tmp_path / "r.csv"
    code = textwrap.dedent(f"""
        import sys, time
        from quasar.runtime.outfile import OutputLock
        with OutputLock({str(out)!r}):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["score", a, "--model", tiny, "-o", str(out), "--resume", "-q"]) == 2
        line = _one_error(capsys)
        assert f"PID {holder.pid}" in line and "another quasar run" in line
        assert not out.exists()
    finally:
        holder.communicate("", timeout=30)
    assert main(["score", a, "--model", tiny, "-o", str(out), "--resume", "-q"]) == 0  # released on exit
    assert not os.path.exists(tmp_path / ".r.csv.lock")
    from quasar.runtime.outfile import OutputLock

    with OutputLock(str(out)), pytest.raises(QuasarError, match=f"PID {os.getpid()}"):
        OutputLock(str(out)).acquire()  # flock locks are per open file: a second open conflicts too


# --------------------------------------------------------------------------- 6. spreadsheet formulas


@pytest.mark.parametrize("text", ["=1+2", "+x", "-y.png", "@SUM(A1)", "'quoted", "plain", "", "a=b"])
def test_csv_cells_round_trip(text):
    from quasar.runtime.pathtext import csv_cell, csv_uncell

    cell = csv_cell(text)
    assert csv_uncell(cell) == text
    assert not cell.startswith(("=", "+", "-", "@"))


def test_formula_file_names_are_neutralised_and_resume_still_matches(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = ["=HYPERLINK(1).png", "+a.png", "-b.png", "@c.png", "'d.png", "e.png"]
    for i, n in enumerate(names):
        _png(tmp_path / n, i)
    assert main(["score", "--model", tiny, "-o", "r.csv", "-q", "--", *names[:3]]) == 0
    assert main(["score", "--model", tiny, "-o", "r.csv", "--resume", "--", *names]) == 0
    assert "3 already in the output" in capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "r.csv", newline="", encoding="utf-8")))
    assert [r["path"] for r in rows] == ["'" + n if n[0] in "=+-@'" else n for n in names]
    from quasar.report.data import read_results

    assert [p.path for p in read_results(str(tmp_path / "r.csv")).photos] == names


# --------------------------------------------------------------------------- 7. symlinked folders under -r


def test_walk_follows_links_only_inside_the_root(tmp_path):
    from quasar.runtime.sources import iter_path

    outside = tmp_path / "outside"
    outside.mkdir()
    _png(outside / "secret.png")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    _png(root / "sub" / "a.png")
    os.symlink(outside, root / "elsewhere")
    os.symlink(root / "sub", root / "again")  # inside the root, listed once
    labels = [i.label for i in iter_path(str(root), recursive=True)]
    assert labels == [str(root / "again" / "a.png")]
    labels = [i.label for i in iter_path(str(root), recursive=True, follow_links=True)]
    assert labels == [str(root / "again" / "a.png"), str(root / "elsewhere" / "secret.png")]


def test_score_r_does_not_walk_into_a_link_to_the_root_of_the_disk(tiny, tmp_path, capsys):
    d = tmp_path / "photos"
    d.mkdir()
    _png(d / "a.png")
    os.symlink("/", d / "rootfs")
    assert main(["score", str(d), "-r", "--model", tiny, "-o", str(tmp_path / "r.csv"), "-q"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["path"] for r in rows] == [str(d / "a.png")]


# --------------------------------------------------------------------------- 4. the report


def _page_data(html: str) -> dict:
    block = re.search(r'id="quasar-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in block and ">" not in block
    return json.loads(block)


def test_report_survives_script_like_and_non_utf8_names(tiny, tmp_path, capsys):
    d = tmp_path / "photos"
    d.mkdir()
    _png(d / "<!--<script>.png", 0)
    bad = os.path.join(os.fsencode(str(d)), b"caf\xe9.png")
    with open(bad, "wb") as f:
        f.write(encode(pattern(48, 64, 1), ".png"))
    page = tmp_path / "r.html"
    assert main(["score", str(d), "--model", tiny, "-o", str(tmp_path / "r.csv"), "--report", str(page), "-q"]) == 0
    html = page.read_text(encoding="utf-8")
    names = sorted(p[0].rsplit("/", 1)[1] for p in _page_data(html)["photos"])
    assert names == ["<!--<script>.png", "caf\\xe9.png"]
    assert html.count("<script") == 3 and html.count("</script>") == 3
    page.unlink()
    assert main(["report", str(tmp_path / "r.csv"), "-o", str(page), "-q"]) == 0
    assert len(_page_data(page.read_text(encoding="utf-8"))["photos"]) == 2


def test_report_reads_only_images_under_its_root_and_quotes_no_contents(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd.png").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    (secret / "real.png").write_bytes(encode(pattern(48, 64), ".png"))
    (secret / "notes.txt").write_text("top secret")
    res = tmp_path / "results"
    res.mkdir()
    (res / "here.png").write_bytes(b"root:x:0:0 but named like a photo")
    rows = ["path,quality,error", f"{secret}/passwd.png,0.5,", f"{secret}/real.png,0.5,", f"{secret}/notes.txt,0.5,",
            "../secret/real.png,0.5,", "here.png,0.5,"]
    (res / "r.csv").write_text("\n".join(rows) + "\n")
    page = res / "r.html"
    assert main(["report", str(res / "r.csv"), "-o", str(page), "-q"]) == 0
    html = page.read_text()
    data = _page_data(html)
    assert [p[2] for p in data["photos"]] == [-1, -1, -1, -1, -1]  # nothing outside res/ read; here.png no image
    assert "root:x" not in html and "top secret" not in html
    assert main(["report", str(res / "r.csv"), "-o", str(page), "--images", str(secret), "-q"]) == 0
    data = _page_data(page.read_text())
    assert [p[2] >= 0 for p in data["photos"]] == [False, True, False, True, False]
    assert "root:x" not in page.read_text()


# --------------------------------------------------------------------------- 2, 3. cull


@pytest.fixture()
def roll(tmp_path):
    """Three near-identical frames and one different photo; a symlink to the first frame sorts first."""
    d = tmp_path / "roll"
    d.mkdir()
    base = pattern(96, 128, 0)
    for i in range(3):
        noisy = np.clip(base.astype(np.int16) + np.random.default_rng(i).integers(-3 * i, 3 * i + 1, base.shape),
                        0, 255).astype(np.uint8)
        (d / f"IMG_0{i}.png").write_bytes(encode(noisy, ".png"))
    (d / "other.png").write_bytes(encode(np.rot90(pattern(128, 96, 5)).copy(), ".png"))
    os.symlink("IMG_00.png", d / "0link.png")
    return d


def _cull(argv, tmp_path) -> int:
    return main(["cull", *argv, "--model", DEFAULT_MODEL, "--workers", "1", "--threshold", "0.5", "-q"])


def test_cull_move_never_moves_a_kept_file(roll, tmp_path):
    before = {n: (roll / n).read_bytes() for n in os.listdir(roll) if not os.path.islink(roll / n)}
    argv = [str(roll), str(roll / "IMG_00.png"), "-o", str(tmp_path / "c.csv"), "--keep-to", str(tmp_path / "keep"),
            "--drop-to", str(tmp_path / "drop"), "--how", "move"]
    assert _cull(argv, tmp_path) == 0
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    real = [os.path.realpath(r["path"]) for r in rows]
    assert len(real) == len(set(real)) == 4  # the link and the twice-given path are one photo
    kept = {os.path.basename(r["path"]) for r in rows if r["keep"] == "1"}
    moved = set(os.listdir(tmp_path / "keep")) | set(os.listdir(tmp_path / "drop"))
    assert kept <= set(os.listdir(tmp_path / "keep"))
    after = {}
    for folder in (roll, tmp_path / "keep", tmp_path / "drop"):
        for n in os.listdir(folder):
            if not os.path.islink(folder / n):
                after[n] = (folder / n).read_bytes()
    assert after == before  # every photo still exists somewhere, none twice, none lost
    assert moved


def test_cull_rerun_adds_nothing_and_checks_outputs_first(roll, tmp_path, capsys, monkeypatch):
    argv = [str(roll), "-o", str(tmp_path / "c.csv"), "--keep-to", str(tmp_path / "keep"), "--how", "copy"]
    assert _cull(argv, tmp_path) == 0
    first = sorted(os.listdir(tmp_path / "keep"))
    assert _cull(argv, tmp_path) == 0
    assert sorted(os.listdir(tmp_path / "keep")) == first and not any("-1" in n for n in first)
    import quasar.runtime.scorer as scorer

    def no_scoring(*a, **k):
        raise AssertionError("scored before checking the outputs")

    monkeypatch.setattr(scorer.Scorer, "__init__", no_scoring)
    capsys.readouterr()
    assert _cull([str(roll), "-o", str(roll / "IMG_01.png")], tmp_path) == 2
    assert "refusing" in _one_error(capsys)
    assert _cull([str(roll), "-o", str(tmp_path / "c2.csv"), "--report", str(tmp_path / "c.csv")], tmp_path) == 2
    assert ".html" in _one_error(capsys)
    (tmp_path / "afile").write_text("x")
    assert _cull([str(roll), "--keep-to", str(tmp_path / "afile")], tmp_path) == 2
    assert "not a folder" in _one_error(capsys)


# --------------------------------------------------------------------------- also: -q and a missing extra


def _libpng_warning_png(path) -> None:
    data = encode(pattern(32, 32), ".png")
    body = b"bogus\0\0" + zlib.compress(b"not an icc profile" * 4)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    path.write_bytes(data[:33] + chunk + data[33:])


def test_quiet_silences_libpng_and_numpy_warnings(tiny, tmp_path):
    img = tmp_path / "w.png"
    _libpng_warning_png(img)
    code = textwrap.dedent("""
        import sys, numpy as np
        import quasar.runtime.scorer as s
        real = s.Scorer.score_items
        def noisy(self, items):
            np.log(np.zeros(1))  # a numpy RuntimeWarning
            yield from real(self, items)
        s.Scorer.score_items = noisy
        from quasar.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    args = [sys.executable, "-c", code, "score", str(img), "--model", tiny, "-o", str(tmp_path / "r.csv")]
    loud = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert loud.returncode == 0 and "libpng warning" in loud.stderr and "RuntimeWarning" in loud.stderr
    quiet = subprocess.run(args + ["-q"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""
    bad = subprocess.run(args + ["-q", "--batch-size", "1", "--model", str(tmp_path / "none.onnx")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("quasar: error: ")  # the error line still shows


def test_export_ort_without_onnx_is_one_line(tiny, tmp_path):
    code = textwrap.dedent("""
        import sys
        sys.modules["onnx"] = None
        from quasar.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = subprocess.run([sys.executable, "-c", code, "export", "ort", tiny, "-o", str(tmp_path / "m.ort")],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "quasar: error: quasar export ort needs onnx, which is not installed: pip install 'quasar-engine[export]'"]


def test_cull_resume_scores_only_what_is_new(roll, tmp_path, monkeypatch, capsys):
    import quasar.runtime.scorer as scorer

    real = scorer.Scorer.score_items
    scored: list[str] = []

    def counting(self, items):
        for rec in real(self, items):
            scored.append(rec.source)
            if len(scored) == 3 and stop:  # the third is lost with the interrupt
                raise KeyboardInterrupt
            yield rec

    monkeypatch.setattr(scorer.Scorer, "score_items", counting)
    out = tmp_path / "c.csv"
    argv = [str(roll), "-o", str(out), "--resume"]
    stop = True
    assert _cull(argv, tmp_path) == 130  # interrupted after two photos
    assert not out.exists() and len(open(str(out) + ".scores.jsonl").readlines()) == 2
    stop = False
    scored.clear()
    assert _cull(argv, tmp_path) == 0
    assert len(scored) == 2  # four photos (the link is the first one): two were already scored
    first = out.read_text()
    scored.clear()
    assert _cull(argv, tmp_path) == 0 and scored == [] and out.read_text() == first


# --------------------------------------------------------------------------- fuzz: names embedded in the report

def _names():
    from hypothesis import strategies as st

    special = st.sampled_from(["<", ">", "&", "</script>", "<!--", "<script>", "\u2028", "\u2029", "\\", '"',
                               "\udcff", "\udc80", "\n", "\x00", "]]>", "'"])
    return st.lists(st.one_of(st.text(max_size=8), special), max_size=8).map("".join)


def test_fuzz_report_json_block_holds_any_name():
    """Whatever a file name holds (markup, JS line separators, bytes that are not UTF-8), the report's data
    block has no '<' or '>', is valid UTF-8, and parses back to the name as the results file writes it."""
    from hypothesis import given, settings

    from quasar.report.page import _json_block
    from quasar.runtime.pathtext import encode_text

    @settings(max_examples=400, deadline=None, database=None)
    @given(_names())
    def check(name):
        shown = encode_text(name)
        block = _json_block("quasar-data", {"photos": [[shown]]})
        body = block.split(">", 1)[1].rsplit("</script>", 1)[0]
        assert "<" not in body and ">" not in body and "\u2028" not in body and "\u2029" not in body
        body.encode("utf-8")  # strict: no lone surrogates reach the page
        assert json.loads(body)["photos"][0][0] == shown

    check()
