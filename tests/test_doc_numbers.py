"""Every measured number in the docs comes from a results file (benchmarks/doc_numbers.py), and the
README's commands are the ones CI runs."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dn():
    spec = importlib.util.spec_from_file_location("doc_numbers", os.path.join(REPO, "benchmarks", "doc_numbers.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_number_in_the_docs_matches_its_results_file(dn):
    """README.md, docs/*.md, benchmarks/README.md and `quasar score --help`: each sourced number equals
    its results file's value, and no page quotes an unsourced measurement."""
    problems, total = dn.check_all(write=False)
    assert problems == [], "\n".join(problems) + "\n(fix: python benchmarks/doc_numbers.py, or source/delete them)"
    assert total >= 10


@pytest.fixture
def results(dn, tmp_path, monkeypatch):
    res = tmp_path / "results"
    res.mkdir()
    (res / "r.json").write_text(json.dumps({
        "a": {"mean": 0.7305, "diff": -0.0012, "up": 0.0091},
        "rows": [{"view": "full", "w": None, "f1": 0.95}, {"view": "deep", "w": None, "f1": 0.9719},
                 {"view": "deep", "w": 2.0, "f1": 0.9984}],
        "text": "x"}))
    monkeypatch.setattr(dn, "RESULTS", str(res))
    return res


def test_a_changed_result_fails_the_check_until_the_docs_are_rendered(dn, results, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n\n"
                   "mean 0.73<!--src r.json:a/mean-->, "
                   "F1 97 %<!--src r.json:rows/view=deep&w=None/f1|x100-->, "
                   "shift +0.01<!--src r.json:a/up--> / −0.00<!--src r.json:a/diff-->\n")
    assert dn.process(str(doc), write=False, cache={}) == ([], 4)
    data = json.loads((results / "r.json").read_text())
    data["a"]["mean"], data["a"]["diff"] = 0.8149, 0.004
    (results / "r.json").write_text(json.dumps(data))
    problems, _ = dn.process(str(doc), write=False, cache={})
    assert problems == ["line 3: 0.73 should be 0.81 (r.json:a/mean)",
                        "line 3: −0.00 should be +0.00 (r.json:a/diff)"]
    dn.process(str(doc), write=True, cache={})  # render: the docs follow the results
    assert "mean 0.81<!--src" in doc.read_text() and "/ +0.00<!--src" in doc.read_text()
    assert dn.process(str(doc), write=False, cache={}) == ([], 4)


def test_a_placeholder_is_rendered_from_a_key_holding_a_slash_in_a_results_subfolder(dn, results, tmp_path):
    (results / "sub").mkdir()
    (results / "sub" / "s.json").write_text(json.dumps({
        "rows": {"camera/eager": {"ips": 4.0285}},
        "targets": [{"name": "camera/fp32/e2e", "value": 0.6352}]}))
    doc = tmp_path / "doc.md"
    doc.write_text("eager 0.00<!--src sub/s.json:rows/camera/eager/ips--> img/s, "
                   "0 %<!--src sub/s.json:targets/name=camera/fp32/e2e/value|x100--> of model-only\n")
    problems, n = dn.process(str(doc), write=True, cache={})
    assert n == 2 and all("should be" in p for p in problems)
    assert doc.read_text().startswith("eager 4.03<!--src") and "img/s, 64 %<!--src" in doc.read_text()
    assert dn.process(str(doc), write=False, cache={}) == ([], 2)


def test_unsourced_measurements_and_bad_sources_are_problems(dn, results, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# A page\n"
                   "p99 106 ms, 1.15x, 78 % kept, SRCC 0.67, OpenCV 4.6, level 3 of 5, `--ratio 0.2`\n"
                   "gone 0.5<!--src r.json:a/nope--> text 1<!--src r.json:text--> missing 2<!--src nofile.json:a-->\n"
                   "<!-- a comment: 0.5 -->\n")
    problems, n = dn.process(str(doc), write=False, cache={})
    assert n == 3
    assert problems[:3] == ["line 3: r.json:a/nope: no key or element 'nope'",
                            "line 3: r.json:text: not a number (str)",
                            f"line 3: benchmarks/results/nofile.json: [Errno 2] No such file or directory: "
                            f"'{results / 'nofile.json'}'"]
    assert [re.search(r"'(.*)'", p).group(1) for p in problems[3:]] == ["106 ms", "1.15", "78 %", "0.67"]
    assert all(p.startswith("line 2:") for p in problems[3:])


def test_line_numbers_count_the_lines_of_code_blocks(dn, results, tmp_path):
    """A multi-line code block is blanked, not removed: the line named is the number's own."""
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n```bash\nquasar perf --duration 45\nquasar bench\n```\nafter it: 12 ms\n")
    assert dn.process(str(doc), write=False, cache={}) == (["line 6: '12 ms' has no source"], 0)


def test_an_unsourced_measurement_anywhere_in_a_docs_page_fails_the_check(dn, results, tmp_path, monkeypatch):
    """Every page of docs/ is checked from top to bottom, not only marked regions."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "benchmarks").mkdir()
    (root / "README.md").write_text("# QUASAR\n")
    (root / "benchmarks" / "README.md").write_text("mean 0.73<!--src r.json:a/mean-->\n")
    (root / "docs" / "guide.md").write_text("# Guide\n\nA history paragraph: it took 106 ms then.\n")
    monkeypatch.setattr(dn, "ROOT", str(root))
    monkeypatch.setattr(dn, "help_texts", lambda: {})
    assert dn.check_all(write=False) == (["docs/guide.md: line 3: '106 ms' has no source"], 1)


def test_render_keeps_decimals_and_sign_style(dn):
    assert dn.render("0.73", 0.7305) == "0.73" and dn.render("0.7", 0.76) == "0.8"
    assert dn.render("+0.01", -0.0225) == "−0.02" and dn.render("−0.07", 0.004) == "+0.00"
    assert dn.render("−0.00", -0.0012) == "−0.00" and dn.render("0.00", -0.001) == "0.00"
    assert dn.render("10,000", 12345.4) == "12,345" and dn.render("29", 28.91) == "29"


def test_the_readme_test_command_is_what_ci_runs():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = readme[readme.index("```bash"):]
    block = block[:block.index("```", 7)]
    commands = [ln for ln in block.splitlines() if ln and not ln.startswith(("#", "```"))]
    assert commands[-1] == "bash .ci/test"  # one command, not an && chain that hides its later steps
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert re.search(r"^bash \.ci/test$", ci, re.M)


def test_the_test_command_without_root_stops_first_with_the_apt_line(tmp_path):
    """No cmake, g++, pkg-config, OpenCV or chromium and no root: one apt-get line, exit 2, nothing run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    os.chmod(bin_dir / "id", 0o755)
    os.symlink("/usr/bin/dirname", bin_dir / "dirname")
    marker = tmp_path / "python-ran"
    (bin_dir / "python3").write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(bin_dir / "python3", 0o755)
    r = subprocess.run(["/bin/bash", os.path.join(REPO, ".ci", "test")], capture_output=True, text=True,
                       env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    assert "sudo apt-get install -y cmake g++ pkg-config libopencv-dev chromium" in r.stderr
    assert not marker.exists()
