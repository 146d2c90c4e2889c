"""Functions longer than a limit (80 lines by default) in Python and C/C++ sources.

    python tools/long_functions.py [--max 80] PATH [PATH ...]   # files or folders (quasar/ native/)

Python: every ``def`` (nested ones too), from its ``def`` line to its last line, as :mod:`ast` sees it.
C/C++: every function body at namespace, class or ``extern "C"`` level, from the first line of its
signature to its closing brace (lambdas and local classes count towards the function holding them);
comments, string and character literals are blanked first, so braces in them do not count. Prints
``path:line: name (N lines)`` per function over the limit; exit status 1 if there is one.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import NamedTuple

PY_SUFFIXES = (".py",)
CPP_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp")
DEFAULT_MAX = 80


class Function(NamedTuple):
    path: str
    line: int
    name: str
    lines: int


def python_functions(text: str, path: str = "<text>") -> list[Function]:
    out = []
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(Function(path, node.lineno, node.name, node.end_lineno - node.lineno + 1))
    return sorted(out, key=lambda f: f.line)


_LITERAL_OR_COMMENT = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
_RAW_STRING = re.compile(r'R"([^(\s]*)\((.*?)\)\1"', re.S)
_SCOPE = re.compile(r"\b(namespace|struct|class|union|enum)\b|\bextern\s*$")
_CONTROL = re.compile(r"^(if|for|while|switch|catch|do|else|try|return)\b")


def _blank(text: str) -> str:
    """Comments and literals as spaces (newlines kept, so line numbers stay)."""
    def keep_lines(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return _LITERAL_OR_COMMENT.sub(keep_lines, _RAW_STRING.sub(keep_lines, text))


def _without_parens(s: str) -> str:
    depth, out = 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _function_name(header: str) -> str | None:
    """The name of the function this block header declares, or None if it is no function."""
    h = " ".join(header.split())
    if "(" not in h or _CONTROL.match(h) or _SCOPE.search(_without_parens(h)):
        return None
    outside = _without_parens(h)
    if "=" in outside.replace("operator=", "").replace("==", "").replace("!=", "").replace("<=", "").replace(">=", ""):
        return None  # an initialiser, not a body
    m = re.search(r"([~\w:]+(?:operator\s*\S+)?)\s*\(", h)
    return m.group(1) if m else None


def cpp_functions(text: str, path: str = "<text>") -> list[Function]:
    src = _blank(text)
    out = []
    stack: list[str] = []  # "scope", "func" or "block" per open brace
    header_start = 0  # where the current statement / block header began
    func_start: tuple[int, str] | None = None
    line = 1
    i = 0
    while i < len(src):
        ch = src[i]
        if ch == "\n":
            line += 1
        elif ch == "{":
            header = src[header_start:i]
            if "func" in stack:
                stack.append("block")
            else:
                name = _function_name(header.replace("#", " "))
                if name is not None:
                    first = header_start + (len(header) - len(header.lstrip()))
                    func_start = (src.count("\n", 0, first) + 1, name)
                    stack.append("func")
                elif _SCOPE.search(" ".join(header.split())) or not header.strip():
                    stack.append("scope")
                else:
                    stack.append("block")
            header_start = i + 1
        elif ch == "}":
            kind = stack.pop() if stack else "scope"
            if kind == "func" and "func" not in stack and func_start is not None:
                start, name = func_start
                out.append(Function(path, start, name, line - start + 1))
                func_start = None
            header_start = i + 1
        elif ch == ";" and "func" not in stack:
            header_start = i + 1
        elif ch == "#" and "func" not in stack and (i == 0 or src[i - 1] == "\n"):
            end = src.find("\n", i)  # a preprocessor line ends no statement but starts none either
            end = len(src) if end < 0 else end
            while end > 0 and src[end - 1] == "\\" and end < len(src):
                end = src.find("\n", end + 1)
                end = len(src) if end < 0 else end
            line += src.count("\n", i, end)
            i = end
            header_start = end
            continue
        i += 1
    return out


def functions(path: Path) -> list[Function]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in PY_SUFFIXES:
        return python_functions(text, str(path))
    if path.suffix in CPP_SUFFIXES:
        return cpp_functions(text, str(path))
    return []


def source_files(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in PY_SUFFIXES + CPP_SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


def long_functions(paths: list[Path], limit: int = DEFAULT_MAX) -> list[Function]:
    return [f for p in source_files(paths) for f in functions(p) if f.lines > limit]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--max", type=int, default=DEFAULT_MAX, help="longest allowed function in lines (default 80)")
    args = ap.parse_args(argv)
    found = long_functions(args.paths, args.max)
    for f in found:
        print(f"{f.path}:{f.line}: {f.name} ({f.lines} lines)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
