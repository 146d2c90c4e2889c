"""The perf report: ``report.json`` (everything, LoadGen's verdicts included) and ``report.md`` for a person."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone

FORMAT_VERSION = 1
SCENARIO_TITLES = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline",
                   "server": "Server"}
HOW_TO_READ = [
    "**SingleStream p90** (ms): LoadGen sends one image, waits for its score, sends the next; 90 % of "
    "images took at most this long. The camera-app number: what one photo costs when nothing else runs.",
    "**MultiStream p99** (ms): queries of several images (8 unless --multi-stream-samples), one after "
    "another; 99 % of queries were answered within this time.",
    "**Offline** (samples/s): every image at once; images scored per second. The batch-server number.",
    "**Server QPS**: queries (one image each) arrive at random (Poisson) times; the highest rate LoadGen's "
    "search found at which 99 % were answered within --target-latency, confirmed by one more test at that rate.",
    "**end-to-end** times encoded files -> scores (decode, resize, inference; files are in RAM); **model-only** "
    "times the runtime's preprocessed uint8 tensors -> scores. The gap between them is what decoding and "
    "preprocessing cost.",
    "**LoadGen validity**: VALID when the test ran at least --duration and --min-queries queries, met "
    "its latency bound (Server), and had enough queries for LoadGen's early-stopping estimate of the "
    "percentile (about 64 queries for p90, 662 for p99 in SingleStream/MultiStream; Server needs more at "
    "higher load). An INVALID number was still measured; the reason says what a longer test needs.",
]


def assemble(*, opts, targets, batches, scenarios, workload, models, backends, records, rows, comparison,
             load: tuple[float, float], seconds: float) -> dict:
    from quasar.machine import machine_info, usable_cores

    machine = machine_info()
    try:
        import onnxruntime

        machine["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    s = opts.settings
    cores = usable_cores()
    notes = [f"1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end ({cores} cores): "
             f"above {cores} the machine was shared and timings are noisy."]
    if opts.repeat > 1:
        notes.append(f"{opts.repeat} repetitions, configurations interleaved (reverse order every other repetition); "
                     "values are medians with (min-max).")
    return {
        "tool": "quasar perf", "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["quasar", "perf", *(opts.argv or [])]),
        "machine": machine,
        "settings": {"duration_s": s.duration_s, "min_queries": s.min_queries, "target_latency_ms": s.target_latency_ms,
                     "server_qps": s.server_qps, "server_confirm": s.server_confirm,
                     "multi_stream_samples": s.multi_stream_samples,
                     "repeat": opts.repeat, "batches": batches, "scenarios": scenarios, "modes": opts.modes,
                     "workers": opts.workers, "threads": opts.threads, "native_lib": opts.native_lib},
        "workload": workload.describe(),
        "targets": [{"label": t.label, "model": t.name, "path": t.path, "precision": t.precision,
                     "backend": t.backend, "runtime_backend": backends.get(t.label)} for t in targets],
        "models": models,
        "summary": rows, "comparison": comparison, "runs": records,
        "notes": notes, "total_seconds": round(seconds, 1),
    }


def write(rep: dict, out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jp, mp = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md")
    with open(jp, "w") as f:
        json.dump(rep, f, indent=1)
    with open(mp, "w") as f:
        f.write(markdown(rep))
    return jp, mp


def _fmt(v: dict | None, digits: int = 3) -> str:
    if not v:
        return "–"
    med = f"{v['median']:.{digits}g}"
    if v["n"] > 1:
        return f"{med} ({v['min']:.{digits}g}–{v['max']:.{digits}g})"
    return med


def _validity(vs: list) -> str:
    ok = sum(v == "VALID" for v in vs)
    if ok == len(vs):
        return "VALID"
    return "INVALID" if ok == 0 else f"{ok}/{len(vs)} VALID"


def machine_line(m: dict) -> str:
    gpu = ", ".join(f"{g['name']} ({g['memory_mib']} MiB)" for g in m.get("gpus") or []) or "no GPU"
    vers = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    return (f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('cpu_mhz') or '?'} MHz, ISA {', '.join(m.get('isa') or [])}; "
            f"{m.get('memory_gib')} GiB; {gpu}; {vers}; Python {m.get('python')}; "
            f"ONNX Runtime providers {', '.join(m.get('onnxruntime_providers') or [])}.")


def summary_table(rep: dict) -> list[str]:
    scen = rep["settings"]["scenarios"]
    target_ms = rep["settings"]["target_latency_ms"]
    heads = {"single-stream": "SingleStream p90 ms (batch 1)", "multi-stream": "MultiStream p99 ms",
             "offline": "Offline samples/s", "server": f"Server QPS (p99 ≤ {target_ms:g} ms)"}
    first = rep["settings"]["batches"][0]
    cells: dict[tuple, dict] = {}
    for r in rep["summary"]:  # SingleStream (one image per query) shares the first batch size's row
        batch = first if r["scenario"] == "single-stream" else r["batch"]
        cells.setdefault((r["model"], r["backend"], r["mode"], batch), {})[r["scenario"]] = r
    lines = ["| model | backend | mode | batch | " + " | ".join(heads[s] for s in scen) + " |",
             "|---|---|---|---|" + "---|" * len(scen)]
    keys = sorted(cells)
    for key in keys:
        row = cells[key]
        vals = []
        for s in scen:
            r = row.get(s)
            if r is None:
                vals.append("–")
                continue
            shown = "none" if r["value"] is None and s == "server" else _fmt(r["value"])
            verdict = _validity(r["valid"])
            vals.append(shown if verdict == "VALID" else f"{shown} ({verdict})")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(vals) + " |")
    return lines


def validity_table(rep: dict) -> list[str]:
    lines = ["| rep | scenario | configuration | LoadGen | checks not met | LoadGen's reason / early stopping |",
             "|---|---|---|---|---|---|"]
    for r in rep["runs"]:
        lg = r["loadgen"]
        failed = [k for k, ok in (lg.get("checks") or {}).items() if ok is False]
        why = "; ".join(x for x in (lg.get("invalid_reason"), lg.get("early_stopping") if "early_stopping" in failed
                                    else None) if x) or "–"
        lines.append(f"| {r['rep']} | {SCENARIO_TITLES[r['scenario']]} | {r['label']} | {lg.get('validity')} | "
                     f"{', '.join(failed) or '–'} | {why.replace('|', '/')} |")
    return lines


def detail_table(rep: dict) -> list[str]:
    lines = ["| rep | scenario | configuration | LoadGen p50 / p90 / p99 ms | queries | QPS / samples/s | "
             "SUT p50 / p99 ms | failed |", "|---|---|---|---|---|---|---|---|"]
    for r in rep["runs"]:
        lg, sut = r["loadgen"], r.get("sut") or {}
        lat = lg.get("latency_ms") or {}
        rate = lg.get("samples_per_s") or lg.get("scheduled_qps") or lg.get("qps")
        sl = sut.get("latency_ms") or {}
        lines.append(f"| {r['rep']} | {SCENARIO_TITLES[r['scenario']]} | {r['label']} | "
                     f"{lat.get('p50', '–')} / {lat.get('p90', '–')} / {lat.get('p99', '–')} | {lg.get('query_count')} | "
                     f"{'–' if rate is None else f'{rate:.4g}'} | {sl.get('p50', '–')} / {sl.get('p99', '–')} | "
                     f"{sut.get('failed', 0)} |")
    return lines


def markdown(rep: dict) -> str:
    s = rep["settings"]
    wl = rep["workload"]
    out = ["# quasar perf report", "",
           f"`{rep['command']}`", "",
           f"Created {rep['created']}; {rep['total_seconds']:.0f} s. Machine: {machine_line(rep['machine'])}", "",
           f"Images: {wl['source']}, {wl['count']} images (mean {wl['mean_bytes'] / 1e6:.2f} MB encoded), held in RAM. "
           f"Each LoadGen test runs at least {s['duration_s']:g} s and {s['min_queries']} queries; Server bound: "
           f"p99 ≤ {s['target_latency_ms']:g} ms; batch sizes {', '.join(map(str, s['batches']))}; "
           f"{s['repeat']} repetition(s).", ""]
    out += [f"- {n}" for n in rep.get("notes", [])] + [""]
    out += ["## Results", "", "Median over repetitions (min–max when more than one); a LoadGen verdict other than "
            "VALID is shown next to the value.", ""] + summary_table(rep) + [""]
    if rep.get("comparison"):
        out += ["## Comparison", "", "How many times better than the baseline (>1: better; latency ratios are "
                "baseline / value), per repetition, median (min–max).", "",
                "| scenario | mode | batch | configuration | baseline | metric | × baseline |", "|---|---|---|---|---|---|---|"]
        for c in rep["comparison"]:
            out.append(f"| {SCENARIO_TITLES[c['scenario']]} | {c['mode']} | {c['batch']} | {c['model']} @ {c['backend']} | "
                       f"{c['baseline']} | {c['what']} | {_fmt(c['speedup'])} |")
        out.append("")
    searches = [r for r in rep["runs"] if r.get("search")]
    if searches:
        out += ["## Server: LoadGen's QPS search", "",
                "QPS tried in order (✓ kept p99 under the bound, ✗ broke it, as inferred from the next bounds LoadGen "
                "chose), then the confirming test at the QPS found.", "",
                "| rep | configuration | QPS tried | peak QPS | confirming test |", "|---|---|---|---|---|"]
        for r in searches:
            steps = ", ".join(f"{q:.4g}{'' if ok is None else ('✓' if ok else '✗')}"
                              for q, ok in zip(r["search"]["qps_tried"], r["search"]["kept_bound"], strict=False))
            peak = r["search"]["peak_qps"]
            out.append(f"| {r['rep']} | {r['label']} | {steps} | {'none' if peak is None else f'{peak:.4g}'} | "
                       f"{r['loadgen'].get('validity')}, p99 {r['loadgen']['latency_ms'].get('p99')} ms |")
        out.append("")
    notes = [(r, n) for r in rep["runs"] for n in r.get("notes", [])]
    if notes:
        out += ["## Notes on single tests", ""] + [f"- rep {r['rep']}, {SCENARIO_TITLES[r['scenario']]}, {r['label']}: {n}"
                                                   for r, n in notes] + [""]
    out += ["## LoadGen validity", "", "Every test's verdict as LoadGen wrote it (its logs: `loadgen/` beside this "
            "report, `mlperf_log_summary.txt` and `mlperf_log_detail.txt` per test).", ""] + validity_table(rep) + [""]
    out += ["## Every test", "", "LoadGen's latencies (from when it issued a query) and the SUT's own (from when "
            "the query reached it; the plots use these).", ""] + detail_table(rep) + [""]
    if rep.get("plots"):
        out += ["## Plots", ""] + [f"![{os.path.basename(p)}]({p})" for p in rep["plots"]] + [""]
    out += ["## How to read it", ""] + [f"- {h}" for h in HOW_TO_READ] + [""]
    out += ["## Models", "", "| model | file | encoder | precision | heads | pack | preprocessing |", "|---|---|---|---|---|---|---|"]
    for name, m in rep["models"].items():
        pp = m.get("preprocess") or {}
        out.append(f"| {name} | `{m['path']}` ({(m.get('file_bytes') or 0) / 1e6:.1f} MB) | {m['encoder']} | "
                   f"{m['precision']} | {len(m['heads'])} | {(m.get('pack_hash') or '')[:19]} | "
                   f"{pp.get('policy')} {pp.get('size')} |")
    out += ["", "Backends: " + "; ".join(f"{t['label']} -> {t['runtime_backend']}" for t in rep["targets"]), ""]
    return "\n".join(out)


def print_summary(rep: dict, stream=None) -> None:
    stream = stream or sys.stdout
    for line in summary_table(rep):
        print(line, file=stream)
