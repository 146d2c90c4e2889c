"""A ``quasar perf`` run: configurations x scenarios x repetitions, interleaved, into one report.

A *configuration* is a target (model, precision, backend; :mod:`quasar.perf.targets`), a mode
(``end-to-end`` or ``model-only``) and a batch size. Everything that can be refused is refused before
the first measurement: targets resolved, images loaded, every Scorer/backend created. Then each
configuration is warmed up once (:func:`quasar.perf.sut.calibrate`), and the tests run in rounds:
for each repetition, for each scenario, every configuration in turn, in reverse order every other
repetition and shifted by one every two (:func:`interleave`), so that a slow spell of a shared machine
falls on all configurations alike.

SingleStream sends one sample per query whatever the batch, so it runs once per target and mode, as
batch 1 (on the Scorer loaded for the first batch size: a Scorer's batch size only caps its batches).

``--backend native`` targets get no Python Scorer: the native library loads the model once
(:class:`quasar.perf.native.NativeTarget`) and its own runners do the work.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from quasar.errors import QuasarError
from quasar.perf import scenarios as sc
from quasar.perf.stats import latency_summary, speedup, spread
from quasar.perf.targets import Target

MODES = ("end-to-end", "model-only")
METRICS = {  # scenario -> (what, unit, higher is better)
    "single-stream": ("p90 latency", "ms", False),
    "multi-stream": ("p99 latency per query", "ms", False),
    "offline": ("throughput", "samples/s", True),
    "server": ("QPS at p99 <= target", "queries/s", True),
}
METRIC_DECIMALS = 3  # a run's headline value: LoadGen's number rounded to this many decimals (metric_value)
OFFLINE_RETRY_MARGIN = 1.3
SEARCH_START_FRACTION = 0.25
SEARCH_RETRIES = 2  # a start that breaks the bound: search again from half of it, at most this many times


@dataclass(frozen=True)
class Config:
    target: Target
    mode: str
    batch: int
    scorer_batch: int | None = None  # the Scorer to run on, when not the one loaded for ``batch``

    @property
    def load_batch(self) -> int:
        return self.scorer_batch or self.batch

    @property
    def label(self) -> str:
        return f"{self.target.label}, {self.mode}, batch {self.batch}"

    @property
    def slug(self) -> str:
        text = f"{self.target.name}-{self.target.backend}-{self.mode}-b{self.batch}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-120:]

    def describe(self) -> dict:
        t = self.target
        return {"model": t.name, "path": t.path, "precision": t.precision, "backend": t.backend,
                "runtime_backend": t.runtime_backend, "device": t.device, "mode": self.mode, "batch": self.batch}


@dataclass
class Options:
    models: list[str] = field(default_factory=lambda: ["default"])
    backends: list[str] = field(default_factory=lambda: ["onnxruntime"])
    precisions: list[str] | None = None
    images: str | None = None
    synthetic: str | None = None
    count: int | None = None
    batches: list[int] | None = None  # None: the runtime's default batch for the backend
    scenarios: list[str] = field(default_factory=lambda: ["single-stream", "offline"])
    modes: list[str] = field(default_factory=lambda: list(MODES))
    settings: sc.Settings = field(default_factory=sc.Settings)
    repeat: int = 1
    out: str = "perf-report"
    plots: str = "png"  # png, svg or none
    workers: int | None = None
    threads: int | None = None
    native_lib: str | None = None  # libquasar for --backend native (None: $QUASAR_NATIVE_LIB, the dev build, the system's)
    argv: list[str] | None = None


class Engine:
    """The loaded Scorers (one per target and batch size; one NativeTarget per native target), runners and
    warm-up estimates."""

    def __init__(self, opts: Options, workload, log) -> None:
        self.opts, self.workload, self.log = opts, workload, log
        self.scorers: dict[tuple[Target, int | None], object] = {}
        self.runners: dict[Config, object] = {}
        self.estimates: dict[Config, object] = {}

    def scorer(self, target: Target, batch: int | None):
        if target.backend == "native":  # the library loads the model once; the batch only sizes its calls
            key = (target, None)
            if key not in self.scorers:
                from quasar.perf.native import NativeTarget

                self.scorers[key] = NativeTarget(target.path, self.opts.native_lib, threads=self.opts.threads,
                                                 workers=self.opts.workers)
            return self.scorers[key]
        key = (target, batch)
        if key not in self.scorers:
            from quasar.runtime import Scorer

            try:
                self.scorers[key] = Scorer(target.path, backend=target.runtime_backend, device=target.device,
                                           batch_size=batch, workers=self.opts.workers, threads=self.opts.threads)
            except ImportError as e:  # a backend's library missing (torch, tensorrt, cuda-python)
                raise QuasarError(f"backend {target.backend} cannot run here: {e}") from None
        return self.scorers[key]

    def admit_native(self, targets: list[Target]) -> None:
        """Leave out (for every target alike) the images a native target's library cannot prepare."""
        refused: dict[str, str] = {}
        for t in targets:
            if t.backend == "native":
                for label, reason in self.scorer(t, None).refused(self.workload).items():
                    refused.setdefault(label, f"{reason} [backend native]")
        if refused:
            for reason in refused.values():
                self.log(f"skipping {reason}")
            self.workload = self.workload.without(refused)

    def backend_name(self, target: Target, batch: int) -> str:
        s = self.scorer(target, batch)
        return s.backend_name if target.backend == "native" else s.backend.name

    def runner(self, cfg: Config):
        if cfg not in self.runners:
            from quasar.perf.sut import EndToEnd, ModelOnly

            s = self.scorer(cfg.target, cfg.load_batch)
            if cfg.target.backend == "native":
                from quasar.perf.native import NativeEndToEnd, NativeModelOnly

                cls = NativeEndToEnd if cfg.mode == "end-to-end" else NativeModelOnly
                self.runners[cfg] = cls(s, self.workload, cfg.batch)
            elif cfg.mode == "end-to-end":
                self.runners[cfg] = EndToEnd(s, self.workload)
            else:
                self.runners[cfg] = ModelOnly(s.backend, self.workload.tensors(s.spec), cfg.batch)
        return self.runners[cfg]

    def estimate(self, cfg: Config):
        if cfg not in self.estimates:
            from quasar.perf.sut import SUT, calibrate

            with SUT(self.runner(cfg)) as sut:
                est = calibrate(sut, len(self.workload), cfg.batch)
            self.estimates[cfg] = est
            self.log(f"warm-up {cfg.label}: one sample {1e3 * est.latency_s:.1f} ms, "
                     f"{est.throughput:.1f} samples/s in groups of {est.group}")
        return self.estimates[cfg]

    def close(self) -> None:
        for s in self.scorers.values():
            s.close()


def resolve_batches(opts: Options, engine: Engine, targets: list[Target]) -> list[int]:
    """``--batch`` values, or the runtime's default for the first target's backend."""
    if opts.batches:
        if any(b < 1 for b in opts.batches):
            raise QuasarError("--batch values must be at least 1")
        return list(dict.fromkeys(opts.batches))
    return [engine.scorer(targets[0], None).batch_size]


def plan_configs(targets: list[Target], modes: list[str], batches: list[int], scenario: str) -> list[Config]:
    if scenario == "single-stream":
        return [Config(t, m, 1, None if batches[0] == 1 else batches[0]) for t in targets for m in modes]
    return [Config(t, m, b) for t in targets for m in modes for b in batches]


def interleave(items: list, rep: int) -> list:
    """The order of repetition ``rep``: forwards, then backwards (a linear drift of the machine's
    speed falls on every configuration alike over each pair of repetitions), shifted by one every pair."""
    if not items:
        return items
    k = (rep // 2) % len(items)
    order = items[k:] + items[:k]
    return order[::-1] if rep % 2 else order


class Measurer:
    """Runs LoadGen tests for configurations; keeps the SUT-side latencies for the plots."""

    def __init__(self, opts: Options, engine: Engine, log) -> None:
        self.opts, self.engine, self.log = opts, engine, log
        self.lg = sc.require_loadgen()
        self.n = len(engine.workload)
        self.offline: dict[tuple[Config, int], float] = {}

    def _test(self, cfg: Config, scenario: str, outdir: str, ts) -> tuple[dict, object]:
        from quasar.perf.sut import SUT

        lg = self.lg

        live = threading.Lock()
        running = [True]

        def complete(entries) -> None:
            with live:  # never answer LoadGen once its test has returned (its query objects are gone)
                if running[0]:
                    lg.QuerySamplesComplete([lg.QuerySampleResponse(e.id, 0, 0) for e in entries])

        with SUT(self.engine.runner(cfg), complete) as sut:
            try:
                detail = sc.run_test(lg, sut, self.n, ts, outdir)
            finally:
                with live:
                    running[0] = False
        if sut.failure is not None:
            raise QuasarError(f"{cfg.label}: inference failed during {scenario}: "
                              f"{type(sut.failure).__name__}: {sut.failure}")
        return detail, sut

    def _settings(self, scenario: str, cfg: Config, **kw):
        est = self.engine.estimate(cfg)
        throughput = kw.pop("throughput", est.throughput)
        settings = kw.pop("settings", self.opts.settings)
        return sc.test_settings(self.lg, scenario, settings, self.n, est.latency_s, throughput, **kw)

    def measure(self, scenario: str, cfg: Config, rep: int) -> dict:
        base = os.path.join(self.opts.out, "loadgen", f"r{rep + 1}-{scenario}-{cfg.slug}")
        rec = {"scenario": scenario, "rep": rep + 1, "label": cfg.label, "config": cfg.describe(), "notes": []}
        if note := self.engine.runner(cfg).note:
            rec["notes"].append(note)
        t0 = time.perf_counter()
        if scenario == "server":
            self._server(cfg, rep, base, rec)
        else:
            ts, used = self._settings(scenario, cfg)
            detail, sut = self._test(cfg, scenario, base, ts)
            summary = sc.summarize(scenario, detail)
            if (scenario == "offline" and summary["checks"].get("min_duration") is False
                    and summary.get("samples_per_s")):
                rec["notes"].append(f"first Offline test ended before --duration (expected QPS {used['expected_qps']}); "
                                    "rerun with the QPS it measured")
                ts, used = self._settings(scenario, cfg, throughput=OFFLINE_RETRY_MARGIN * summary["samples_per_s"]
                                          / sc.OFFLINE_MARGIN)
                detail, sut = self._test(cfg, scenario, base, ts)
                summary = sc.summarize(scenario, detail)
            rec.update(settings=used, loadgen=summary, logs=os.path.relpath(base, self.opts.out))
            self._sut_part(rec, sut, per_query=scenario == "multi-stream", keep=scenario != "offline")
            if scenario == "offline" and summary.get("samples_per_s"):
                self.offline[(cfg, rep)] = summary["samples_per_s"]
        rec["metric"] = metric(scenario, rec)
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        return rec

    def _sut_part(self, rec: dict, sut, per_query: bool, keep: bool) -> None:
        lat = sut.latencies(per_query=per_query)
        rec["sut"] = {"failed": sut.failed, "first_error": sut.first_error,
                      "latency_ms": latency_summary(lat) if keep else None}
        if keep:
            rec["latencies_ms"] = [round(float(x), 2) for x in lat]
        if sut.failed:
            rec["notes"].append(f"{sut.failed} samples failed (first: {sut.first_error}); the numbers include them")

    def _server_settings(self) -> sc.Settings:
        """Every Server test's settings: with ``--server-confirm valid``, at least the queries LoadGen's
        early stopping needs for a p99 without a miss (x 1.15); :func:`~quasar.perf.scenarios.test_settings`
        gives each test the time they take at its rate (up to 900 s). Short tests
        under-sample the tail: a search of 10 s tests found 9.2 QPS for fp32 model only on 2 cores,
        where a 528-query test at that rate had a p99 of 128 ms."""
        s = self.opts.settings
        if s.server_confirm != "valid":
            return s
        return replace(s, min_queries=max(s.min_queries, math.ceil(sc.VALID_MARGIN * sc.early_stopping_queries())))

    def _server(self, cfg: Config, rep: int, base: str, rec: dict) -> None:
        fixed = self.opts.settings.server_qps
        ss = self._server_settings()
        if fixed:
            ts, used = self._settings("server", cfg, server_qps=fixed, settings=ss)
            detail, sut = self._test(cfg, "server", base, ts)
            used, detail, sut = self._until_valid(cfg, fixed, base, rec, used, detail, sut)
            rec.update(settings=used, loadgen=sc.summarize("server", detail), logs=os.path.relpath(base, self.opts.out))
            self._sut_part(rec, sut, per_query=False, keep=True)
            return
        throughput = self.offline.get((cfg, rep)) or self.engine.estimate(cfg).throughput
        start = SEARCH_START_FRACTION * throughput
        search_dir = os.path.join(base, "search")
        ts, used = self._settings("server", cfg, server_qps=start, find_peak=True, throughput=throughput, settings=ss)
        step = 10.0 ** -used["search_decimals"]
        tests = 4 + max(0, math.ceil(math.log2(max(throughput / 2 / step, 1))))
        self.log(f"server {cfg.label}: LoadGen's QPS search from {start:.3g} QPS to a {step:g} QPS step, "
                 f"about {tests} tests of at least {ss.duration_s:g} s and {ss.min_queries} queries")
        detail, sut = self._test(cfg, "server", search_dir, ts)
        steps = sc.search_steps(detail["messages"])
        failed_starts = []
        while (steps["peak_qps"] is None and steps["qps_tried"] and steps["kept_bound"][:1] == [False]
               and len(failed_starts) < SEARCH_RETRIES):
            # Halving, not quartering: a rate between the start and a sixteenth of the throughput is tried too
            # (latency need not fall with the rate: at sparse arrivals a query can wait for idle cores to wake).
            failed_starts.append(start)
            rec["notes"].append(f"the search's start ({start:.3g} QPS) broke the latency bound; searched again "
                                f"from {start / 2:.3g}")
            start /= 2
            ts, used = self._settings("server", cfg, server_qps=start, find_peak=True, throughput=throughput,
                                      settings=ss)
            detail, sut = self._test(cfg, "server", search_dir, ts)
            steps = sc.search_steps(detail["messages"])
        steps["failed_starts"] = failed_starts
        step_p99 = []
        for seg in range(len(steps["qps_tried"])):
            lat = [s[2] * 1e3 for s in sut.samples if s[0] == seg]
            step_p99.append((latency_summary(np.array(lat)) or {}).get("p99"))
        steps["sut_p99_ms"] = step_p99
        rec["search"] = {**steps, "settings": used, "logs": os.path.relpath(search_dir, self.opts.out)}
        peak = steps["peak_qps"]
        if peak is None:
            alone = 1e3 * self.engine.estimate(cfg).latency_s
            rec["notes"].append(f"no QPS kept p99 under {self.opts.settings.target_latency_ms:g} ms, not even "
                                f"{start:.3g} QPS (one image alone took {alone:.0f} ms in the warm-up; LoadGen: "
                                f"{sc.summarize('server', detail)['invalid_reason']})")
            rec.update(settings=used, loadgen=sc.summarize("server", detail), logs=rec["search"]["logs"])
            self._sut_part(rec, sut, per_query=False, keep=True)
            rec["peak_qps"] = None
            return
        ts, used = self._settings("server", cfg, server_qps=peak, throughput=throughput, settings=ss)
        detail, sut = self._test(cfg, "server", base, ts)
        used, detail, sut = self._until_valid(cfg, peak, base, rec, used, detail, sut, throughput=throughput)
        rec.update(settings=used, loadgen=sc.summarize("server", detail), logs=os.path.relpath(base, self.opts.out),
                   peak_qps=peak)
        self._sut_part(rec, sut, per_query=False, keep=True)

    def _until_valid(self, cfg: Config, qps: float, base: str, rec: dict, used: dict, detail: dict, sut, **kw):
        """``--server-confirm valid``: while the reported Server test kept its latency bound but was too
        short for LoadGen's early-stopping estimate (queries over the bound raise what it needs), rerun
        it with the queries LoadGen said it needs (x 1.15), at most twice and never longer than 900 s;
        the last run is the one reported."""
        s = self._server_settings()
        if s.server_confirm != "valid":
            return used, detail, sut
        for _ in range(sc.VALID_RETRIES):
            summary = sc.summarize("server", detail)
            needed = sc.queries_needed(summary)
            if summary["validity"] == "VALID" or needed is None or summary["checks"].get("latency_constraint") is False:
                break
            queries = math.ceil(sc.VALID_MARGIN * needed)
            seconds = queries / qps
            if seconds > sc.VALID_MAX_S:
                rec["notes"].append(f"early stopping needs about {needed} queries at {qps:.4g} QPS ({seconds:.0f} s), "
                                    f"more than --server-confirm valid runs ({sc.VALID_MAX_S:g} s); not rerun")
                break
            longer = replace(s, min_queries=max(s.min_queries, queries))  # test_settings sizes its duration cap
            rec["notes"].append(f"Server test at {qps:.4g} QPS: {summary['query_count']} queries were too few for "
                                f"LoadGen's early stopping (it needs about {needed}); rerun with {queries} queries "
                                f"(--server-confirm valid)")
            self.log(rec["notes"][-1])
            ts, used = self._settings("server", cfg, server_qps=qps, settings=longer, **kw)
            detail, sut = self._test(cfg, "server", base, ts)
        return used, detail, sut


def metric(scenario: str, rec: dict) -> dict:
    """The scenario's headline number for one record (None when LoadGen gave none)."""
    what, unit, higher = METRICS[scenario]
    lg = rec.get("loadgen") or {}
    lat = lg.get("latency_ms") or {}
    if scenario == "single-stream":
        value = lat.get("p90")
    elif scenario == "multi-stream":
        value = lat.get("p99")
    elif scenario == "offline":
        value = lg.get("samples_per_s")
    elif "search" in rec:
        value = rec.get("peak_qps")
    else:  # a fixed --server-qps: the QPS LoadGen scheduled, if p99 kept the bound
        value = lg.get("scheduled_qps") if lg.get("checks", {}).get("latency_constraint") else None
    return {"what": what, "unit": unit, "higher_is_better": higher,
            "value": None if value is None else round(float(value), METRIC_DECIMALS), "valid": lg.get("validity") == "VALID"}


def summarize_runs(records: list[dict], targets: list[Target]) -> tuple[list[dict], list[dict]]:
    """(summary rows: median and spread over repetitions per scenario and configuration,
    comparison rows: each target against the first, per scenario, mode and batch)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        c = r["config"]
        groups.setdefault((r["scenario"], c["model"], c["backend"], c["mode"], c["batch"]), []).append(r)
    rows = []
    for (scen, model, backend, mode, batch), rs in groups.items():
        m = rs[0]["metric"]
        rows.append({"scenario": scen, "model": model, "backend": backend, "precision": rs[0]["config"]["precision"],
                     "mode": mode, "batch": batch, "what": m["what"], "unit": m["unit"],
                     "higher_is_better": m["higher_is_better"],
                     "value": spread([r["metric"]["value"] for r in rs]),
                     "valid": [r["loadgen"].get("validity") for r in rs],
                     "p99_ms": spread([r["loadgen"]["latency_ms"].get("p99") for r in rs])})
    comparison = []
    if len(targets) > 1:
        base = targets[0]
        for (scen, model, backend, mode, batch), rs in groups.items():
            if (model, backend) == (base.name, base.backend):
                continue
            ref = {r["rep"]: r["metric"]["value"] for r in groups.get((scen, base.name, base.backend, mode, batch), [])}
            ratios = [speedup(r["metric"]["value"], ref.get(r["rep"]), r["metric"]["higher_is_better"]) for r in rs]
            comparison.append({"scenario": scen, "mode": mode, "batch": batch, "model": model, "backend": backend,
                               "baseline": f"{base.name} @ {base.backend}", "what": rs[0]["metric"]["what"],
                               "speedup": spread(ratios), "per_rep": ratios})
    return rows, comparison


def run(opts: Options, log: Callable[[str], None] | None = None) -> dict:
    """Measure, write ``report.json``, ``report.md`` and plots into ``opts.out``; return the report."""
    from quasar.perf import report, workload
    from quasar.perf.targets import resolve_targets

    log = log or (lambda m: print(f"quasar perf: {m}", file=sys.stderr, flush=True))
    import faulthandler

    if not faulthandler.is_enabled():  # a crash inside LoadGen or a backend prints every thread's stack
        faulthandler.enable()
    sc.require_loadgen()
    if opts.plots != "none":
        from quasar.extras import require

        require("matplotlib", "perf", "quasar perf plots (or --plots none)")
    if opts.repeat < 1:
        raise QuasarError("--repeat must be at least 1")
    s = opts.settings
    if s.duration_s <= 0 or s.min_queries < 1 or s.target_latency_ms <= 0 or s.multi_stream_samples < 1:
        raise QuasarError("--duration, --min-queries, --target-latency and --multi-stream-samples must be positive")
    if s.server_confirm not in sc.SERVER_CONFIRM:
        raise QuasarError(f"unknown --server-confirm {s.server_confirm!r}; expected one of {', '.join(sc.SERVER_CONFIRM)}")
    for m in opts.modes:
        if m not in MODES:
            raise QuasarError(f"unknown mode {m!r}; expected one of {', '.join(MODES)}")
    targets = resolve_targets(opts.models, opts.backends, opts.precisions, native_lib=opts.native_lib)
    if opts.images and opts.synthetic:
        raise QuasarError("give --images DIR or --synthetic HxW, not both")
    if opts.images:
        wl = workload.from_folder(opts.images, opts.count or workload.DEFAULT_FOLDER_COUNT)
    else:
        wl = workload.synthetic(opts.synthetic or workload.DEFAULT_SYNTHETIC, opts.count or workload.DEFAULT_SYNTHETIC_COUNT)
    for skipped in wl.skipped:
        log(f"skipping {skipped}")
    scen_list = [s for s in sc.ORDER if s in opts.scenarios]
    os.makedirs(opts.out, exist_ok=True)
    engine = Engine(opts, wl, log)
    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    try:
        engine.admit_native(targets)
        wl = engine.workload
        batches = resolve_batches(opts, engine, targets)
        all_cfgs = list(dict.fromkeys(c for scen in scen_list for c in plan_configs(targets, opts.modes, batches, scen)))
        for cfg in all_cfgs:  # load everything first: what cannot run is refused before any measurement
            engine.runner(cfg)
        meas = Measurer(opts, engine, log)
        records = []
        total = opts.repeat * sum(len(plan_configs(targets, opts.modes, batches, sn)) for sn in scen_list)
        for rep in range(opts.repeat):
            for scen in scen_list:
                for cfg in interleave(plan_configs(targets, opts.modes, batches, scen), rep):
                    rec = meas.measure(scen, cfg, rep)
                    records.append(rec)
                    m = rec["metric"]
                    val = "none" if m["value"] is None else f"{m['value']:.4g} {m['unit']}"
                    log(f"[{len(records)}/{total}] rep {rep + 1} {scen} {cfg.label}: {m['what']} {val}, "
                        f"LoadGen {rec['loadgen'].get('validity')} ({rec['seconds']:.0f} s)")
        model_infos = {t.name: model_description(engine.scorer(t, batches[0]).info) for t in targets}
        backends = {t.label: engine.backend_name(t, batches[0]) for t in targets}
    finally:
        engine.close()
    rows, comparison = summarize_runs(records, targets)
    rep = report.assemble(opts=opts, targets=targets, batches=batches, scenarios=scen_list, workload=wl,
                          models=model_infos, backends=backends, records=records, rows=rows, comparison=comparison,
                          load=(load_start, os.getloadavg()[0]), seconds=time.perf_counter() - t_start)
    if opts.plots != "none":
        from quasar.perf import plots

        rep["plots"] = plots.make_all(rep, opts.out, opts.plots)
    report.write(rep, opts.out)
    return rep


def model_description(info) -> dict:
    """The model's metadata as the report records it."""
    return {"path": info.path, "kind": info.kind, "encoder": info.encoder, "precision": info.precision,
            "heads": list(info.heads), "pack_hash": info.pack_hash, "project_version": info.project_version,
            "format_version": info.format_version, "dynamic_size": info.dynamic_size, "preprocess": info.preprocess,
            "file_bytes": os.path.getsize(info.path) if os.path.exists(info.path) else None}
