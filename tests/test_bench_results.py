"""The benchmark scripts' one results writer (``benchmarks/quasar_bench/results.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from quasar_bench.results import write_results

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_write_results_writes_both_files_and_prints_the_markdown(tmp_path, capsys):
    data = {"runs": [{"label": "a", "p99_ms": 12.5, "none": None}], "machine": {"cores": 2}}
    jp, mp = write_results(tmp_path / "new" / "serve_slow", data, ["# title", "", "| a |"])
    assert (jp.name, mp.name) == ("serve_slow.json", "serve_slow.md")
    assert json.loads(jp.read_text()) == data and jp.read_text().endswith("}\n")
    assert mp.read_text() == "# title\n\n| a |\n"
    assert capsys.readouterr().out == "# title\n\n| a |\n"
    write_results(tmp_path / "quiet", data, "text\n\n", show=False, default=str)
    assert (tmp_path / "quiet.md").read_text() == "text\n" and capsys.readouterr().out == ""


def test_no_benchmark_script_writes_its_results_by_hand():
    """A script that writes NAME.md itself (open(...md), write_text, with_suffix) bypasses the writer."""
    own = re.compile(r"""(open\([^)]*\.md|\.md["']\)?\)?\.write_text|with_suffix\(["']\.md)""")
    scripts = [*BENCHMARKS.glob("*.py"), *(BENCHMARKS / "quasar_bench").glob("*.py")]
    bad = [p.name for p in scripts if p.name != "results.py" and own.search(p.read_text())]
    assert not bad, f"write results with quasar_bench.results.write_results: {bad}"
