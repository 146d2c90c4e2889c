"""``python -m benchmarks.gpu_check --device cpu --tiny``: the GPU check's script itself, run on the CPU (CI).

The CUDA numbers are not yet measured (no GPU here); this proves the command runs end to end, writes its
JSON and Markdown, and stops with one line when parity fails or the device is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]


def _gpu_check():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quasar_bench.gpu_check as gc

    return gc


def test_gpu_check_runs_on_the_cpu_and_writes_its_results(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--tiny",
                        "--out", str(tmp_path / "gc"), "--cache", str(tmp_path / "sets")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "gc.json").read_text())
    assert data["device"]["device"] == "cpu" and data["tiny"] and not data["skipped"]
    p = data["parity"]
    assert p["fp32"]["meets_target"] and p["fp32"]["max_abs_score"] <= 1e-3
    assert isinstance(p["bf16"], dict) and set(p["bf16"]["per_head"]) == set(p["fp32"]["per_head"])
    dd = p["device_decode_vs_cpu_decode"]
    assert dd["decode_stats"]["device_decoded"] == dd["images"] and dd["worst_srcc"] > 0.9
    for precision in ("fp32", "bf16"):
        rows = data["model_only"][precision]
        assert set(rows) == {"1", "2"} and all(v["images_per_s"] > 0 for v in rows.values())
    e = data["end_to_end"]
    for set_name in ("1mp", "camera"):
        assert set(e[set_name]) == {"torch_fp32_device_decode", "torch_fp32_cpu_decode", "onnxruntime_cpu"}
        assert all(v["failed"] == 0 and v["images_per_s"] > 0 for v in e[set_name].values())
    assert e["camera"]["torch_fp32_device_decode"]["decode_stats"]["device_decoded"] == e["camera"]["onnxruntime_cpu"]["images"]
    assert all(isinstance(v, str) for v in e["png_staging"].values())  # page-locked memory needs CUDA
    assert {"onnxruntime_cuda", "onnxruntime_tensorrt", "tensorrt_engine"} <= set(e["providers"])
    md = (tmp_path / "gc.md").read_text()
    assert "## Parity" in md and "## Model only" in md and "## End to end" in md


def test_parity_failure_stops_with_one_line(tmp_path, monkeypatch, capsys):
    gc = _gpu_check()
    monkeypatch.setattr(gc, "FP32_MAX_ABS", 0.0)  # any difference at all fails
    rc = gc.main(["--device", "cpu", "--tiny", "--out", str(tmp_path / "gc"), "--cache", str(tmp_path / "sets")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("gpu_check: parity failed"), err
    data = json.loads((tmp_path / "gc.json").read_text())
    assert data["stopped"] == err[0] and "model_only" not in data and "fp32" in data["parity"]


def test_a_missing_cuda_device_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    rc = _gpu_check().main(["--device", "cuda", "--out", str(tmp_path / "gc")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no CUDA device" in err[0]
    assert not (tmp_path / "gc.json").exists()


def test_numpy_srcc_matches_the_projects_srcc():
    """gpu_check's scipy-free SRCC (for GPU images without scipy) agrees with quasar.eval.metrics.srcc, ties too."""
    from quasar.eval.metrics import srcc

    gc = _gpu_check()
    rng = __import__("numpy").random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 6, 40).astype(float), rng.normal(size=40)
        b[:10] = a[:10]
        assert abs(gc.rank_srcc(a, b) - srcc(a, b)) < 1e-12
    assert gc.rank_srcc([1, 1, 1], [1, 2, 3]) != gc.rank_srcc([1, 1, 1], [1, 2, 3])  # NaN for a constant input
