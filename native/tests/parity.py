"""Parity of the native CLI (quasar-score) with the Python runtime (`python3 -m quasar score`) on the
same files and the same model: the same rows in the same order, the same per-file errors, scores
within --max-diff and a Spearman rank correlation of at least --min-srcc per head; the CSV header
and the JSON Lines keys identical. Prints the figures.

    python3 native/tests/parity.py --cli build/native/quasar-score --model M.onnx --images DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from quasar.eval.metrics import srcc  # noqa: E402  (the project's one SRCC: ties get average ranks)

# Documented differences (docs/embedding.md): OpenCV 4.6 has no GIF decoder; the Python runtime
# decodes GIFs (OpenCV >= 4.11, or Pillow).
KNOWN = {".gif": "GIF is not supported by this build"}


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode not in (0, 1):
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--max-diff", type=float, default=1e-3)
    ap.add_argument("--min-srcc", type=float, default=0.999)
    ap.add_argument("--python", default=sys.executable)
    return ap.parse_args()


def score_both(args: argparse.Namespace, tmp: str) -> dict[str, tuple[str, str]]:
    """(Python output, native output) per format: CSV over everything; JSON Lines (same rows, another
    writer) over the broken files and a few images."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outs = {}
    small = [os.path.join(args.images, "bad"), *sorted(os.path.join(args.images, "variants", n)
                                                       for n in os.listdir(os.path.join(args.images, "variants")))[:6]]
    for fmt, inputs in (("csv", [args.images]), ("jsonl", small)):
        py_out, nat_out = os.path.join(tmp, f"py.{fmt}"), os.path.join(tmp, f"native.{fmt}")
        common = [*inputs, "-r", "--model", args.model, "--explain", "--margins", "-q"]
        run([args.python, "-m", "quasar", "score", *common, "-o", py_out], env)
        run([args.cli, *common, "-o", nat_out], env)
        outs[fmt] = (py_out, nat_out)
    return outs


def read_csv(path: str) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def paired_rows(py_rows, nat_rows, num, reason_at, failures: list[str]):
    """The numeric columns of the rows both scored, and how many error rows agreed / were documented."""
    py_s, nat_s = [], []
    errors_same = errors_known = reasons_differ = 0
    for pr, nr in zip(py_rows[1:], nat_rows[1:], strict=False):
        path, pe, ne = pr[0], pr[-1], nr[-1]
        ext = os.path.splitext(path)[1].lower()
        if ext in KNOWN and ne.startswith(KNOWN[ext]):
            errors_known += 1
            continue
        if bool(pe) != bool(ne) or pe != ne:
            failures.append(f"{path}: error {pe!r} (Python) vs {ne!r} (native)")
            continue
        if pe:
            errors_same += 1
            continue
        py_s.append([float(pr[i]) for i in num])
        nat_s.append([float(nr[i]) for i in num])
        if reason_at is not None and pr[reason_at] != nr[reason_at]:
            reasons_differ += 1  # the same rule on scores 1e-6 apart: only at the bound itself
    if reasons_differ > 0.01 * max(1, len(py_s)):
        failures.append(f"--explain's reason differs on {reasons_differ} of {len(py_s)} rows")
    return np.array(py_s), np.array(nat_s), errors_same, errors_known


def compare_csv(py_csv: str, nat_csv: str, args: argparse.Namespace) -> list[str]:
    failures: list[str] = []
    py_rows, nat_rows = read_csv(py_csv), read_csv(nat_csv)
    if py_rows[0] != nat_rows[0]:
        failures.append(f"CSV header differs: {py_rows[0]} vs {nat_rows[0]}")
    header = py_rows[0]
    if [r[0] for r in py_rows] != [r[0] for r in nat_rows]:
        failures.append("the rows' paths or their order differ")
    num = [i for i, h in enumerate(header) if h not in ("path", "reason", "error")]  # score/margin columns
    heads = [header[i] for i in num]
    reason_at = header.index("reason") if "reason" in header else None
    py_a, nat_a, errors_same, errors_known = paired_rows(py_rows, nat_rows, num, reason_at, failures)
    diff = np.abs(py_a - nat_a)
    worst = float(diff.max()) if diff.size else float("nan")
    score_cols = [i for i, h in enumerate(heads) if not h.endswith("_margin")]
    rho = {heads[i]: srcc(py_a[:, i], nat_a[:, i]) for i in score_cols}
    print(f"parity: {len(py_rows) - 1} rows, {len(py_a)} scored by both, {errors_same} identical error rows, "
          f"{errors_known} documented differences (GIF)")
    print(f"parity: max |delta| over {len(heads)} columns (scores and margins) = {worst:.2e} "
          f"(scores only: {float(diff[:, score_cols].max()):.2e}); SRCC per head: "
          + ", ".join(f"{h} {r:.6f}" for h, r in rho.items()))
    if not worst <= args.max_diff:
        j, c = np.unravel_index(int(diff.argmax()), diff.shape)
        failures.append(f"max |delta| {worst:.3g} > {args.max_diff} (column {heads[c]}, scored row {j})")
    for h, r in rho.items():
        if not r >= args.min_srcc:
            failures.append(f"SRCC {h} {r:.6f} < {args.min_srcc}")
    if len(py_a) < 50:
        failures.append(f"only {len(py_a)} files scored by both; the check needs at least 50")
    if errors_same < 8:
        failures.append(f"only {errors_same} error rows agreed; the broken files give at least 8")
    return failures


def compare_jsonl(py_j: str, nat_j: str) -> list[str]:
    """The same keys in the same order, nulls where the CSV is empty, same paths and errors."""
    failures: list[str] = []
    with open(py_j, encoding="utf-8") as f:
        pj = [json.loads(x) for x in f]
    with open(nat_j, encoding="utf-8") as f:
        nj = [json.loads(x) for x in f]
    if len(pj) != len(nj) or len(pj) < 10:
        failures.append(f"JSON Lines: {len(pj)} rows (Python) vs {len(nj)} (native)")
    for a, b in zip(pj, nj, strict=False):
        if list(a) != list(b):
            failures.append(f"JSON keys differ: {list(a)} vs {list(b)}")
            break
        ext = os.path.splitext(a["path"])[1].lower()
        if a["path"] != b["path"] or (a["error"] != b["error"] and ext not in KNOWN):
            failures.append(f"JSON row differs: {a['path']!r} {a['error']!r} vs {b['path']!r} {b['error']!r}")
            break
        for k in a:
            if k not in ("path", "error") and (a[k] is None) != (b[k] is None):
                failures.append(f"JSON {a['path']!r}: {k} is {a[k]!r} vs {b[k]!r}")
    return failures


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outs = score_both(args, tmp)
        failures = compare_csv(*outs["csv"], args) + compare_jsonl(*outs["jsonl"])
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
