"""Every measured number in the docs comes from a results file: render them from it, or check them.

A number in README.md, docs/*.md or benchmarks/README.md names its source in an HTML comment right
after it (invisible on GitHub)::

    pooled SRCC 0.55<!--src quality_synthetic.json:results/default (quality head)/pooled/0-->
    kept 80 %<!--src burst_eval.json:test/view=deep-stats&window_s=None/keeper_true_groups|x100-->
    p99 99.6<!--src perf_server_100ms/report.json:runs/3/loadgen/latency_ms/p99-->

``FILE`` is a file under benchmarks/results/ (written by the script named in benchmarks/README.md;
``/`` for a subfolder); ``PATH`` walks it: ``/`` separates dict keys and list indices, a
``k=v&k2=v2`` segment picks the first list element whose fields match (``str(value)``), and a key
that itself holds ``/`` (``rows/camera/eager_single``) is found as the shortest run of segments
that names one. ``|x100`` scales the value before it is written (a fraction quoted as a
percentage). The number keeps the decimals and sign style it is written with (``+0.01``, ``−0.07``
with a Unicode minus), so a new source can be written with a placeholder (``0.000<!--src ...-->``)
and rendered.

``python benchmarks/doc_numbers.py`` rewrites each sourced number from its results file (after a
benchmark re-run); ``--check`` changes nothing and exits 1 listing every sourced number that no
longer matches, every source that does not exist, and every *unsourced* measurement (a decimal, a
percentage, or a number with a unit: MB, GB, ms, s, ×) anywhere in those docs and in the
``quasar score --help`` text on score meaning (help texts cannot carry a source, so they quote no
measurements). Not measurements: code blocks and inline code (settings, defaults and thresholds go
there, as the code spells them), HTML comments, and versions (``OpenCV 4.6``). A measurement no
results file holds is deleted, or said without its number. tests/test_doc_numbers.py runs the
check, so a re-run that changes a number fails until the docs follow.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DOCS = ("README.md", "docs/*.md", "benchmarks/README.md")

NUMBER = r"[+\-−]?\d[\d,]*(?:\.\d+)?"
SOURCED = re.compile(rf"(?P<num>{NUMBER})(?P<unit>\s?(?:%|×|MB|GB|ms|s)?)"
                     r"<!--src (?P<file>[\w-]+(?:/[\w-]+)*\.json):(?P<path>[^|>]*?)(?:\|x(?P<scale>[\d.]+))?-->")
# What counts as a measurement when it has no source: decimals, percentages, numbers with a unit.
MEASUREMENT = re.compile(r"(?<![\w.])(?:\d[\d,]*\.\d+(?![.\d])|\d[\d,]*(?:\.\d+)?\s?(?:%|×|MB|GB|ms|s\b)"
                         r"|\d[\d,]*(?:\.\d+)?x\b)")
VERSION_WORDS = re.compile(r"(?:OpenCV|Python|TensorRT|CUDA|torch|torchvision|onnxruntime|Runtime|opset|"
                           r"version|v|LoadGen|Lite|API|Ubuntu|Debian|spec|pip|ray|Pillow|libavif)"
                           r"\s?(?:[≥>=]+\s?)?$", re.IGNORECASE)
CODE = re.compile(r"```.*?```|`[^`\n]*`|<!--(?!src ).*?-->", re.DOTALL)


class SourceError(Exception):
    """A source marker names a file, key or value that is not there."""


def step(node, seg: str) -> tuple | None:
    """``(child,)`` of ``node`` named by one path segment (a key, an index or a ``k=v&k2=v2`` selector)."""
    if isinstance(node, list) and "=" in seg:
        want = dict(kv.split("=", 1) for kv in seg.split("&") if "=" in kv)
        for el in node:
            if isinstance(el, dict) and all(str(el.get(k)) == v for k, v in want.items()):
                return (el,)
    elif isinstance(node, list) and seg.lstrip("-").isdigit() and -len(node) <= int(seg) < len(node):
        return (node[int(seg)],)
    elif isinstance(node, dict) and seg in node:
        return (node[seg],)
    return None


def lookup(file: str, path: str, cache: dict | None = None) -> float:
    """The number at ``path`` in benchmarks/results/``file``."""
    cache = {} if cache is None else cache
    if file not in cache:
        try:
            with open(os.path.join(RESULTS, file), encoding="utf-8") as f:
                cache[file] = json.load(f)
        except (OSError, ValueError) as e:
            raise SourceError(f"benchmarks/results/{file}: {e}") from None
    node = cache[file]
    segs = path.strip().split("/")
    i = 0
    while i < len(segs):
        # a key or selector may itself hold "/" ("camera/eager_single"): the shortest run of segments that
        # resolves is the step
        for j in range(i + 1, len(segs) + 1):
            nxt = step(node, "/".join(segs[i:j]))
            if nxt is not None:
                node, i = nxt[0], j
                break
        else:
            raise SourceError(f"{file}:{path}: no key or element {segs[i]!r}")
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise SourceError(f"{file}:{path}: not a number ({type(node).__name__})")
    return float(node)


def render(written: str, value: float) -> str:
    """``value`` written like ``written``: same decimals and thousands separator; a signed number
    (``+0.01``, ``−0.00``) stays signed, negative even when it rounds to zero, with its minus sign."""
    decimals = len(written.split(".")[1]) if "." in written else 0
    text = f"{abs(value):,.{decimals}f}" if "," in written else f"{abs(value):.{decimals}f}"
    if written[0] in "+−-":
        minus = "-" if written[0] == "-" else "−"
        return (minus if value < 0 else "+") + text
    return ("-" + text) if value < 0 and float(text.replace(",", "")) != 0.0 else text


def _blank(m: re.Match) -> str:
    """A match's text as spaces, its line breaks kept (so line numbers stay right)."""
    return re.sub(r"[^\n]", " ", m.group())


def unsourced(text: str) -> list[str]:
    """Measurements in ``text`` with no source marker (code, comments and versions excepted)."""
    blank = CODE.sub(_blank, text)
    blank = SOURCED.sub(_blank, blank)
    found = []
    for m in MEASUREMENT.finditer(blank):
        if VERSION_WORDS.search(blank[max(0, m.start() - 20):m.start()]):
            continue
        line = blank[:m.start()].count("\n") + 1
        found.append(f"line {line}: {m.group().strip()!r} has no source")
    return found


def help_texts() -> dict[str, str]:
    """Help texts that describe scores (they cannot carry a source, so they quote no measurement)."""
    sys.path.insert(0, ROOT)
    from quasar.app.score import SCORE_MEANING

    return {"quasar score --help (SCORE_MEANING)": SCORE_MEANING}


def doc_files() -> list[str]:
    files = []
    for pattern in DOCS:
        files += sorted(glob.glob(os.path.join(ROOT, pattern)))
    return files


def process(path: str, write: bool, cache: dict) -> tuple[list[str], int]:
    """Problems in one doc (and, with ``write``, rewrite its sourced numbers); returns (problems, sourced)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    problems: list[str] = []
    count = 0

    def fix(m: re.Match) -> str:
        nonlocal count
        count += 1
        line = text[:m.start()].count("\n") + 1
        try:
            value = lookup(m["file"], m["path"], cache) * float(m["scale"] or 1)
        except SourceError as e:
            problems.append(f"line {line}: {e}")
            return m.group()
        want = render(m["num"], value)
        if want != m["num"]:
            problems.append(f"line {line}: {m['num']} should be {want} ({m['file']}:{m['path']})")
        return m.group().replace(m["num"], want, 1) if write else m.group()

    new = SOURCED.sub(fix, text)
    problems += unsourced(text)
    if write and new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return problems, count


def check_all(write: bool = False) -> tuple[list[str], int]:
    """All problems (``path: line N: ...``) over the docs and help texts, and how many sourced numbers."""
    cache: dict = {}
    problems, total = [], 0
    for path in doc_files():
        found, n = process(path, write, cache)
        total += n
        rel = os.path.relpath(path, ROOT)
        problems += [f"{rel}: {p}" for p in found
                     if not (write and "should be" in p)]  # rewritten: no longer a problem
    for name, text in help_texts().items():
        problems += [f"{name}: {p}" for p in unsourced(text)]
    return problems, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/doc_numbers.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 on any problem")
    args = ap.parse_args(argv)
    problems, total = check_all(write=not args.check)
    for p in problems:
        print(p)
    print(f"{total} sourced numbers, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
