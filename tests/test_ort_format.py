"""ONNX Runtime format (``.ort``, for ORT Mobile): ``quasar export ort`` keeps the contract's metadata, the
runtime reads it through onnxruntime and scores ``.ort`` files like the ``.onnx`` they came from."""

from __future__ import annotations

import os

import numpy as np
import pytest

from quasar.errors import QuasarError
from quasar.export.ort_format import export_ort
from quasar.runtime import Scorer
from quasar.runtime.backends import resolve_backend
from quasar.runtime.model import load_model_info, model_kind
from quasar.testing import write_tiny_model


@pytest.fixture()
def tiny(tmp_path):
    return write_tiny_model(tmp_path / "tiny.onnx")


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (60 + 17 * i, 90 - 9 * i, 3), dtype=np.uint8) for i in range(n)]


def test_export_ort_keeps_metadata_and_scores(tiny, tmp_path):
    out = export_ort(tiny)
    assert out == str(tmp_path / "tiny.ort") and model_kind(out) == "ort"
    assert os.path.exists(out + ".sha256")
    a, b = load_model_info(tiny), load_model_info(out)
    assert a.metadata == b.metadata and b.kind == "ort" and b.heads == a.heads
    imgs = _images()
    with Scorer(tiny, backend="onnxruntime", device="cpu", workers=1) as s1, \
            Scorer(out, backend="auto", device="cpu", workers=1) as s2:
        r1, r2 = s1.score(imgs), s2.score(imgs)
    assert all(x.error is None for x in r1 + r2)
    for x, y in zip(r1, r2, strict=True):
        assert x.scores.keys() == y.scores.keys()
        assert max(abs(x.scores[k] - y.scores[k]) for k in x.scores) < 1e-6


def test_ort_file_refusals(tiny, tmp_path):
    out = export_ort(tiny, tmp_path / "m.ort")
    info = load_model_info(out)
    with pytest.raises(QuasarError, match="onnxruntime backend"):
        resolve_backend(info, "torch")
    with open(out, "r+b") as f:  # corrupt one byte: the recorded sha256 catches it
        f.seek(os.path.getsize(out) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(QuasarError, match="sha256"):
        load_model_info(out)
    junk = tmp_path / "junk.ort"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(QuasarError, match="not an ORT-format model"):
        load_model_info(str(junk))
    with pytest.raises(QuasarError, match=r"\*\.ort"):
        export_ort(tiny, tmp_path / "m.onnx2")


def test_export_ort_refuses_non_quasar_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    with pytest.raises(QuasarError, match="not a QUASAR fused model"):
        export_ort(p)
    assert not (tmp_path / "plain.ort").exists()


def test_cli_export_ort(tiny, tmp_path, capsys):
    from quasar.cli import main

    assert main(["export", "ort", tiny, "-o", str(tmp_path / "c.ort")]) == 0
    assert "c.ort" in capsys.readouterr().out
    assert load_model_info(str(tmp_path / "c.ort")).kind == "ort"
