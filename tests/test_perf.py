"""``quasar perf``: every LoadGen scenario on the tiny model for well under a second each, the report's
fields, plots and LoadGen logs, comparison mode, and one-line refusals of what cannot run.

No timing is asserted: the machine may be shared. Only that each number exists, is positive and is
what LoadGen logged.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip("mlperf_loadgen")
pytest.importorskip("onnx")  # writes the tiny model

from quasar.cli import main
from quasar.perf import scenarios as sc
from quasar.testing import TINY_CROP_SPEC, write_tiny_model

FAST = ["--synthetic", "96x128", "--count", "4", "--duration", "0.2", "--min-queries", "8"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("perf") / "tiny.onnx")


@pytest.fixture(scope="module")
def all_scenarios(tiny, tmp_path_factory):
    """Every scenario, both modes, batch 2, a fixed Server QPS (the search has its own test)."""
    out = tmp_path_factory.mktemp("perf-all") / "report"
    rc = main(["perf", "--model", tiny, *FAST, "--scenario", "all", "--batch", "2", "--server-qps", "20",
               "-o", str(out)])
    assert rc == 0
    with open(out / "report.json") as f:
        return out, json.load(f)


def test_every_scenario_and_mode_is_measured_with_loadgens_verdict(all_scenarios):
    out, rep = all_scenarios
    runs = rep["runs"]
    assert {(r["scenario"], r["config"]["mode"]) for r in runs} == {
        (s, m) for s in sc.SCENARIOS for m in ("end-to-end", "model-only")}
    for r in runs:
        lg = r["loadgen"]
        assert lg["validity"] in ("VALID", "INVALID"), r["label"]
        assert set(lg["checks"]) >= {"min_duration", "min_queries"}
        assert lg["query_count"] >= 1 and r["sut"]["failed"] == 0
        assert r["metric"]["value"] is not None and r["metric"]["value"] > 0, r["label"]
        summary = out / r["logs"] / "mlperf_log_summary.txt"
        assert summary.is_file() and "MLPerf Results Summary" in summary.read_text()  # LoadGen's own, kept
        if r["scenario"] != "offline":
            assert len(r["latencies_ms"]) == r["sut"]["latency_ms"]["count"] > 0
    by = {(r["scenario"], r["config"]["mode"]): r for r in runs}
    ss = by["single-stream", "end-to-end"]
    assert ss["config"]["batch"] == 1 and ss["metric"]["value"] == ss["loadgen"]["latency_ms"]["p90"]
    assert ss["loadgen"]["latency_ms"]["p50"] <= ss["loadgen"]["latency_ms"]["p90"] <= ss["loadgen"]["latency_ms"]["p99"]
    off = by["offline", "model-only"]
    assert off["metric"]["value"] == off["loadgen"]["samples_per_s"] and off["metric"]["higher_is_better"]
    ms = by["multi-stream", "model-only"]
    assert ms["settings"]["samples_per_query"] == 8 and ms["metric"]["value"] == ms["loadgen"]["latency_ms"]["p99"]
    srv = by["server", "end-to-end"]
    assert srv["settings"]["target_qps"] == 20 and srv["loadgen"]["checks"]["latency_constraint"] in (True, False)


def test_report_records_machine_model_and_workload(all_scenarios, tiny):
    out, rep = all_scenarios
    m = rep["machine"]
    assert m["cores"] >= 1 and m["cpu"] and isinstance(m["isa"], list) and isinstance(m["gpus"], list)
    assert m["versions"]["mlcommons-loadgen"] and m["versions"]["onnxruntime"]
    assert "CPUExecutionProvider" in m["onnxruntime_providers"]
    (model,) = rep["models"].values()
    assert model["path"] == tiny and model["encoder"] == "tiny-test-conv" and model["precision"] == "fp32"
    assert model["heads"] == ["quality", "aesthetics"] and model["pack_hash"].startswith("sha256:")
    assert rep["workload"]["count"] == 4 and rep["workload"]["source"].startswith("synthetic 96x128")
    assert rep["settings"]["batches"] == [2] and rep["settings"]["duration_s"] == 0.2
    assert rep["targets"][0]["runtime_backend"] == "onnxruntime-cpu"
    md = (out / "report.md").read_text()
    for section in ("## Results", "## LoadGen validity", "## Plots", "## How to read it", "## Models"):
        assert section in md
    assert "SingleStream p90 ms" in md and "Offline samples/s" in md and "Server QPS" in md


def test_plots_are_written(all_scenarios):
    out, rep = all_scenarios
    assert len(rep["plots"]) == 6  # histogram/CDF for SingleStream, MultiStream, Server x 2 modes
    for p in rep["plots"]:
        assert (out / p).read_bytes()[:8] == PNG
    from quasar.perf import plots

    svg = plots.make_all(rep, str(out / "svg"), "svg")
    assert len(svg) == 6 and all(b"<svg" in (out / "svg" / p).read_bytes()[:2000] for p in svg)


@pytest.mark.slow
def test_server_search_finds_a_peak_and_confirms_it(tiny, tmp_path):
    out = tmp_path / "r"
    assert main(["perf", "--model", tiny, *FAST, "--scenario", "server", "--mode", "model-only", "--batch", "2",
                 "--target-latency", "50", "--plots", "none", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    (r,) = rep["runs"]
    s = r["search"]
    assert s["peak_qps"] > 0 and s["peak_qps"] == r["peak_qps"] and r["metric"]["value"] == pytest.approx(s["peak_qps"])
    assert s["qps_tried"][0] == pytest.approx(s["settings"]["target_qps"], rel=1e-3)
    assert s["peak_qps"] in s["qps_tried"] and len(s["sut_p99_ms"]) == len(s["qps_tried"])
    assert r["settings"]["mode"] == "PerformanceOnly" and r["settings"]["target_qps"] == pytest.approx(s["peak_qps"], 1e-3)
    assert (out / s["logs"] / "mlperf_log_detail.txt").is_file() and (out / r["logs"] / "mlperf_log_summary.txt").is_file()
    assert "Server: LoadGen's QPS search" in (out / "report.md").read_text()


def test_comparison_mode_interleaves_and_gives_ratios(tmp_path):
    a = write_tiny_model(tmp_path / "a.onnx")
    b = write_tiny_model(tmp_path / "b.onnx", spec=TINY_CROP_SPEC, dim=32, seed=1)
    out = tmp_path / "r"
    assert main(["perf", "--model", a, "--model", b, *FAST, "--scenario", "offline,single-stream", "--mode",
                 "model-only", "--repeat", "2", "--plots", "none", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    order = [(r["rep"], r["scenario"], r["config"]["model"]) for r in rep["runs"]]
    assert order == [(1, "single-stream", "a.onnx"), (1, "single-stream", "b.onnx"), (1, "offline", "a.onnx"),
                     (1, "offline", "b.onnx"), (2, "single-stream", "b.onnx"), (2, "single-stream", "a.onnx"),
                     (2, "offline", "b.onnx"), (2, "offline", "a.onnx")]  # reversed every other repetition
    comp = {c["scenario"]: c for c in rep["comparison"]}
    assert set(comp) == {"single-stream", "offline"}
    for c in comp.values():
        assert c["model"] == "b.onnx" and c["baseline"] == "a.onnx @ onnxruntime"
        assert len(c["per_rep"]) == 2 and c["speedup"]["n"] == 2
        assert c["speedup"]["min"] <= c["speedup"]["median"] <= c["speedup"]["max"]
    offline = [r for r in rep["runs"] if r["scenario"] == "offline"]
    ratio = {r["rep"]: {} for r in offline}
    for r in offline:
        ratio[r["rep"]][r["config"]["model"]] = r["metric"]["value"]
    assert comp["offline"]["per_rep"] == pytest.approx([ratio[1]["b.onnx"] / ratio[1]["a.onnx"],
                                                         ratio[2]["b.onnx"] / ratio[2]["a.onnx"]])
    assert "## Comparison" in (out / "report.md").read_text()


def test_images_folder_skips_what_cannot_be_decoded(tiny, tmp_path, photos, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    for p in photos[:3]:
        os.symlink(p.path, d / os.path.basename(p.path))
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "r"
    assert main(["perf", "--model", tiny, "--images", str(d), "--duration", "0.2", "--min-queries", "4",
                 "--scenario", "offline", "--mode", "end-to-end", "--plots", "none", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["workload"]["count"] == 3 and len(rep["workload"]["skipped"]) == 1
    assert "broken.jpg" in rep["workload"]["skipped"][0]
    assert "skipping" in capsys.readouterr().err


# ------------------------------------------------------------------ refusals: one line, before any measurement


def _error_line(capsys, argv, tmp_path, images=False) -> str:
    out = tmp_path / "never"
    assert main(["perf", *argv, *(FAST[2:] if images else FAST), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quasar: error: "), err
    assert not (out / "report.json").exists()
    return err[0]


def test_wrong_model_is_one_line(tmp_path, capsys):
    assert "model file not found" in _error_line(capsys, ["--model", str(tmp_path / "nope.onnx")], tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    assert "bad.onnx" in _error_line(capsys, ["--model", str(bad)], tmp_path)


def test_wrong_backend_is_one_line(tiny, tmp_path, capsys):
    assert "unknown backend 'gpu-magic'" in _error_line(capsys, ["--model", tiny, "--backend", "gpu-magic"], tmp_path)



def test_native_backend_without_its_library_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    line = _error_line(capsys, ["--model", tiny, "--backend", "native", "--native-lib", "/nonexistent/libquasar.so"],
                       tmp_path)
    assert line == ("quasar: error: backend native cannot run: /nonexistent/libquasar.so: native library not found "
                    "(the path given) (see docs/perf.md#the-native-backend)")
    notlib = tmp_path / "libquasar.so"
    notlib.write_text("not a library")
    monkeypatch.setenv("QUASAR_NATIVE_LIB", str(notlib))
    line = _error_line(capsys, ["--model", tiny, "--backend", "onnxruntime,native"], tmp_path)
    assert f"backend native cannot run: {notlib}: cannot load the native library" in line


def test_backend_missing_here_is_one_line(tiny, tmp_path, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has the CUDA execution provider")
    assert "CUDAExecutionProvider" in _error_line(capsys, ["--model", tiny, "--backend", "onnxruntime-cuda"], tmp_path)


def test_wrong_precision_and_arguments_are_one_line(tiny, tmp_path, capsys):
    assert "this model is fp32" in _error_line(capsys, ["--model", tiny, "--precision", "int8"], tmp_path)
    assert "unknown scenario 'batchy'" in _error_line(capsys, ["--model", tiny, "--scenario", "batchy"], tmp_path)
    assert "not a folder" in _error_line(capsys, ["--model", tiny, "--images", str(tmp_path / "none")], tmp_path,
                                         images=True)


def test_missing_loadgen_names_the_extra(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)  # import fails as if not installed
    line = _error_line(capsys, ["--model", tiny], tmp_path)
    assert "mlcommons-loadgen" in line and "quasar-engine[perf]" in line


# ------------------------------------------------------------------ pieces


def test_search_steps_follow_loadgens_bounds():
    msgs = ["Starting FindPeakPerformance mode",
            "FindPeakPerformance: Check validity of the base settings field: 20.000000",
            "FindBoundaries: Checking fields [20.000000, 40.000000)",
            "FindBoundaries: Checking fields [40.000000, 80.000000)",
            "FindPeakPerformance: Found boundaries: [40.000000, 80.000000)",
            "FindPeakPerformanceBinarySearch: Testing the mid value of bounds [40.000000, 80.000000): 60.000000",
            "FindPeakPerformanceBinarySearch: Testing the mid value of bounds [40.000000, 60.000000): 50.000000",
            "FindPeakPerformanceBinarySearch: Testing the mid value of bounds [50.000000, 60.000000): 55.000000",
            "FindPeakPerformance: Found peak performance field: 50.000000"]
    s = sc.search_steps(msgs)
    assert s["qps_tried"] == [20, 40, 80, 60, 50, 55]
    assert s["kept_bound"] == [True, True, False, False, True, False]
    assert s["peak_qps"] == 50
    failed = sc.search_steps(msgs[:2] + ["IssueQueryThread 0 Ending early: Max test duration reached.",
                                         "FindPeakPerformance: Initial lower bound does not satisfy performance "
                                         "constraints, msg: Reduce target QPS to improve latency."])
    assert failed == {"qps_tried": [20], "kept_bound": [False], "peak_qps": None}


def test_interleave_reverses_and_shifts():
    from quasar.perf.run import interleave

    assert [interleave(list("abc"), r) for r in range(4)] == [list("abc"), list("cba"), list("bca"), list("acb")]


def test_search_precision_never_coarser_than_loadgen_allows():
    assert sc.search_decimals(25) == 0 and sc.search_decimals(5) == 1 and sc.search_decimals(0.3) == 2
    assert sc.search_decimals(1e6) == 0 and sc.search_decimals(0) == sc.MAX_SEARCH_DECIMALS


def test_read_detail_and_summarize(tmp_path):
    p = tmp_path / "mlperf_log_detail.txt"
    rec = lambda k, v, **meta: ":::MLLOG " + json.dumps({"key": k, "value": v, "metadata": meta})  # noqa: E731
    p.write_text("\n".join([
        "garbage line", rec("result_validity", "INVALID"), rec("result_min_duration_met", True),
        rec("result_min_queries_met", True), rec("early_stopping_met", False),
        rec("early_stopping_result", " * Only processed 10 queries.\n * Need 64."), rec("result_query_count", 10),
        rec("result_90.00_percentile_latency_ns", 12_500_000), rec("result_50.00_percentile_latency_ns", 10_000_000),
        rec("generic_message", "hello"), rec("error_invalid_config", "bad", is_error=True),
        rec("error_runtime", "FindPeakPerformance: Initial lower bound does not satisfy", is_error=True)]))
    d = sc.read_detail(str(p))
    assert d["messages"] == ["hello", "FindPeakPerformance: Initial lower bound does not satisfy"]
    assert d["errors"] == ["error_invalid_config: bad", "error_runtime: FindPeakPerformance: Initial lower bound "
                           "does not satisfy"]
    s = sc.summarize("single-stream", d)
    assert s["validity"] == "INVALID" and s["checks"] == {"min_duration": True, "min_queries": True,
                                                          "early_stopping": False}
    assert s["latency_ms"]["p90"] == 12.5 and s["latency_ms"]["p50"] == 10.0 and s["latency_ms"]["p99"] is None
    assert s["early_stopping"] == "* Only processed 10 queries. * Need 64."


def test_synthetic_images_are_deterministic_jpegs():
    from quasar.perf import workload

    a, b = workload.synthetic("64x80", 3), workload.synthetic("64x80", 3)
    assert a.data == b.data and len(set(a.data)) == 3 and all(d[:2] == b"\xff\xd8" for d in a.data)
    for bad in ("64", "64x", "8x8", "axb"):
        with pytest.raises(Exception, match="--synthetic"):
            workload.synthetic(bad)


def test_model_only_runner_batches_per_shape(tiny):
    import numpy as np

    from quasar.perf.sut import SUT, ModelOnly
    from quasar.runtime import Scorer

    class Recording:
        device = "cpu"

        def __init__(self, backend):
            self.inner, self.shapes = backend, []

        def submit(self, batch):
            self.shapes.append(batch.shape)
            return self.inner.submit(batch)

    with Scorer(tiny) as s:
        rec = Recording(s.backend)
        tensors = [np.zeros((32, 48, 3), np.uint8)] * 3 + [np.zeros((48, 32, 3), np.uint8)] * 2
        with SUT(ModelOnly(rec, tensors, batch=2)) as sut:
            sut.run_direct([0, 3, 1, 2, 4])
    assert rec.shapes == [(2, 32, 48, 3), (1, 32, 48, 3), (2, 48, 32, 3)]


def test_gpus_from_nvidia_smi(monkeypatch):
    from quasar import machine

    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    assert machine.gpus() == []
    monkeypatch.setattr(machine.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(machine.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "NVIDIA H200, 143771, 570.86.15\n", ""))
    assert machine.gpus() == [{"name": "NVIDIA H200", "memory_mib": 143771, "driver": "570.86.15"}]


def test_building_the_cli_imports_neither_loadgen_nor_matplotlib():
    code = ("import sys\nfrom quasar.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('mlperf_loadgen', 'matplotlib', 'quasar.perf.run') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.stdout.strip() == "[]"


def test_queries_needed_reads_loadgens_early_stopping_message():
    short = {"checks": {"early_stopping": False},
             "early_stopping": "* Run unsuccessful. * Processed 536 queries. * Would need to run at least 771 more "
                               "queries, with the run being successful if every additional query were under latency."}
    assert sc.queries_needed(short) == 1307
    assert sc.queries_needed({"checks": {"early_stopping": True}, "early_stopping": "* Run successful."}) is None
    assert sc.queries_needed({"checks": {}, "early_stopping": None}) is None


@pytest.mark.slow
def test_server_confirm_valid_runs_enough_queries_for_a_p99(tiny, tmp_path):
    """'valid': a Server test sends at least the 459 queries (x 1.15) early stopping needs for a p99."""
    out = tmp_path / "r"
    assert main(["perf", "--model", tiny, *FAST, "--scenario", "server", "--mode", "model-only", "--batch", "2",
                 "--server-qps", "200", "--target-latency", "200", "--server-confirm", "valid", "--plots", "none",
                 "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    (r,) = rep["runs"]
    assert rep["settings"]["server_confirm"] == "valid" and sc.early_stopping_queries() == 459
    assert r["settings"]["min_query_count"] == 528 and r["loadgen"]["query_count"] >= 528
    assert r["loadgen"]["checks"]["early_stopping"] is True and r["loadgen"]["validity"] == "VALID"


def test_server_confirm_valid_reruns_with_the_queries_loadgen_asks_for(monkeypatch):
    """Queries over the bound raise what early stopping needs: the test is rerun with LoadGen's count x 1.15."""
    from quasar.perf.run import Measurer, Options

    def detail(valid: bool) -> dict:
        es = ("* Run successful." if valid else
              "* Run unsuccessful. * Processed 528 queries. * Would need to run at least 600 more queries, with ...")
        return {"values": {"result_validity": "VALID" if valid else "INVALID", "early_stopping_met": valid,
                           "result_perf_constraints_met": True, "early_stopping_result": es,
                           "result_query_count": 1300 if valid else 528}, "messages": [], "errors": [], "warnings": []}

    m = Measurer.__new__(Measurer)
    m.opts = Options(settings=sc.Settings(server_confirm="valid"))
    asked, log = [], []
    m.log = log.append
    monkeypatch.setattr(m, "_settings", lambda scen, cfg, server_qps, settings, **kw: (
        asked.append(settings) or None, {"min_query_count": settings.min_queries}))
    monkeypatch.setattr(m, "_test", lambda cfg, scen, base, ts: (detail(True), "sut"))
    rec = {"notes": []}
    used, d, sut = m._until_valid(None, 10.0, "base", rec, {}, detail(False), "first")
    assert [s.min_queries for s in asked] == [math.ceil(1.15 * 1128)] and used["min_query_count"] == 1298
    _, rerun = sc.test_settings(sc.require_loadgen(), "server", asked[0], 8, 0.03, 20.0, server_qps=10.0)
    assert rerun["max_duration_ms"] == pytest.approx(1000 * (1.5 * 129.8 + 10)) and d["values"]["result_validity"] == "VALID"
    assert "it needs about 1128" in rec["notes"][0] and log == rec["notes"]


def test_server_confirm_is_checked(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["perf", "--model", tiny, *FAST, "--server-confirm", "maybe", "-o", str(tmp_path / "r")])
    assert "--server-confirm" in capsys.readouterr().err


def test_server_search_halves_a_failing_start_twice(monkeypatch):
    """A start that breaks the bound is searched again from half of it, then a quarter; then 'none'."""
    from types import SimpleNamespace

    import numpy as np

    from quasar.perf.run import Measurer, Options

    m = Measurer.__new__(Measurer)
    m.opts, m.offline, m.log = Options(), {}, lambda _msg: None
    m.engine = SimpleNamespace(estimate=lambda cfg: SimpleNamespace(throughput=40.0, latency_s=0.03))
    m.opts.out = "."
    starts = []

    def settings(scen, cfg, server_qps, **kw):
        starts.append(server_qps)
        return None, {"search_decimals": 0, "target_qps": server_qps}

    def test(cfg, scen, base, ts):
        msgs = [f"FindPeakPerformance: Check validity of the base settings field: {starts[-1]:.6f}",
                "FindPeakPerformance: Initial lower bound does not satisfy the latency constraint"]
        sut = SimpleNamespace(samples=[], failed=0, first_error=None, latencies=lambda **kw: np.array([]))
        return {"values": {"result_validity": "INVALID"}, "messages": msgs, "errors": [], "warnings": []}, sut

    monkeypatch.setattr(m, "_settings", settings)
    monkeypatch.setattr(m, "_test", test)
    rec = {"notes": []}
    cfg = type("Cfg", (), {"label": "x"})()  # hashable, like a Config
    m._server(cfg, 0, "base", rec)
    assert starts == [10.0, 5.0, 2.5] and rec["search"]["failed_starts"] == [10.0, 5.0]
    assert rec["peak_qps"] is None and "searched again from 5" in rec["notes"][0]
    assert "not even 2.5 QPS" in rec["notes"][-1]


def test_server_tests_are_never_capped_before_their_queries():
    """At 1 QPS, 64 queries take 64 s: the cap (2 x 10 s + 10 s) is raised so no test ends early."""
    lg = sc.require_loadgen()
    s = sc.Settings(duration_s=10, min_queries=64)
    _, used = sc.test_settings(lg, "server", s, 8, 0.05, 20.0, server_qps=1.0)
    assert used["max_duration_ms"] == 1000 * (1.5 * 64 + 10)
    _, used = sc.test_settings(lg, "server", s, 8, 0.05, 20.0, server_qps=50.0)
    assert used["max_duration_ms"] == s.max_duration_ms == 30_000
    _, used = sc.test_settings(lg, "single-stream", s, 8, 0.05, 20.0)
    assert used["max_duration_ms"] == 30_000


@pytest.mark.parametrize(("argv", "reason"), [
    (["--workers", "0"], "must be at least 1, got 0"), (["--threads", "-1"], "must be at least 1, got -1"),
    (["--count", "0"], "must be at least 1"), (["--repeat", "0"], "must be at least 1"),
    (["--min-queries", "0"], "must be at least 1"), (["--multi-stream-samples", "0"], "must be at least 1"),
    (["--batch", "4,0"], "must be at least 1, got 0"), (["--duration", "0"], "must be above 0"),
    (["--target-latency", "-5"], "must be above 0"), (["--server-qps", "0"], "must be above 0")])
def test_perf_counts_are_checked_like_the_other_commands(argv, reason, capsys):
    """helpfmt.positive_int / positive_float, as `quasar score` and `quasar bench` use: a usage error (exit 2)."""
    from quasar.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["perf", *argv])
    assert e.value.code == 2 and reason in capsys.readouterr().err
