"""MLPerf LoadGen's four scenarios: settings sized from a warm-up, one test, and what LoadGen logged.

=================  ===========================================  =======================================
``single-stream``  one query of one sample at a time            90th-percentile latency (the camera app)
``multi-stream``   one query of N samples (8) at a time          99th-percentile latency per query
``offline``        every sample in one query                     samples per second (the batch server)
``server``         one-sample queries, Poisson arrivals          the highest QPS whose 99th-percentile
                                                                 latency stays under ``--target-latency``
=================  ===========================================  =======================================

The Server QPS is found by LoadGen's own search (``TestMode.FindPeakPerformance``: it doubles the
QPS from a start until a run breaks the bound, then bisects), and then confirmed by one ordinary
(``PerformanceOnly``) run at the QPS found, whose validity is the one reported. The search is bounded:
it starts at a quarter of the Offline (or warm-up) throughput T (then T/8 and T/16 when a start
breaks the bound) and stops when its bounds are 10^-d QPS apart, d chosen so that this is about 5 %
of T or less (LoadGen takes no coarser step than 1 QPS): about 3 + log2(T / 2 / step) tests of
``--duration`` each, 7 for T = 25 QPS. ``--server-confirm valid`` makes each test long enough for
LoadGen's early stopping of a p99 (:func:`early_stopping_queries`).

LoadGen writes its own ``mlperf_log_summary.txt`` and ``mlperf_log_detail.txt`` for every test; they
are kept beside the report, and :func:`read_detail` reads the detail log's ``:::MLLOG`` records.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from quasar.errors import QuasarError

SCENARIOS = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline", "server": "Server"}
ORDER = tuple(SCENARIOS)  # Offline runs before Server: its throughput sizes the Server search
PERCENTILES = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")
MAX_SEARCH_DECIMALS = 3
SEARCH_PRECISION = 0.05  # of the throughput
EXPECTED_UNDER = 8  # expected latencies are under-estimated this many times: LoadGen generates enough queries
MIN_EXPECTED_NS = 20_000
OFFLINE_MARGIN = 1.25  # expected QPS = this x the estimate, so the single query lasts at least --duration
SERVER_CONFIRM = ("quick", "valid")
VALID_RETRIES = 2  # --server-confirm valid: reruns of a Server test that early stopping found too short
VALID_MARGIN = 1.15  # queries asked = this x what LoadGen said it needs (a rerun may see more misses)
VALID_MAX_S = 900.0  # no Server test longer than this; the report says what a rerun would have needed
ES_CONFIDENCE = 0.99  # LoadGen's early-stopping confidence
SERVER_PERCENTILE = 0.99


def early_stopping_queries(percentile: float = SERVER_PERCENTILE, confidence: float = ES_CONFIDENCE) -> int:
    """The fewest queries LoadGen's early stopping accepts for ``percentile`` when none broke the bound:
    the smallest n with percentile^n <= 1 - confidence (459 for a p99; LoadGen asks for more per miss)."""
    return math.ceil(math.log(1 - confidence) / math.log(percentile))


@dataclass(frozen=True)
class Settings:
    """What the user asked for, shared by every test of a run."""

    duration_s: float = 10.0
    min_queries: int = 64
    target_latency_ms: float = 100.0
    server_qps: float | None = None  # None: LoadGen's peak search
    multi_stream_samples: int = 8
    server_confirm: str = "quick"  # "valid": Server tests long enough for LoadGen's early stopping (see run.py)

    @property
    def max_duration_ms(self) -> int:
        """A cap, so a slow model cannot hold one SingleStream test for min_queries x its latency."""
        return int(1000 * (2 * self.duration_s + 10))


def require_loadgen():
    from quasar.extras import require

    return require("mlperf_loadgen", "perf", "quasar perf")


def scenario_name(text: str) -> str:
    key = text.strip().lower().replace("_", "-")
    key = {"singlestream": "single-stream", "multistream": "multi-stream"}.get(key, key)
    if key not in SCENARIOS:
        raise QuasarError(f"unknown scenario {text!r}; expected one of {', '.join(SCENARIOS)} or all")
    return key


def search_decimals(throughput: float) -> int:
    """Decimals of precision for LoadGen's QPS search: its last step is 5 % of ``throughput`` or finer
    (never coarser than 1 QPS: LoadGen loops for ever on negative decimals)."""
    if throughput <= 0:
        return MAX_SEARCH_DECIMALS
    return max(0, min(MAX_SEARCH_DECIMALS, math.ceil(-math.log10(SEARCH_PRECISION * throughput))))


def test_settings(lg, scenario: str, s: Settings, n_samples: int, latency_s: float, throughput: float, *,
                  server_qps: float | None = None, find_peak: bool = False):
    """``lg.TestSettings`` for one test, and the same values as a dict for the report.

    ``latency_s`` / ``throughput``: the warm-up's estimates. LoadGen pre-generates queries from them,
    so latencies are under-estimated (x 1/8: enough queries for --duration; it stops once --duration
    and --min-queries are met) and Offline's expected QPS over-estimated (x 1.25: its one query lasts
    at least --duration).
    """
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, SCENARIOS[scenario])
    ts.mode = lg.TestMode.FindPeakPerformance if find_peak else lg.TestMode.PerformanceOnly
    ts.min_duration_ms = int(1000 * s.duration_s)
    ts.max_duration_ms = s.max_duration_ms
    if scenario == "server" and server_qps:
        # Long enough for min_queries at the lowest rate this test (or search) runs, so that no test ends
        # early at the cap: LoadGen moving on from a capped FindPeakPerformance step crashed a run here
        # (segmentation fault, once, in an end-to-end search at 1.36 QPS).
        need_s = 1.5 * s.min_queries / server_qps + 10
        ts.max_duration_ms = max(ts.max_duration_ms, int(1000 * min(need_s, VALID_MAX_S)))
    ts.performance_sample_count_override = n_samples
    used: dict = {"mode": "FindPeakPerformance" if find_peak else "PerformanceOnly",
                  "min_duration_ms": ts.min_duration_ms, "max_duration_ms": ts.max_duration_ms}
    if scenario != "offline":
        ts.min_query_count = s.min_queries
        used["min_query_count"] = s.min_queries
    per_sample = min(latency_s, 1 / max(throughput, 1e-9))
    if scenario == "single-stream":
        ts.single_stream_expected_latency_ns = used["expected_latency_ns"] = _expected_ns(per_sample)
    elif scenario == "multi-stream":
        ts.multi_stream_samples_per_query = used["samples_per_query"] = s.multi_stream_samples
        ts.multi_stream_expected_latency_ns = used["expected_latency_ns"] = _expected_ns(per_sample * s.multi_stream_samples)
    elif scenario == "offline":
        ts.offline_expected_qps = used["expected_qps"] = round(OFFLINE_MARGIN * throughput, 3)
    else:
        ts.server_target_latency_ns = used["target_latency_ns"] = int(s.target_latency_ms * 1e6)
        ts.server_target_latency_percentile = used["target_latency_percentile"] = SERVER_PERCENTILE
        ts.server_target_qps = used["target_qps"] = round(server_qps, 3)
        if find_peak:
            ts.server_find_peak_qps_decimals_of_precision = used["search_decimals"] = search_decimals(throughput)
            ts.server_find_peak_qps_boundary_step_size = used["search_boundary_step"] = 1.0
    return ts, used


def _expected_ns(seconds: float) -> int:
    return max(MIN_EXPECTED_NS, int(seconds * 1e9 / EXPECTED_UNDER))


def run_test(lg, sut, n_samples: int, ts, outdir: str) -> dict:
    """One LoadGen test of ``sut`` (its logs go to ``outdir``); :func:`read_detail` of its detail log."""
    os.makedirs(outdir, exist_ok=True)
    log_out = lg.LogOutputSettings()
    log_out.outdir = os.path.abspath(outdir)
    log_out.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_out
    log_settings.enable_trace = False
    sut_h = lg.ConstructSUT(sut.issue, sut.flush)
    qsl_h = lg.ConstructQSL(n_samples, n_samples, _noop, _noop)  # samples are in RAM already
    try:
        # An audit.config in the working directory would change the test: point LoadGen at none.
        lg.StartTestWithLogSettings(sut_h, qsl_h, ts, log_settings, os.path.join(log_out.outdir, "no-audit.config"))
    finally:
        lg.DestroyQSL(qsl_h)
        lg.DestroySUT(sut_h)
    return read_detail(os.path.join(outdir, "mlperf_log_detail.txt"))


def _noop(_indices) -> None:
    pass


NARRATIVE_KEYS = ("generic_message", "error_runtime")  # LoadGen says what it does (and what failed) in these


def read_detail(path: str) -> dict:
    """``{"values": {key: last value}, "messages": [...], "errors": [...], "warnings": [...]}`` from
    LoadGen's ``mlperf_log_detail.txt``; ``messages``: its narrative (generic messages and runtime
    errors, such as the QPS search's steps and its start failing the bound), in log order."""
    out: dict = {"values": {}, "messages": [], "errors": [], "warnings": []}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        raise QuasarError(f"{path}: LoadGen wrote no detail log ({e.strerror})") from None
    for line in lines:
        if not line.startswith(":::MLLOG "):
            continue
        try:
            rec = json.loads(line[len(":::MLLOG "):])
        except ValueError:
            continue
        key, value, meta = rec.get("key"), rec.get("value"), rec.get("metadata") or {}
        if key in NARRATIVE_KEYS:
            out["messages"].append(value)
        else:
            out["values"][key] = value
        if meta.get("is_error"):
            out["errors"].append(f"{key}: {value}")
        elif meta.get("is_warning"):
            out["warnings"].append(f"{key}: {value}")
    return out


_ES_PROCESSED = re.compile(r"Processed (\d+) queries")
_ES_MORE = re.compile(r"need to run at least (\d+) more queries")


def queries_needed(summary: dict) -> int | None:
    """Queries a rerun needs for LoadGen's early-stopping check, from its message ("Processed 536
    queries ... Would need to run at least 771 more queries": 1307); None when early stopping was met
    or LoadGen did not say."""
    text = summary.get("early_stopping") or ""
    if summary.get("checks", {}).get("early_stopping") is not False:
        return None
    done, more = _ES_PROCESSED.search(text), _ES_MORE.search(text)
    return int(done.group(1)) + int(more.group(1)) if done and more else None


def _ns_to_ms(v) -> float | None:
    return None if v is None else round(v / 1e6, 3)


def summarize(scenario: str, detail: dict) -> dict:
    """LoadGen's result for one test: validity and its checks, the scenario's metric, latencies in ms."""
    v = detail["values"]
    per_query = "_per_query" if scenario == "multi-stream" else ""
    lat = {p.rstrip("0").rstrip("."): _ns_to_ms(v.get(f"result_{p}_percentile{per_query}_latency_ns"))
           for p in PERCENTILES}
    out = {
        "validity": v.get("result_validity"),
        "checks": {k: v.get(key) for k, key in (("min_duration", "result_min_duration_met"),
                                                ("min_queries", "result_min_queries_met"),
                                                ("early_stopping", "early_stopping_met"),
                                                ("latency_constraint", "result_perf_constraints_met"))
                   if key in v},
        "invalid_reason": (v.get("result_invalid_reason") or "").strip() or None,
        "early_stopping": " ".join(str(v.get("early_stopping_result") or "").split()) or None,
        "query_count": v.get("result_query_count"),
        "latency_ms": {"mean": _ns_to_ms(v.get(f"result_mean{'_query' if per_query else ''}_latency_ns")),
                       **{f"p{k}": x for k, x in lat.items()},
                       "max": _ns_to_ms(v.get(f"result_max{'_query' if per_query else ''}_latency_ns"))},
        "loadgen_errors": detail["errors"], "loadgen_warnings": detail["warnings"],
    }
    if scenario == "offline":
        out["samples_per_s"] = v.get("result_samples_per_second")
    elif scenario == "server":
        out["scheduled_qps"] = v.get("result_scheduled_samples_per_sec")
        out["completed_qps"] = v.get("result_completed_samples_per_sec")
        out["target_qps"] = v.get("effective_target_qps")
        out["overlatency_queries"] = v.get("result_overlatency_query_count")
    elif scenario == "single-stream":
        out["qps"] = v.get("result_qps_with_loadgen_overhead")
    return out


_PEAK = re.compile(r"Found peak performance field: ([0-9.]+)")
_BASE = re.compile(r"Check validity of the base settings field: ([0-9.]+)")
_BOUNDS = re.compile(r"FindBoundaries: Checking fields \[([0-9.]+), ([0-9.]+)\)")
_FOUND = re.compile(r"Found boundaries: \[([0-9.]+), ([0-9.]+)\)")
_MID = re.compile(r"Testing the mid value of bounds \[([0-9.]+), ([0-9.]+)\): ([0-9.]+)")
_BASE_FAILED = "Initial lower bound does not satisfy"


def search_steps(messages: list[str]) -> dict:
    """LoadGen's QPS search from its messages: each QPS tried, in order, with whether its run kept
    the latency bound (inferred from the next bounds LoadGen chose; None where the log cannot tell),
    and the peak it settled on (None when even the start broke the bound)."""
    tried: list[float] = []
    passed: list[bool | None] = []
    peak = None

    def settle(ok: bool) -> None:
        if passed and passed[-1] is None:
            passed[-1] = ok

    for m in messages:
        if mm := _BASE.search(m):
            tried.append(float(mm.group(1)))
            passed.append(None)
        elif mm := _BOUNDS.search(m):
            settle(True)  # the lower bound (the previous QPS) held; the upper one is tried next
            tried.append(float(mm.group(2)))
            passed.append(None)
        elif _FOUND.search(m):
            settle(False)  # the upper bound broke it
        elif mm := _MID.search(m):
            lo, hi = float(mm.group(1)), float(mm.group(2))
            if passed and passed[-1] is None and tried:
                settle(lo == tried[-1] if lo == tried[-1] or hi == tried[-1] else None)
            tried.append(float(mm.group(3)))
            passed.append(None)
        elif mm := _PEAK.search(m):
            peak = float(mm.group(1))
            if passed and passed[-1] is None:
                passed[-1] = abs(tried[-1] - peak) < 1e-9
        elif _BASE_FAILED in m:
            settle(False)
    return {"qps_tried": tried, "kept_bound": passed, "peak_qps": peak}
