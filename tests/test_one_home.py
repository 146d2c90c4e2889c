"""Each shared helper is defined once across the package and the benchmarks: names say what they mean
(the model ``Scorer()`` opens is ``runtime.model.default_model_path``; the default pack's model in a
precision is ``export.default.default_pack_model``), one HxW parser, one spread, one SRCC."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _defined(name: str) -> list[str]:
    out = []
    for folder in ("quasar", "benchmarks", "native"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            if any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree)):
                out.append(path.relative_to(ROOT).as_posix())
    return out


@pytest.mark.parametrize(("name", "home"), [
    ("default_model_path", "quasar/runtime/model.py"), ("default_pack_model", "quasar/export/default.py"),
    ("parse_hw", "quasar/helpfmt.py"), ("spread", "quasar/perf/stats.py"), ("srcc", "quasar/eval/metrics.py")])
def test_one_definition(name, home):
    assert _defined(name) == [home]
