"""`quasar list`: encoders, packs, models (text and --json); it runs without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quasar.cli import main
from quasar.encoders.names import is_encoder, list_encoders
from quasar.testing import write_tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_model(models / "tiny-fp32.onnx", heads=("quality", "aesthetics"))
    (models / "broken.onnx").write_bytes(b"not a model")
    (models / "notes.txt").write_text("ignored")
    monkeypatch.setenv("QUASAR_CACHE", str(tmp_path))
    return models


def test_list_encoders_filters_like_timm():
    names = list_encoders()
    assert {"effnet-lite0", "effnet-lite0+taps", "dinov2-s14", "dinov2-s14+taps"} <= set(names)
    assert "open_clip:<arch>@<checkpoint>" in names and "timm:<name>@<checkpoint>+taps" in names
    assert names == sorted(names)
    assert list_encoders("effnet*") == ["effnet-lite0", "effnet-lite0+taps"]
    assert all(n.endswith("+taps") for n in list_encoders("*+taps"))
    assert list_encoders("nothing*") == []


@pytest.mark.parametrize("eid, ok", [
    ("effnet-lite0", True), ("dinov2-s14+taps", True), ("timm:resnet18", True), ("open_clip:RN50*@openai", True),
    ("timm:resnet18@/x.pth+taps", True), ("timm:resnet18*", False), ("nope", False), ("timm:", False),
    ("keras:resnet", False),
])
def test_is_encoder(eid, ok):
    assert is_encoder(eid) is ok


def test_list_text(cache, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "encoders" and "packs" in lines and "models" in lines
    assert "  effnet-lite0+taps" in lines
    pack = next(ln for ln in lines if ln.startswith("  default_quality "))
    assert "encoder=effnet-lite0+taps" in pack and "hash=sha256:" in pack
    tiny = next(ln for ln in lines if "tiny-fp32.onnx" in ln)
    assert "heads=quality,aesthetics" in tiny and "precision=" in tiny and "size=" in tiny
    broken = next(ln for ln in lines if "broken.onnx" in ln)
    assert "unreadable:" in broken
    assert "notes.txt" not in out
    assert "default_quality-fp32.onnx" in out  # the shipped model
    assert "  torch/cuda             not yet run" in lines and "  tensorrt/cuda          not yet run" in lines


def test_list_json(cache, capsys):
    assert main(["list", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"encoders", "packs", "models", "backends"}
    status = {b["name"]: b["status"] for b in d["backends"]}
    assert status["onnxruntime/cpu"] == status["torch/cpu"] == "tested"
    assert {status[k] for k in ("onnxruntime/cuda", "onnxruntime/tensorrt", "tensorrt/cuda", "torch/cuda")} == {
        "not yet run"}  # no GPU has run them: say so wherever backends are listed
    assert d["encoders"] == list_encoders()
    (pack,) = [p for p in d["packs"] if p["name"] == "default_quality"]
    assert pack["encoder"] == "effnet-lite0+taps" and "quality" in pack["heads"]
    assert pack["content_hash"].startswith("sha256:")
    by_name = {m["name"]: m for m in d["models"]}
    tiny = by_name["tiny-fp32.onnx"]
    assert tiny["heads"] == ["quality", "aesthetics"] and tiny["size"] > 0 and "error" not in tiny
    assert "precision" in tiny and "pack_hash" in tiny
    assert by_name["broken.onnx"]["error"] and "\n" not in by_name["broken.onnx"]["error"]


def test_list_does_not_import_torch(tmp_path):
    """A light install: torch cannot be imported at all, and `quasar list` still works."""
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any `import torch` raises ImportError
        from quasar.cli import main
        rc = main(["list", "--json"])
        assert rc == 0, rc
        assert sys.modules.get("torch") is None
        assert not [m for m in sys.modules if m.startswith(("torch.", "timm", "open_clip", "quasar.encoders.registry"))]
    """)
    env = dict(os.environ, QUASAR_CACHE=str(tmp_path), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"encoders"' in r.stdout
