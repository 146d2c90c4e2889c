"""No function in quasar/ or native/ is longer than 80 lines (tools/long_functions.py), and the checker itself counts
what it should: C++ bodies from signature to closing brace, braces in strings and comments ignored,
lambdas inside a function counted with it; Python defs from ``def`` to their last line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("long_functions", ROOT / "tools" / "long_functions.py")
lf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lf)


def _cpp_function(name: str, body_lines: int) -> str:
    body = "".join(f"    x += {i};  // {{ not a brace\n" for i in range(body_lines))
    return f'int {name}(int x,\n        int y) {{\n    const char* s = "}}";\n{body}    return x;\n}}\n'


def test_package_and_native_have_no_function_over_80_lines():
    found = lf.long_functions([ROOT / "quasar", ROOT / "native"])
    assert found == [], "\n".join(f"{f.path}:{f.line}: {f.name} ({f.lines} lines)" for f in found)


def test_cpp_counts_signature_to_closing_brace():
    text = ("namespace q {\nstruct S {\n    int get() const { return 1; }\n};\n"
            + _cpp_function("short_one", 75) + "\n" + _cpp_function("long_one", 76) + "}  // namespace q\n")
    got = {f.name: f.lines for f in lf.cpp_functions(text)}
    assert got == {"get": 1, "short_one": 80, "long_one": 81}
    assert [f.name for f in lf.cpp_functions(text) if f.lines > lf.DEFAULT_MAX] == ["long_one"]


def test_cpp_lambdas_and_initialisers():
    text = ("const int kTable[] = {1, 2,\n 3};\nvoid outer() {\n    auto f = [&]() {\n        return 1;\n    };\n"
            "    if (f()) {\n        f();\n    }\n}\nextern \"C\" {\nint c_api(void) { return 0; }\n}\n")
    assert [(f.name, f.lines) for f in lf.cpp_functions(text)] == [("outer", 8), ("c_api", 1)]


def test_python_defs():
    text = "def a():\n" + "    x = 1\n" * 80 + "\n\nclass C:\n    def b(self):\n        return 1\n"
    assert [(f.name, f.lines) for f in lf.python_functions(text)] == [("a", 81), ("b", 2)]
