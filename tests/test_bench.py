"""Speed benchmark pieces with logic: statistics, report writers, camera JPEGs, worker protocol,
eager baseline vs the fused ONNX model, the GPU script without a GPU, ``quasar bench`` arguments.

No timing is asserted anywhere: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from quasar_bench import camera, report, stats
from quasar_bench.limits import theoretical_peak

from quasar.machine import cpuinfo, machine_info

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ statistics


def test_percentiles_match_numpy_and_handle_empty():
    v = [5.0, 1.0, 3.0, 2.0, 4.0, 100.0]
    p = stats.percentiles(v)
    assert p == {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
                 "p99": float(np.percentile(v, 99))}
    assert p["p50"] == 3.5
    assert all(math.isnan(x) for x in stats.percentiles([]).values())


def test_spread_and_throughput():
    assert stats.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    t = stats.throughput(10, [2.0, 1.0, 4.0])  # 5, 10, 2.5 images/s
    assert t == {"min": 2.5, "median": 5.0, "max": 10.0, "n": 3}


def test_agreement_uses_shared_keys():
    a = report.agreement({"x": 0.1, "y": 0.5, "z": 0.9}, {"x": 0.2, "y": 0.4, "z": 0.95, "extra": 1.0})
    assert a["n"] == 3 and a["srcc"] == pytest.approx(1.0)
    assert a["max_abs_diff"] == pytest.approx(0.1) and a["mean_abs_diff"] == pytest.approx((0.1 + 0.1 + 0.05) / 3)
    reversed_ = report.agreement({"x": 0.1, "y": 0.5, "z": 0.9}, {"x": 0.9, "y": 0.5, "z": 0.1})
    assert reversed_["srcc"] == pytest.approx(-1.0)  # signed, as quasar.eval.metrics.srcc
    assert math.isnan(report.agreement({"x": 0.1, "y": float("nan"), "z": 0.9}, {"x": 0.2, "y": 0.4, "z": 1.0})["srcc"])


# ------------------------------------------------------------------ report


def _raw(n: int, secs: list[float], scores: dict | None = None, lat: list[float] | None = None, rss: float = 100.0):
    out = {"n_images": n, "rep_seconds": secs, "peak_rss_mib": rss, "info": {}}
    if scores is not None:
        out["scores"] = scores
    if lat is not None:
        out["latencies_ms"] = lat
    return out


@pytest.fixture()
def fake_run():
    """Raw worker results of one set plus model-only rows, with round numbers."""
    ref_scores = {f"f{i}": [0.1 * i] for i in range(10)}
    close = {k: [v[0] + 0.001] for k, v in ref_scores.items()}
    swapped = dict(close, f0=[0.95])  # one image out of order
    raw = {
        "camera/eager_single": _raw(10, [10.0, 10.0, 12.0], ref_scores, lat=[1000.0] * 10, rss=1000.0),
        "camera/eager_batched": _raw(10, [5.0, 5.0, 5.0], ref_scores, rss=1200.0),
        "camera/quasar_fp32": _raw(10, [1.0, 1.0, 1.0], close, rss=250.0),
        "camera/quasar_int8": _raw(10, [2.0, 2.0, 2.0], swapped, rss=200.0),
        "model/ort_fp32_b8": _raw(10, [0.8, 0.8, 0.8]),
        "model/ort_int8_b8": _raw(10, [0.5, 0.5, 0.5]),
    }
    rows = {}
    for name, r in raw.items():
        row = report.summarize_row(r)
        set_name, key = name.split("/")
        row.update(label=key, set=set_name, kind=key, precision=None)
        rows[name] = row
    report.add_ratios(rows, raw)
    return raw, rows


def test_ratios_and_agreement(fake_run):
    raw, rows = fake_run
    q = rows["camera/quasar_fp32"]
    assert q["images_per_s"]["median"] == pytest.approx(10.0)
    assert q["vs_eager_single"]["images_per_s"] == pytest.approx(10.0)
    assert q["vs_eager_single"]["peak_rss"] == pytest.approx(0.25)
    assert q["agreement_vs_eager_single"]["srcc"] == pytest.approx(1.0)
    assert rows["camera/quasar_int8"]["agreement_vs_eager_single"]["srcc"] < 0.99
    assert rows["camera/eager_single"]["latency_ms"]["p50"] == 1000.0
    assert "vs_eager_single" not in rows["camera/eager_single"]
    # model-only rows are compared with the camera set's reference
    assert rows["model/ort_fp32_b8"]["vs_eager_single"]["images_per_s"] == pytest.approx(12.5)


def test_targets_met_not_met_and_missing(fake_run):
    raw, rows = fake_run
    pooled = {c: report.pooled_agreement(raw, ["camera"], c) for c in ("quasar_fp32", "quasar_int8")}
    targets = {t["name"]: t for t in report.evaluate_targets(rows, pooled, ["camera"])}
    assert targets["camera/fp32/e2e_vs_single"]["met"] is True  # 10x >= 5x
    assert targets["camera/fp32/e2e_vs_batched"]["value"] == pytest.approx(5.0)
    assert targets["camera/int8/e2e_vs_single"]["met"] is True and targets["camera/int8/e2e_vs_single"]["value"] == 5.0
    assert targets["camera/fp32/e2e_vs_model"]["value"] == pytest.approx(0.8)  # 10 / 12.5
    assert targets["camera/fp32/e2e_vs_model"]["met"] is True
    assert targets["camera/int8/e2e_vs_model"]["met"] is False  # 5 / 20
    assert targets["int8_vs_fp32_model"]["value"] == pytest.approx(1.6) and targets["int8_vs_fp32_model"]["met"] is False
    assert targets["srcc_fp32"]["met"] is True and targets["srcc_int8"]["met"] is False
    del rows["camera/quasar_int8"]
    t2 = {t["name"]: t for t in report.evaluate_targets(rows, {}, ["camera"])}
    assert t2["camera/int8/e2e_vs_single"]["met"] is None and t2["camera/int8/e2e_vs_single"]["reason"]
    assert t2["srcc_fp32"]["met"] is None


def _report_dict(fake_run) -> dict:
    raw, rows = fake_run
    pooled = {c: report.pooled_agreement(raw, ["camera"], c) for c in ("quasar_fp32", "quasar_int8")}
    return {
        "quick": False, "reps": 3, "created": "2026-01-01T00:00:00Z", "machine": machine_info(),
        "sets": {"camera": {"n": 10, "sizes": {"4000x3000": 10}, "mean_file_mb": 3.0}},
        "notes": ["a note"], "order": list(rows) + ["camera/eager_dataloader"], "rows": rows,
        "targets": report.evaluate_targets(rows, pooled, ["camera"]),
        "parity": {"fp32/runtime": {"camera": {"srcc": 0.99, "max_abs_diff": 0.01}, "pooled": {"srcc": 0.99}}},
        "limits": None, "errors": {"camera/eager_dataloader": "worker exited with 1: boom"},
        "nan": float("nan"),
    }


def test_markdown_and_json_writers(fake_run, tmp_path):
    rep = _report_dict(fake_run)
    jp, mp = report.write(rep, tmp_path / "out")
    data = json.loads(Path(jp).read_text())  # strict JSON: NaN became null
    assert data["nan"] is None and data["rows"]["camera/quasar_fp32"]["images_per_s"]["median"] == 10.0
    md = Path(mp).read_text()
    assert "| configuration | images/s median (min–max)" in md
    assert "**10.00** (10.00–10.00)" in md and "10.00×" in md
    assert "failed: worker exited with 1: boom" in md
    assert "**met**" in md and "**not met**" in md
    assert "## Where scores differ from (a)" in md
    assert "Physical limits were not measured" in md


# ------------------------------------------------------------------ machine and limits


def test_cpuinfo_parses_proc_format(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 2450.5\nflags\t\t: fpu avx2 fma\n\n"
                 "processor\t: 1\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 1000\nflags\t\t: fpu\n")
    info = cpuinfo(str(f))
    assert info["model"] == "Test CPU 9000" and info["mhz"] == 2450.5 and info["flags"] == ["fpu", "avx2", "fma"]
    m = machine_info()
    assert m["cores"] >= 1 and "onnxruntime" in m["versions"] and "opencv" in m["versions"]


def test_theoretical_peak():
    t = theoretical_peak(["avx2", "fma"], 2500.0, 2)
    assert t["fp32_gflops"] == 160.0 and not t["vnni"] and t["int8_gops"] == 320.0
    t = theoretical_peak(["avx512f", "avx512_vnni"], 2000.0, 4)
    assert t["fp32_gflops"] == 512.0 and t["vnni"] and t["int8_gops"] == 2048.0
    assert theoretical_peak([], None, 2)["fp32_gflops"] is None


# ------------------------------------------------------------------ camera JPEGs


def test_plan_sizes_and_orientation():
    p = camera.plan("camera", ["a.png", "b.png"], 6)
    assert [(x.width, x.height) for x in p] == [(4000, 3000), (2600, 1950), (3000, 4000), (2600, 1950),
                                               (4000, 3000), (1950, 2600)]
    assert [x.source for x in p] == ["a.png", "b.png"] * 3
    assert {(x.width, x.height) for x in camera.plan("1mp", ["a"], 3)} == {(1152, 864), (864, 1152)}
    with pytest.raises(ValueError):
        camera.plan("8k", ["a"], 1)


def test_crop_to_aspect():
    img = np.zeros((600, 1000, 3), np.uint8)
    assert camera.crop_to_aspect(img, 4, 3).shape[:2] == (600, 800)
    assert camera.crop_to_aspect(img, 3, 4).shape[:2] == (600, 450)
    assert camera.crop_to_aspect(np.zeros((1000, 600, 3), np.uint8), 4, 3).shape[:2] == (450, 600)


def test_generate_camera_set_sizes_and_reuse(tmp_path):
    src = tmp_path / "src.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(src), rng.integers(0, 256, (300, 500, 3), dtype=np.uint8))
    paths = camera.generate("camera", tmp_path / "cache", 3, sources=[str(src)])
    from quasar.io.formats import probe

    sizes = [(h.width, h.height) for h in (probe(Path(p).read_bytes()) for p in paths)]
    assert sizes == [(4000, 3000), (2600, 1950), (3000, 4000)]
    assert cv2.imread(paths[1]).shape == (1950, 2600, 3)
    d = camera.describe(paths)
    assert d["sizes"] == {"4000x3000": 1, "2600x1950": 1, "3000x4000": 1} and d["mean_file_mb"] > 0.1
    mtimes = [os.path.getmtime(p) for p in paths]
    assert camera.generate("camera", tmp_path / "cache", 3, sources=[str(src)]) == paths
    assert [os.path.getmtime(p) for p in paths] == mtimes  # reused, not rewritten
    one = camera.generate("1mp", tmp_path / "cache", 2, sources=[str(src)])
    assert camera.describe(one)["sizes"] == {"1152x864": 2}


def test_synthetic_sources_when_no_photos(tmp_path):
    paths = camera.generate("1mp", tmp_path, 2, sources=[])
    assert camera.describe(paths)["sizes"] == {"1152x864": 2}


# ------------------------------------------------------------------ worker protocol


@pytest.mark.slow
def test_worker_subprocess_on_tiny_model(tmp_path):
    pytest.importorskip("onnx")
    from quasar_bench.speed import run_worker

    from quasar.testing import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.onnx")
    files = camera.generate("1mp", tmp_path, 3, sources=[])
    out = run_worker({"kind": "quasar", "files": files, "reps": 2, "model": model, "batch_size": 2}, str(tmp_path),
                     "t/quasar")
    assert out["kind"] == "quasar" and out["n_images"] == 3 and len(out["rep_seconds"]) == 2
    assert set(out["scores"]) == set(files) and all(len(v) == 2 for v in out["scores"].values())
    assert 0 < out["peak_rss_mib"] < 4096
    lat = run_worker({"kind": "quasar_latency", "files": files, "reps": 1, "model": model}, str(tmp_path), "t/lat")
    assert len(lat["latencies_ms"]) == 3 and lat["info"]["batch_size"] == 1
    with pytest.raises(RuntimeError, match="unknown job kind"):
        run_worker({"kind": "nope", "files": []}, str(tmp_path), "t/bad")


# ------------------------------------------------------------------ eager baseline vs the fused model


@pytest.fixture(scope="module")
def eager():
    pytest.importorskip("torchvision")
    from quasar_bench.eager import EagerPipeline, build_eager_model

    return EagerPipeline(*build_eager_model())


def test_eager_head_matches_fused_head():
    """The torch head (eager baseline and graph) == the pack's numpy reference, for every head kind."""
    torch = pytest.importorskip("torch")
    from quasar.centroids.pack import CentroidPack, Head
    from quasar.export.fused import ScoringHead
    from quasar.preprocess import PreprocessSpec

    rng = np.random.default_rng(0)
    c = rng.normal(size=(4, 16)).astype(np.float32)
    heads = [Head("a", c[0], c[1], 20.0), Head("b", c[2], c[3], 40.0, bias=0.05, kind="centroid"),
             Head("c", None, None, 7.0, kind="linear", bias=-0.1, weight=rng.normal(size=16).astype(np.float32))]
    heads += [Head(f"q_{r}", None, None, 0.7, kind="combine", bias=0.2, combine={"rule": r, "of": ["a", "c", "b"]})
              for r in ("min", "mean", "softmin")]
    pack = CentroidPack("x", PreprocessSpec(), heads)
    pack.validate()
    emb = rng.normal(size=(5, 16)).astype(np.float32)
    want_s, want_m = pack.score_embeddings(emb)
    e = torch.nn.functional.normalize(torch.from_numpy(emb), dim=-1)
    got_s, got_m = ScoringHead.from_pack(pack)(e)
    np.testing.assert_allclose(got_m.numpy(), want_m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_s.numpy(), want_s, rtol=1e-5, atol=1e-6)
    # the paper's head: sigmoid(s * (cos_good - cos_bad))
    cn = c / np.linalg.norm(c, axis=1, keepdims=True)
    cos = e.numpy() @ cn.T
    np.testing.assert_allclose(got_s.numpy()[:, 0], 1 / (1 + np.exp(-20 * (cos[:, 0] - cos[:, 1]))), rtol=1e-5)


@pytest.mark.slow
def test_eager_matches_fused_onnx(eager, photos, tmp_path_factory):
    """Same pixels -> same scores: the eager baseline computes the exported model's function."""
    torch = pytest.importorskip("torch")
    from quasar_bench.eager import load_tensor
    from quasar_bench.models import model_path

    from quasar.paths import cache_dir
    from quasar.runtime import Scorer
    from quasar.testing import reference_preprocess

    # The benchmark's cache: keyed by pack hash and version, so reusing it is safe and saves an export.
    # torch is here, so an fp32 export has no excuse: ModelUnavailable fails the test (it used to skip it).
    path = model_path("fp32", cache_dir() / "bench")
    files = camera.generate("1mp", tmp_path_factory.mktemp("imgs"), 3, sources=[p.path for p in photos[:3]])
    with Scorer(path, workers=1) as scorer:
        # 1. model only: the runtime's uint8 input through both
        x = np.stack([scorer.preprocess(f) for f in files[:2]])  # both landscape, same shape
        with torch.inference_mode():
            mine = eager.model.forward_uint8(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(mine, scorer.backend.run(x)[0], atol=2e-4)
        # 2. whole eager pipeline vs the ONNX model on the eager pipeline's own (PIL) pixels
        one = np.array([eager.score_one(f) for f in files])
        ref = np.array([scorer.backend.run(reference_preprocess(f, scorer.spec)[None])[0][0] for f in files])
        np.testing.assert_allclose(one, ref, atol=2e-3)
        # 3. the runtime's own preprocessing differs only by resampling: close, not equal
        rt = np.array([r.scores["quality"] for r in scorer.score(files)])
        assert np.abs(rt - one[:, 0]).max() < 0.25
    # batching (same-shape buckets) never changes a score
    np.testing.assert_allclose(np.array(eager.score_batched(files, 2)), one, atol=1e-5)
    tensor = load_tensor(files[2], scorer.spec)
    assert tuple(tensor.shape) == (3, 512, 384)  # portrait, long side 512, multiples of 32


def test_flops_counted_with_multiply_add_as_two(eager):
    from quasar_bench.limits import model_flops

    f = model_flops(eager.model, 224, 224)
    # EfficientNet-Lite0: about 0.39 G multiply-adds at 224 px -> about 0.78 GFLOP
    assert 0.6e9 < f < 1.0e9
    assert model_flops(eager.model, 384, 512) == pytest.approx(f * 384 * 512 / 224**2, rel=0.05)


def test_decode_rates_quick(tmp_path):
    from quasar_bench.limits import decode_rates

    from quasar.preprocess import PreprocessSpec

    files = camera.generate("1mp", tmp_path, 2, sources=[])
    spec = PreprocessSpec(policy="native", size=512, size_multiple=32, min_size=64)
    d = decode_rates(files, spec, quick=True)
    assert d["files"] == 2 and d["source_mp"] == pytest.approx(2.0, abs=0.01)
    for name in ("cv2_full", "cv2_reduced_2", "runtime_decode", "runtime_decode_resize"):
        assert d["rates"][name]["1_thread"]["images_per_s"] > 0 and d["rates"][name]["all_cores"]["mp_per_s"] > 0


# ------------------------------------------------------------------ entry points


def test_gpu_script_without_cuda_fails_cleanly(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_speed.py"), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "no CUDA device" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    h = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_speed.py"), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert h.returncode == 0 and "--out" in h.stdout


def test_bench_cli_arguments():
    from quasar_bench.speed import default_out_dir

    from quasar.app.bench import register

    p = argparse.ArgumentParser(prog="quasar")
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(["bench", "--quick", "--out", "somewhere", "--count", "3", "--only", "quasar"])
    assert args.bench_args == ["--quick", "--out", "somewhere", "--count", "3", "--only", "quasar"]
    assert callable(args.func)
    assert default_out_dir() in ("benchmarks/results", "quasar-bench-results")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "speed.py"), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--quick" in r.stdout


def test_bench_exits_1_when_every_configuration_failed(monkeypatch, capsys):
    from quasar_bench import speed

    from quasar.cli import main

    def fake_run(**kwargs):  # every worker failed: no rows, only errors
        return {"rows": {}, "errors": {"quasar_fp32": "worker exited with 1", "eager_single": "timed out"},
                "targets": [{"what": "speed-up", "met": None, "value": None, "threshold": 2.0}]}

    monkeypatch.setattr(speed, "run", fake_run)
    assert main(["bench", "--quick", "--out", "unused"]) == 1
    assert "every configuration failed (2 errors" in capsys.readouterr().err
    monkeypatch.setattr(speed, "run", lambda **kw: {**fake_run(), "rows": {"quasar_fp32": {}}})
    assert main(["bench", "--quick", "--out", "unused"]) == 0


def test_pack_snapshot_is_frozen(tmp_path):
    from quasar_bench.models import snapshot_pack

    from quasar.centroids.pack import CentroidPack

    pack, path = snapshot_pack(tmp_path)
    assert CentroidPack.load(path).content_hash == pack.content_hash == CentroidPack.load("default").content_hash
    assert snapshot_pack(tmp_path)[1] == path


def test_gpu_end_to_end_harness_on_cpu_backend(tmp_path):
    """The GPU script's files -> scores harness, driven here by the runtime's CPU backend."""
    pytest.importorskip("onnx")
    from quasar_bench.gpu import end_to_end, pipeline_scorer

    from quasar.runtime.backends import create_backend
    from quasar.runtime.model import load_model_info
    from quasar.testing import write_tiny_model

    info = load_model_info(write_tiny_model(tmp_path / "tiny.onnx"))
    files = camera.generate("1mp", tmp_path, 3, sources=[])
    score = pipeline_scorer(info.spec, create_backend(info, "onnxruntime", "cpu"), batch=2, workers=2)
    out = end_to_end(score, files * 2, files[:1], reps=2)
    assert out["images"] == 6 and out["images_per_s"]["min"] > 0


def test_shared_core_bound():
    assert report.shared_core_bound(20.0, 20.0) == pytest.approx(10.0)
    assert report.shared_core_bound(27.0, 46.0) == pytest.approx(17.01, abs=0.01)


def test_bench_without_the_benchmarks_folder_is_one_line(monkeypatch, tmp_path, capsys):
    """An installed wheel has no benchmarks/: `quasar bench` says so in one line; the parser never needs it."""
    from quasar.app import bench as bench_cli
    from quasar.cli import main

    monkeypatch.setattr(bench_cli, "BENCHMARKS_DIR", tmp_path)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "needs the benchmarks/ folder of a source checkout" in err and err.count("\n") == 1


def test_gpu_bench_torch_backend_is_a_backend_the_pipeline_accepts():
    """CudaTorchBackend implements the Backend interface (accepts() included); built on CPU without its stream."""
    pytest.importorskip("torch")
    from quasar_bench.gpu import CudaTorchBackend

    from quasar.runtime.backends.base import Backend
    from quasar.runtime.pipeline import Pipeline

    class OnCpu(CudaTorchBackend):
        device = "cpu"

        def _copy_stream(self):
            return None  # no CUDA here: the pipeline only needs the interface

    backend = OnCpu(run=lambda x: (x, x))
    assert isinstance(backend, Backend)
    assert backend.accepts((64, 48, 3)) is None and "HxWx3" in backend.accepts((64, 48))
    pipe = Pipeline(lambda item: None, backend, batch_size=2, workers=1)
    assert pipe.backend is backend and pipe.depth == 1
    backend.close()


def test_pipeline_refuses_what_is_not_a_backend_in_one_line():
    from quasar.runtime.backends.base import Backend
    from quasar.runtime.pipeline import Pipeline

    class Duck:
        device = "cpu"

        def submit(self, batch):
            return None

    with pytest.raises(TypeError, match=r"^Duck is not a quasar\.runtime\.backends\.base\.Backend$"):
        Pipeline(lambda item: None, Duck())

    class NoAccepts(Backend):
        def submit(self, batch):
            return None

    with pytest.raises(TypeError, match="abstract"):
        NoAccepts(None)


def test_bench_and_perf_share_one_definition_of_the_workload_options():
    """``--count`` and ``--repeat`` mean the same in ``quasar bench`` and ``quasar perf`` (one definition,
    ``helpfmt.add_workload_options``): a positive integer each, refused at 0 by both; bench no longer
    takes ``--images N`` (perf's ``--images`` is a folder)."""
    from quasar_bench import speed

    from quasar.app.perf import register as register_perf
    from quasar.helpfmt import positive_int

    bench = argparse.ArgumentParser(prog="bench")
    speed.add_arguments(bench)
    root = argparse.ArgumentParser(prog="quasar")
    register_perf(root.add_subparsers(dest="command"))
    perf = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices["perf"]
    for parser in (bench, perf):
        acts = {a.dest: a for a in parser._actions}
        for dest in ("count", "repeat"):
            assert acts[dest].type is positive_int and acts[dest].option_strings == [f"--{dest}"]
        with pytest.raises(SystemExit):
            parser.parse_args(["--count", "0"])
    args = bench.parse_args(["--count", "3", "--repeat", "2"])
    assert (args.count, args.repeat) == (3, 2)
    with pytest.raises(SystemExit):
        bench.parse_args(["--images", "3"])
