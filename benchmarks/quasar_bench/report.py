"""Turn raw worker results into the report: ratios, score agreement, targets, JSON and markdown.

Everything here is pure (dicts in, dicts/strings out), so it is unit-tested without timing anything.
Targets are judged on **medians** over repetitions; min and max are shown next to them because the
machine may be shared. A target whose inputs are missing (a configuration failed or was skipped) is
reported as ``met: null`` with the reason, never silently dropped.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from quasar.eval.metrics import srcc
from quasar_bench.results import write_results
from quasar_bench.stats import percentiles, throughput

REFERENCE = "eager_single"  # every ratio is against the one-at-a-time eager pipeline of the same set
BATCHED = ("eager_batched", "eager_dataloader")
TARGETS = {"e2e_vs_single": 5.0, "e2e_vs_batched": 2.0, "int8_vs_fp32_model": 2.0, "e2e_vs_model": 0.8,
           "srcc_fp32": 0.995, "srcc_int8": 0.99}


def summarize_row(raw: dict) -> dict:
    """images/s (min/median/max over reps), latency percentiles (if per-image latencies), peak RSS."""
    row = {"images_per_s": throughput(raw["n_images"], raw["rep_seconds"]), "reps": len(raw["rep_seconds"]),
           "n_images": raw["n_images"], "peak_rss_mib": raw.get("peak_rss_mib"), "info": raw.get("info", {})}
    if raw.get("latencies_ms"):
        row["latency_ms"] = percentiles(raw["latencies_ms"])
    return row


def agreement(ref: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """SRCC (:func:`quasar.eval.metrics.srcc`; NaN under 3 pairs or with a non-finite score) and absolute
    differences of two score maps over the keys they share."""
    keys = sorted(set(ref) & set(other))
    a = np.array([ref[k] for k in keys], dtype=np.float64)
    b = np.array([other[k] for k in keys], dtype=np.float64)
    finite = bool(np.all(np.isfinite(a)) and np.all(np.isfinite(b)))
    diff = np.abs(a - b) if keys else np.array([np.nan])
    return {"n": len(keys), "srcc": srcc(a, b) if finite else float("nan"),
            "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())}


def head_agreement(ref: dict[str, list[float]], other: dict[str, list[float]]) -> dict:
    """Agreement per head index; the reported SRCC is the worst head's."""
    k = min((len(v) for v in ref.values()), default=0)
    per_head = [agreement({p: v[j] for p, v in ref.items()}, {p: v[j] for p, v in other.items()}) for j in range(k)]
    if not per_head:
        return {"n": 0, "srcc": float("nan"), "mean_abs_diff": float("nan"), "max_abs_diff": float("nan")}
    worst = min(per_head, key=lambda a: a["srcc"] if not math.isnan(a["srcc"]) else -2.0)
    return dict(worst, heads=len(per_head))


def _median(row: dict | None) -> float | None:
    if not row or "images_per_s" not in row:
        return None
    v = row["images_per_s"]["median"]
    return None if v is None or math.isnan(v) else v


def add_ratios(rows: dict[str, dict], raw: dict[str, dict]) -> None:
    """Each row's images/s, p50 latency and peak RSS relative to its set's ``eager_single`` row; SRCC vs it.

    Model-only rows (set ``model``) are compared with the camera set's reference, whose images they are.
    """
    for name, row in rows.items():
        set_name = row["set"] if row["set"] != "model" else "camera"
        ref_name = f"{set_name}/{REFERENCE}"
        ref = rows.get(ref_name)
        if ref is None or name == ref_name:
            continue
        rel: dict = {}
        a, b = _median(row), _median(ref)
        if a and b:
            rel["images_per_s"] = a / b
        if row.get("latency_ms") and ref.get("latency_ms") and row["latency_ms"]["p50"] > 0:
            rel["latency_p50_speedup"] = ref["latency_ms"]["p50"] / row["latency_ms"]["p50"]
        if row.get("peak_rss_mib") and ref.get("peak_rss_mib"):
            rel["peak_rss"] = row["peak_rss_mib"] / ref["peak_rss_mib"]
        row["vs_eager_single"] = rel
        if raw.get(name, {}).get("scores") and raw.get(ref_name, {}).get("scores"):
            row["agreement_vs_eager_single"] = head_agreement(raw[ref_name]["scores"], raw[name]["scores"])


def pooled_agreement(raw: dict[str, dict], sets: list[str], config: str) -> dict | None:
    """SRCC of ``config`` against ``eager_single`` over the images of all sets together."""
    ref, other = {}, {}
    for s in sets:
        r, o = raw.get(f"{s}/{REFERENCE}", {}).get("scores"), raw.get(f"{s}/{config}", {}).get("scores")
        if not r or not o:
            return None
        ref.update(r)
        other.update(o)
    return head_agreement(ref, other)


def parity_agreement(raw: dict[str, dict], sets: list[str]) -> dict[str, dict]:
    """Agreement of each parity variant with ``eager_single``: per set and pooled over all sets."""
    variants = raw.get("parity", {}).get("variants", {})
    out: dict[str, dict] = {}
    for v, scores in variants.items():
        row, ref_all, oth_all = {}, {}, {}
        for s in sets:
            ref = raw.get(f"{s}/{REFERENCE}", {}).get("scores")
            if not ref:
                continue
            mine = {k: x for k, x in scores.items() if k in ref and x}
            row[s] = head_agreement(ref, mine)
            ref_all.update(ref)
            oth_all.update(mine)
        if ref_all:
            row["pooled"] = head_agreement(ref_all, oth_all)
        out[v] = row
    return out


PARITY_LABELS = {
    "fp32/runtime": "ORT fp32, runtime preprocessing (= (b) fp32)",
    "fp32/full_decode": "ORT fp32, runtime preprocessing without reduced JPEG decoding",
    "fp32/pil_preprocess": "ORT fp32 on the eager pipeline's own PIL pixels (model only differs)",
    "int8/runtime": "ORT int8, runtime preprocessing (= (b) int8)",
    "int8/pil_preprocess": "ORT int8 on the eager pipeline's own PIL pixels (quantisation only)",
}


def parity_lines(report: dict) -> list[str]:
    par = report.get("parity") or {}
    if not par:
        return []
    sets = list(report["sets"])
    head = " | ".join(f"{s} SRCC (max abs diff)" for s in sets)
    lines = [f"| scores vs (a) one-at-a-time | {head} | pooled SRCC |", "|---|" + "---|" * (len(sets) + 1)]
    for v, row in par.items():
        cells = [f"{_f(row[s]['srcc'], 4)} ({_f(row[s]['max_abs_diff'], 4)})" if s in row else "–" for s in sets]
        pooled = _f(row["pooled"]["srcc"], 4) if "pooled" in row else "–"
        lines.append(f"| {PARITY_LABELS.get(v, v)} | {' | '.join(cells)} | {pooled} |")
    return lines


def score_listing(raw: dict[str, dict], sets: list[str], configs: tuple[str, ...]) -> dict[str, dict]:
    """``{set/file name: {config: scores}}`` for the report's JSON (so agreement can be re-checked)."""
    out: dict[str, dict] = {}
    for s in sets:
        for c in configs:
            for path, v in raw.get(f"{s}/{c}", {}).get("scores", {}).items():
                out.setdefault(f"{s}/{os.path.basename(path)}", {})[c] = v
        for variant, scores in raw.get("parity", {}).get("variants", {}).items():
            for path, v in scores.items():
                key = f"{s}/{os.path.basename(path)}"
                if key in out:
                    out[key][f"parity:{variant}"] = v
    return out


def _target(name: str, what: str, value: float | None, threshold: float, unit: str = "x", reason: str = "") -> dict:
    met = None if value is None or math.isnan(value) else bool(value >= threshold)
    return {"name": name, "what": what, "value": value, "threshold": threshold, "unit": unit, "met": met,
            "reason": reason if met is None else ""}


def evaluate_targets(rows: dict[str, dict], pooled: dict[str, dict | None], sets: list[str]) -> list[dict]:
    """The issue's targets, one entry per (set, precision) where they apply."""
    out = []
    for s in sets:
        single = _median(rows.get(f"{s}/{REFERENCE}"))
        batched = [(b, _median(rows.get(f"{s}/{b}"))) for b in BATCHED]
        batched = [(b, v) for b, v in batched if v]
        best_b = max(batched, key=lambda bv: bv[1]) if batched else (None, None)
        for prec in ("fp32", "int8"):
            e2e = _median(rows.get(f"{s}/quasar_{prec}"))
            missing = "configuration missing or failed"
            out.append(_target(f"{s}/{prec}/e2e_vs_single", f"QUASAR {prec} end to end vs one-at-a-time eager ({s})",
                               e2e / single if e2e and single else None, TARGETS["e2e_vs_single"], reason=missing))
            out.append(_target(f"{s}/{prec}/e2e_vs_batched",
                               f"QUASAR {prec} end to end vs the faster batched eager ({best_b[0]}, {s})",
                               e2e / best_b[1] if e2e and best_b[1] else None, TARGETS["e2e_vs_batched"],
                               reason=missing))
            model = _median(rows.get(f"model/ort_{prec}_b8"))
            out.append(_target(f"{s}/{prec}/e2e_vs_model", f"QUASAR {prec} end to end vs ORT {prec} model-only, batch 8 ({s})",
                               e2e / model if e2e and model else None, TARGETS["e2e_vs_model"], unit="fraction",
                               reason=missing))
    fp32, int8 = _median(rows.get("model/ort_fp32_b8")), _median(rows.get("model/ort_int8_b8"))
    out.append(_target("int8_vs_fp32_model", "ORT int8 vs ORT fp32, model-only, batch 8",
                       int8 / fp32 if int8 and fp32 else None, TARGETS["int8_vs_fp32_model"],
                       reason="int8 or fp32 model-only missing"))
    for prec in ("fp32", "int8"):
        a = pooled.get(f"quasar_{prec}")
        out.append(_target(f"srcc_{prec}", f"SRCC of QUASAR {prec} vs one-at-a-time eager, all sets pooled "
                           f"(n={a['n'] if a else 0})", a["srcc"] if a else None, TARGETS[f"srcc_{prec}"],
                           unit="SRCC", reason="scores missing"))
    return out


# ------------------------------------------------------------------ writers


def _json_safe(o):
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def to_json(report: dict) -> str:
    """Strict JSON (NaN/inf become null)."""
    return json.dumps(_json_safe(report), indent=1, sort_keys=False) + "\n"


def _f(v, digits: int = 1, suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}{suffix}"


def _ips(row: dict) -> str:
    t = row["images_per_s"]
    return f"**{_f(t['median'], 2)}** ({_f(t['min'], 2)}–{_f(t['max'], 2)})"


def _lat(row: dict) -> str:
    lat = row.get("latency_ms")
    return f"{_f(lat['p50'])} / {_f(lat['p95'])} / {_f(lat['p99'])}" if lat else "–"


def rows_table(report: dict, names: list[str]) -> list[str]:
    lines = ["| configuration | images/s median (min–max) | × (a) one-at-a-time | latency p50 / p95 / p99 ms "
             "| peak RSS MiB (× (a)) | SRCC vs (a) (max abs diff) |",
             "|---|---|---|---|---|---|"]
    for name in names:
        row = report["rows"].get(name)
        if row is None:
            err = report.get("errors", {}).get(name)
            if err:
                lines.append(f"| {name} | failed: {err.splitlines()[-1][:120]} | | | | |")
            continue
        rel = row.get("vs_eager_single", {})
        agr = row.get("agreement_vs_eager_single")
        lat_x = f" ({_f(rel['latency_p50_speedup'], 2)}× faster p50)" if "latency_p50_speedup" in rel else ""
        mem = _f(row.get("peak_rss_mib"), 0) + (f" ({_f(rel['peak_rss'], 2)}×)" if "peak_rss" in rel else "")
        agree = f"{_f(agr['srcc'], 4)} ({_f(agr['max_abs_diff'], 4)})" if agr else "–"
        ratio = _f(rel.get("images_per_s"), 2, "×") if rel else "1.00× (reference)"
        lines.append(f"| {row['label']} | {_ips(row)} | {ratio} | {_lat(row)}{lat_x} | {mem} | {agree} |")
    return lines


def targets_lines(targets: list[dict]) -> list[str]:
    lines = ["| target | value | needed | met |", "|---|---|---|---|"]
    for t in targets:
        unit = t["unit"]
        if unit == "x":
            val, need = _f(t["value"], 2, "×"), f"≥ {t['threshold']:g}×"
        elif unit == "fraction":
            val, need = _f(None if t["value"] is None else 100 * t["value"], 0, " %"), f"≥ {100 * t['threshold']:.0f} %"
        else:
            val, need = _f(t["value"], 4), f"≥ {t['threshold']:g}"
        met = "n/a (" + t["reason"] + ")" if t["met"] is None else ("**met**" if t["met"] else "**not met**")
        lines.append(f"| {t['what']} | {val} | {need} | {met} |")
    return lines


def limits_lines(report: dict) -> list[str]:
    lim = report.get("limits")
    if not lim:
        return ["Physical limits were not measured" + (f": {report['errors']['limits']}" if report.get("errors", {}).get("limits") else ".")]
    pk, dec = lim["peaks"], lim["decode"]
    gflop = lim["flops_per_image"] / 1e9
    h, w = lim["resolution"]
    th = pk["theoretical"]
    lines = [f"Encoder + head FLOPs per image at {h}x{w}: **{gflop:.2f} GFLOP** (FlopCounterMode; one multiply-add "
             "= 2 FLOPs; convolutions and matmuls only).", "",
             f"Peak (GEMM {pk['gemm_n']}³, all cores, best of reps): torch fp32 {_f(pk.get('torch_fp32_gflops'))} GFLOP/s, "
             f"numpy fp32 {_f(pk.get('numpy_fp32_gflops'))}, ORT fp32 MatMul {_f(pk.get('ort_fp32_gflops'))}, "
             f"ORT int8 MatMulInteger {_f(pk.get('ort_int8_gops'))} GOP/s. Theoretical fp32 "
             f"{_f(th.get('fp32_gflops'))} GFLOP/s ({th['fp32_flop_per_cycle_per_core']} FLOP/cycle/core × "
             f"{_f(th.get('clock_mhz'), 0)} MHz × {th['cores']} cores; VNNI: {'yes' if th['vnni'] else 'no'}, "
             f"int8 ≈ {_f(th.get('int8_gops'))} GOP/s)."
             + (" The measured GEMM beats that estimate, so the cores run above the clock /proc/cpuinfo reports "
                "(boost); fractions below use the measured peak." if (pk.get("measured_fp32_gflops") or 0)
                > (th.get("fp32_gflops") or float("inf")) else ""), "",
             "| model-only / end to end | images/s | achieved GFLOP/s | of measured fp32 GEMM peak |",
             "|---|---|---|---|"]
    peak = pk.get("measured_fp32_gflops")
    for name in ("model/torch_b8", "model/ort_fp32_b8", "model/ort_int8_b8", "camera/quasar_fp32",
                 "camera/quasar_int8"):
        row = report["rows"].get(name)
        v = _median(row)
        if v is None:
            continue
        g = v * gflop
        lines.append(f"| {row['label']} | {_f(v, 2)} | {_f(g)} | {_f(100 * g / peak if peak else None, 0, ' %')} |")
    lines += ["", f"JPEG decode on the {dec['files']} camera-size files ({dec['source_mp']} MP in all), best of reps:", "",
              f"| decoder | 1 thread images/s | 1 thread MP/s | {dec['cores']} cores images/s | {dec['cores']} cores MP/s |",
              "|---|---|---|---|---|"]
    for name, r in dec["rates"].items():
        lines.append(f"| {name} | {_f(r['1_thread']['images_per_s'], 1)} | {_f(r['1_thread']['mp_per_s'], 0)} | "
                     f"{_f(r['all_cores']['images_per_s'], 1)} | {_f(r['all_cores']['mp_per_s'], 0)} |")
    ceil = dec["rates"].get("runtime_decode_resize", {}).get("all_cores", {}).get("images_per_s")
    for prec in ("fp32", "int8"):
        e2e = _median(report["rows"].get(f"camera/quasar_{prec}"))
        model = _median(report["rows"].get(f"model/ort_{prec}_b8"))
        if ceil and e2e and model:
            bound = shared_core_bound(model, ceil)
            lines += ["", f"QUASAR {prec} end to end on the camera set: {e2e:.2f} images/s. Decode + resize alone "
                      f"runs at {ceil:.1f} images/s on all cores, the model alone at {model:.2f}; sharing the same "
                      f"cores, the two cannot exceed 1 / (1/{model:.2f} + 1/{ceil:.1f}) = **{bound:.2f} images/s "
                      f"= {100 * bound / model:.0f} % of model-only**; the engine reaches {100 * e2e / bound:.0f} % "
                      "of that bound."]
    return lines


def shared_core_bound(model_ips: float, cpu_side_ips: float) -> float:
    """Best end-to-end images/s when CPU preprocessing and CPU inference share the same cores.

    Each image costs 1/model_ips of the whole machine for inference and 1/cpu_side_ips for decode +
    resize (both measured on all cores), so no overlap can beat the sum of the two.
    """
    return 1.0 / (1.0 / model_ips + 1.0 / cpu_side_ips)


def to_markdown(report: dict) -> str:
    m = report["machine"]
    v = m["versions"]
    lines = [f"# QUASAR speed benchmark{' (quick smoke run: not representative)' if report.get('quick') else ''}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {_f(m.get('cpu_mhz'), 0)} MHz, ISA {', '.join(m['isa']) or '?'}; "
             f"{m.get('memory_gib')} GiB. torch {v.get('torch')}, torchvision {v.get('torchvision')}, onnxruntime "
             f"{v.get('onnxruntime')}, opencv {v.get('opencv')}, numpy {v.get('numpy')}, pillow {v.get('pillow')}; "
             f"Python {m['python']}.", "",
             f"Created {report.get('created', '?')}; {report.get('reps')} timed repetitions per configuration after a "
             "warm-up; each configuration in its own process (peak RSS = that process's `VmHWM`). Model: "
             f"{report.get('model', {}).get('encoder', '?')} + pack {report.get('model', {}).get('pack_hash', '?')}, "
             f"{report.get('model', {}).get('resolution_policy', '')}.", ""]
    lines += [f"- {n}" for n in report.get("notes", [])]
    lines.append("")
    for s, d in report["sets"].items():
        sizes = ", ".join(f"{k} ×{c}" for k, c in d["sizes"].items())
        lines += [f"## Set `{s}`: {d['n']} JPEGs ({sizes}; mean {d['mean_file_mb']} MB)", ""]
        lines += rows_table(report, [n for n in report["order"] if n.startswith(s + "/")])
        lines.append("")
    lines += ["## Model only (uint8 batches preprocessed by the runtime from the camera set)", ""]
    lines += rows_table(report, [n for n in report["order"] if n.startswith("model/")])
    lines += ["", "## Targets", ""] + targets_lines(report["targets"])
    par = parity_lines(report)
    if par:
        lines += ["", "## Where scores differ from (a)", "",
                  "Untimed: the same files scored by the ONNX models with preprocessing variants. "
                  "Scores are sigmoid(logit scale × margin) with margins of a few 1e-3, so resampling "
                  "differences alone move them.", ""] + par
    lines += ["", "## Physical limits", ""] + limits_lines(report)
    if report.get("errors"):
        lines += ["", "## Failures", ""] + [f"- `{k}`: {e.splitlines()[-1][:300] if e else ''}"
                                             for k, e in report["errors"].items()]
    return "\n".join(lines) + "\n"


def write(report: dict, out_dir: str | os.PathLike, stem: str = "speed") -> tuple[str, str]:
    """Write ``stem.json`` and ``stem.md`` into ``out_dir`` (created); returns both paths."""
    jp, mp = write_results(Path(out_dir) / stem, _json_safe(report), to_markdown(report), show=False)
    return str(jp), str(mp)
