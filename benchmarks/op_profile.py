"""Where the time goes: ONNX Runtime's profiler, per operator, on the default model (CPU).

For fp32 (the shipped model) and int8 (the cached default int8, :func:`quasar.export.default.default_pack_model`,
what ``quasar bench`` runs), at batch 1 and batch 8, 384x512: the session the runtime runs now (the
graph's free dimensions fixed, :mod:`quasar.runtime.backends.shapes`) with ``enable_profiling``; the
dynamic session is profiled too, for what its shape arithmetic costs. All sessions are made first and
their runs interleaved round by round; the first run of each is a warm-up and not counted, the
others are averaged per run.

Reported per configuration: the top nodes by time; the share of time by operator type; the share of
the convolutions by kind (from the weight's shape [O, I/groups, kh, kw]: depthwise = one input
channel per group, pointwise = 1x1, other = the stem's and any kxk dense conv), and whether they run
as float ``Conv`` (ORT's NCHWc kernels) or integer ``QLinearConv`` / ``ConvInteger``; the taps'
statistics (the nodes of the ``+taps`` wrapper outside the wrapped backbone: ReduceMean, Sub, Mul,
Sqrt...) and the layout reorders (``ReorderInput``/``ReorderOutput``: NCHWc <-> NCHW, which every tap
forces). Profiling adds a little time per node; shares within one configuration are what compare.

Run: ``python benchmarks/op_profile.py``; writes ``benchmarks/results/op_profile.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from quasar_bench.lscpu import isa_summary, lscpu
from quasar_bench.results import write_results

from quasar.io import read_rgb
from quasar.machine import machine_info, usable_cores
from quasar.photos import balanced, fetch_photos
from quasar.preprocess import resize
from quasar.runtime.model import load_model_info
from quasar.shipped import shipped_model_path

HERE = Path(__file__).parent
H, W = 384, 512
BACKBONE_SCOPE, TAPS_SCOPE = "/encoder/backbone/backbone/", "/encoder/backbone/"
CONV_OPS = {"Conv", "FusedConv", "NchwcConv", "QLinearConv", "ConvInteger"}
INT_CONV_OPS = {"QLinearConv", "ConvInteger"}
REORDERS = {"ReorderInput", "ReorderOutput"}
TOP = 12


def session(path: str, threads: int, batch: int | None, prefix: str):
    """The runtime's CPU session options (opt ``all``, no spinning), profiling on; ``batch`` None:
    the dynamic session, else batch, height and width fixed."""
    import onnxruntime as ort

    from quasar.runtime.backends.ort import session_options

    fixed = None if batch is None else {"batch": batch, "height": H, "width": W}
    so = session_options("all", threads, overrides=fixed)
    so.enable_profiling = True
    so.profile_file_prefix = prefix
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def weight_shape(op: str, shapes: list[dict]) -> list[int] | None:
    if op in INT_CONV_OPS:  # ORT pre-packs their weights: the profile lists scales, not the weight
        return None
    k = 1
    if len(shapes) <= k:
        return None
    dims = next(iter(shapes[k].values()))
    return dims if len(dims) == 4 else None


NAME_KINDS = (("conv_dw", "depthwise"), ("conv_pwl", "pointwise"), ("conv_pw", "pointwise"),
              ("conv_head", "pointwise"), ("conv_stem", "dense kxk"))


def conv_kind(op: str, shapes: list[dict], name: str) -> str:
    """From the weight's shape; else (an integer conv's weight is pre-packed and not listed) from the
    timm layer name the node keeps (conv_dw, conv_pw, conv_pwl, conv_head, conv_stem)."""
    w = weight_shape(op, shapes)
    if w is None:
        return next((kind for key, kind in NAME_KINDS if f"/{key}/" in name), "conv (kind unknown)")
    if w[1] == 1 and w[0] > 1:
        return "depthwise"
    if w[2] == 1 and w[3] == 1:
        return "pointwise"
    return "dense kxk"


def scope(name: str) -> str:
    if name.startswith(BACKBONE_SCOPE):
        return "backbone"
    if name.startswith(TAPS_SCOPE):
        return "taps"
    return "input/head"


def parse(profile_file: str, runs: int) -> dict:
    """Per-run node times (ms) of the ``runs`` runs after the first (the warm-up)."""
    with open(profile_file) as f:
        events = json.load(f)
    model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session"
                        and e.get("name") == "model_run")
    if len(model_runs) != runs + 1:
        raise RuntimeError(f"expected {runs + 1} model_run events, found {len(model_runs)}")
    warm_end = model_runs[0][1]
    nodes: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] <= warm_end:
            continue
        name = e["name"][: -len("_kernel_time")]
        op = e["args"].get("op_name", "?")
        n = nodes.setdefault(name, {"op": op, "ms": 0.0, "scope": scope(name)})
        n["ms"] += e["dur"] / 1000 / runs
        if op in CONV_OPS:
            n["conv"] = conv_kind(op, e["args"].get("input_type_shape", []), name)
    run_ms = float(np.median([(b - a) / 1000 for a, b in model_runs[1:]]))
    return summarise(nodes, run_ms)


def profile_all(configs: dict, pix: np.ndarray, threads: int, runs1: int, runs8: int, tmp: str) -> dict:
    """Every configuration's session made first, then their runs interleaved round by round (one
    warm-up each first), so load from other processes hits all alike."""
    sessions = {name: session(path, threads, fixed, str(Path(tmp) / f"p{k}"))
                for k, (name, (path, fixed, _n)) in enumerate(configs.items())}
    runs = {name: runs1 if n == 1 else runs8 for name, (_p, _f, n) in configs.items()}
    for r in range(max(runs.values()) + 1):
        for name, s in sessions.items():
            if r <= runs[name]:
                s.run(None, {"images": pix[: configs[name][2]]})
    return {name: {**parse(s.end_profiling(), runs[name]), "runs": runs[name]} for name, s in sessions.items()}


def summarise(nodes: dict[str, dict], run_ms: float) -> dict:
    total = sum(n["ms"] for n in nodes.values())
    by_op: Counter = Counter()
    by_conv: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "int": 0, "float": 0, "int_ms": 0.0})
    by_scope: Counter = Counter()
    for n in nodes.values():
        by_op[n["op"]] += n["ms"]
        by_scope[n["scope"]] += n["ms"]
        if "conv" in n:
            c = by_conv[n["conv"]]
            c["ms"] += n["ms"]
            integer = n["op"] in INT_CONV_OPS
            c["int" if integer else "float"] += 1
            if integer:
                c["int_ms"] += n["ms"]
    share = {k: v / total for k, v in by_op.most_common()}
    where = {"int": set(), "float": set()}  # which layers (timm block, or stem/head) run integer or float convs
    for name, n in nodes.items():
        if "conv" in n:
            m = re.search(r"/blocks\.(\d+)/", name)
            layer = f"block {m.group(1)}" if m else ("head" if "head" in name else "stem")
            where["int" if n["op"] in INT_CONV_OPS else "float"].add(layer)
    conv_ms = sum(c["ms"] for c in by_conv.values())
    top = sorted(nodes.items(), key=lambda kv: -kv[1]["ms"])[:TOP]
    return {
        "run_ms_median": run_ms, "node_ms_total": total, "nodes": len(nodes),
        "op_share": share, "op_count": dict(Counter(n["op"] for n in nodes.values())),
        "scope_share": {k: v / total for k, v in by_scope.most_common()},
        "conv_share": conv_ms / total,
        "conv_kinds": {k: {**v, "share": v["ms"] / total} for k, v in sorted(by_conv.items())},
        "taps_share": by_scope.get("taps", 0.0) / total,
        "reorder_share": sum(by_op.get(op, 0.0) for op in REORDERS) / total,
        "reduce_share": sum(v for k, v in by_op.items() if k.startswith("Reduce") or k == "GlobalAveragePool") / total,
        "int_conv_layers": sorted(where["int"]), "float_conv_layers": sorted(where["float"]),
        "top": [{"node": k, "op": v["op"], "ms": v["ms"], "share": v["ms"] / total, "kind": v.get("conv", "")}
                for k, v in top],
    }


def findings(res: dict) -> list[str]:
    """A short paragraph from the numbers (what they say about making int8 pay)."""
    out = []
    for b in (1, 8):
        f, i = res.get(f"fp32 b{b}"), res.get(f"int8 b{b}")
        if not f or not i:
            continue
        ck = f["conv_kinds"]
        dw, pw = ck.get("depthwise", {}).get("share", 0.0), ck.get("pointwise", {}).get("share", 0.0)
        ick = i["conv_kinds"]
        n_int = sum(c["int"] for c in ick.values())
        n_all = sum(c["int"] + c["float"] for c in ick.values())
        int_share = sum(c["int_ms"] for c in ick.values()) / i["node_ms_total"]
        float_conv = i["conv_share"] - int_share
        per_kind = ", ".join(f"{k} {c['int']}/{c['int'] + c['float']}" for k, c in ick.items())
        out.append(
            f"Batch {b}: fp32 spends {f['conv_share']:.0%} of its node time in convolutions (depthwise {dw:.0%}, "
            f"pointwise {pw:.0%}), {f['taps_share']:.0%} in the taps' statistics (reductions {f['reduce_share']:.0%}) "
            f"and {f['reorder_share']:.0%} in NCHWc reorders; int8 runs {n_int} of its {n_all} convolutions as "
            f"integer kernels ({per_kind}), which take {int_share:.0%} of its time, while the float convolutions "
            f"left take {float_conv:.0%} (layers with float convs: {', '.join(i['float_conv_layers'])}; with "
            f"integer ones: {', '.join(i['int_conv_layers'])}); int8 / fp32 time per run: "
            f"{i['run_ms_median'] / f['run_ms_median']:.2f} (profiled).")
    d, s = res.get("fp32 b1 dynamic"), res.get("fp32 b1")
    if d and s:
        out.append(f"The dynamic session runs {d['nodes']} nodes at batch 1 against {s['nodes']} with the shape fixed, "
                   f"{d['run_ms_median'] / s['run_ms_median']:.2f}x the time per run (profiled).")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="measured runs at batch 1 (batch 8: half, at least 2)")
    ap.add_argument("--int8", default=None, help="int8 model (default: the cached default int8, exported if missing)")
    ap.add_argument("--out", default=str(HERE / "results" / "op_profile"))
    args = ap.parse_args(argv)
    threads = usable_cores()
    fp32 = shipped_model_path()
    if args.int8:
        int8 = args.int8
    else:
        from quasar.export.default import default_pack_model

        int8 = default_pack_model("int8")
    info = load_model_info(fp32)
    photos = balanced([p for p in fetch_photos() if p.split == "heldout"], 8)
    pix = np.stack([resize(read_rgb(p.path), H, W, info.spec.interpolation, info.spec.resampler) for p in photos])
    configs = {"fp32 b1": (fp32, 1, 1), "fp32 b1 dynamic": (fp32, None, 1), "int8 b1": (int8, 1, 1),
               "fp32 b8": (fp32, 8, 8), "fp32 b8 dynamic": (fp32, None, 8), "int8 b8": (int8, 8, 8)}
    with tempfile.TemporaryDirectory() as tmp:
        res = profile_all(configs, pix, threads, args.runs, max(2, args.runs // 2), tmp)
    cpuinfo = lscpu()
    paragraph = findings(res)
    report = {"machine": machine_info(), "lscpu": cpuinfo, "isa": isa_summary(cpuinfo["flags"]), "threads": threads,
              "input": [H, W], "models": {"fp32": Path(fp32).name, "int8": Path(int8).name}, "results": res,
              "findings": paragraph}
    m = report["machine"]
    lines = [f"# Where the time goes: ONNX Runtime per-operator profile ({H}x{W}, {threads} threads)", "",
             f"Machine: {cpuinfo['model_name']}, {m['cores']} usable cores, int8 tier {report['isa']} "
             f"(ISA {' '.join(m['isa'])}); onnxruntime {m['versions'].get('onnxruntime')}. Models: "
             f"{report['models']['fp32']}, {report['models']['int8']}. Shared, noisy machine: shares within "
             "one configuration compare, absolute times do not.", "", "## Findings", "", " ".join(paragraph), "",
             "## Summary", "",
             "| configuration | ms per run | nodes | conv | depthwise | pointwise | dense kxk | integer convs | "
             "taps | reductions | reorders | Cast |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        ck = r["conv_kinds"]
        n_int = sum(c["int"] for c in ck.values())
        n_all = sum(c["int"] + c["float"] for c in ck.values())
        lines.append(f"| {name} | {r['run_ms_median']:.1f} | {r['nodes']} | {r['conv_share']:.0%} | "
                     + " | ".join(f"{ck.get(k, {}).get('share', 0.0):.0%}" for k in ("depthwise", "pointwise", "dense kxk"))
                     + f" | {n_int}/{n_all} | {r['taps_share']:.0%} | {r['reduce_share']:.0%} | "
                     f"{r['reorder_share']:.0%} | {r['op_share'].get('Cast', 0.0):.0%} |")
    lines += ["", "Shares are of the summed node time; conv kinds from the weight's shape; integer convs: "
              "QLinearConv/ConvInteger nodes of all convolutions.", ""]
    for name, r in res.items():
        lines += [f"## {name}: operator types", "", "| op | share | nodes |", "|---|---|---|"]
        lines += [f"| {op} | {sh:.1%} | {r['op_count'][op]} |" for op, sh in list(r["op_share"].items())[:10]]
        lines += ["", f"Top {TOP} nodes:", "", "| node | op | kind | ms | share |", "|---|---|---|---|---|"]
        lines += [f"| `{t['node'][-70:]}` | {t['op']} | {t['kind']} | {t['ms']:.2f} | {t['share']:.1%} |"
                  for t in r["top"]]
        lines.append("")
    write_results(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
