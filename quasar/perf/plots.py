"""Plots of a perf report (matplotlib, no display needed): PNG or SVG under ``<out>/plots/``.

* ``latency-<scenario>-<mode>``: per configuration, a histogram and the CDF of the latencies the SUT
  saw (SingleStream and Server: per image; MultiStream: per query), all repetitions pooled;
* ``batch-<mode>`` (when several batch sizes ran): Offline throughput and the Server QPS found, and
  the p99 latency of the Server and MultiStream tests, against the batch size, one line per target.
"""

from __future__ import annotations

import os

import numpy as np

LATENCY_SCENARIOS = ("single-stream", "multi-stream", "server")
TITLES = {"single-stream": "SingleStream (per image)", "multi-stream": "MultiStream (per query)",
          "server": "Server (per image: the confirming test, or the search's last when no QPS held)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def make_all(rep: dict, out_dir: str, fmt: str = "png") -> list[str]:
    """Every plot the report has data for; paths relative to ``out_dir``."""
    plt = _pyplot()
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    paths = []
    for scen in LATENCY_SCENARIOS:
        for mode in rep["settings"]["modes"]:
            runs = [r for r in rep["runs"] if r["scenario"] == scen and r["config"]["mode"] == mode
                    and r.get("latencies_ms")]
            if runs:
                paths.append(latency_plot(plt, runs, scen, mode, out_dir, fmt))
    if len(rep["settings"]["batches"]) > 1:
        for mode in rep["settings"]["modes"]:
            p = batch_plot(plt, rep, mode, out_dir, fmt)
            if p:
                paths.append(p)
    return paths


def _label(r: dict) -> str:
    c = r["config"]
    return f"{c['model']} @ {c['backend']}, batch {c['batch']}"


def latency_plot(plt, runs: list[dict], scen: str, mode: str, out_dir: str, fmt: str) -> str:
    series: dict[str, list[float]] = {}
    for r in runs:
        series.setdefault(_label(r), []).extend(r["latencies_ms"])
    fig, (ax_h, ax_c) = plt.subplots(1, 2, figsize=(10, 3.8))
    hi = max(np.percentile(v, 99.5) for v in series.values())
    lo = min(min(v) for v in series.values())
    n = min(len(v) for v in series.values())
    bins = np.linspace(lo * 0.95, hi * 1.05, int(np.clip(n // 3, 10, 50)) + 1)
    for name, v in series.items():
        a = np.sort(np.asarray(v))
        ax_h.hist(np.clip(a, None, bins[-1]), bins=bins, histtype="step", linewidth=1.5, label=name)
        ax_c.plot(a, np.arange(1, len(a) + 1) / len(a), linewidth=1.5, label=f"{name} (n={len(a)})")
    ax_h.set_xlabel("latency (ms)")
    ax_h.set_ylabel("count")
    ax_c.set_xlabel("latency (ms)")
    ax_c.set_ylabel("fraction of samples ≤ x" if scen != "multi-stream" else "fraction of queries ≤ x")
    for q in (0.5, 0.9, 0.99):
        ax_c.axhline(q, color="grey", linewidth=0.6, linestyle=":")
    ax_c.set_ylim(0, 1.01)
    ax_c.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{TITLES[scen]}, {mode}", fontsize=10)
    fig.tight_layout()
    rel = os.path.join("plots", f"latency-{scen}-{mode}.{fmt}")
    fig.savefig(os.path.join(out_dir, rel), dpi=80)
    plt.close(fig)
    return rel


def batch_plot(plt, rep: dict, mode: str, out_dir: str, fmt: str) -> str | None:
    rows = [r for r in rep["summary"] if r["mode"] == mode]
    rate = [r for r in rows if r["scenario"] in ("offline", "server")]
    lat = [r for r in rows if r["scenario"] in ("server", "multi-stream")]
    if not rate and not lat:
        return None
    if lat:
        fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(10, 3.8))
    else:  # Offline only: no latency to plot
        fig, ax_t = plt.subplots(1, 1, figsize=(5.5, 3.8))
        ax_l = None

    def lines(ax, rs, key):
        by: dict[str, list[tuple[int, float]]] = {}
        for r in rs:
            v = key(r)
            if v is not None:
                by.setdefault(f"{r['model']} @ {r['backend']}, {r['scenario']}", []).append((r["batch"], v))
        for name, pts in by.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name,
                    linestyle="--" if name.endswith("server") else "-")
        if by:
            ax.legend(fontsize=7)

    lines(ax_t, rate, _value)
    kinds = {r["scenario"] for r in rate}
    ax_t.set_title("; ".join(t for k, t in (("offline", "Offline samples/s"), ("server", "Server QPS found (dashed)"))
                             if k in kinds), fontsize=9)
    ax_t.set_xlabel("batch size")
    ax_t.set_ylabel("per second")
    ax_t.set_ylim(bottom=0)
    if ax_l is not None:
        lines(ax_l, lat, lambda r: (r.get("p99_ms") or {}).get("median"))
        ax_l.set_ylim(bottom=0)
        ax_l.set_title("p99 latency (Server: confirming test; MultiStream: per query)", fontsize=9)
        ax_l.set_xlabel("batch size")
        ax_l.set_ylabel("ms")
    for ax in (ax_t, ax_l) if ax_l is not None else (ax_t,):
        ax.set_xscale("log", base=2)
        ax.set_xticks(rep["settings"]["batches"], [str(b) for b in rep["settings"]["batches"]])
    fig.suptitle(f"Against batch size, {mode}", fontsize=10)
    fig.tight_layout()
    rel = os.path.join("plots", f"batch-{mode}.{fmt}")
    fig.savefig(os.path.join(out_dir, rel), dpi=80)
    plt.close(fig)
    return rel


def _value(r: dict) -> float | None:
    return (r.get("value") or {}).get("median")
