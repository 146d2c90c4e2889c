"""Model files: metadata reading, validation and refusal of anything that is not a valid QUASAR model."""

from __future__ import annotations

import importlib.util
import json

import pytest

from quasar.contract import parse_metadata
from quasar.errors import QuasarError
from quasar.onnx_meta import NotOnnx, read_metadata_props
from quasar.runtime import Scorer, load_model_info
from quasar.runtime import model as model_mod
from quasar.runtime.backends import resolve_backend

pytest.importorskip("onnx")
from quasar.testing import TINY_CROP_SPEC, write_tiny_model


def test_valid_model_metadata(tiny):
    info = load_model_info(tiny)
    assert info.heads == ("quality", "aesthetics")
    assert info.kind == "onnx" and info.dynamic_size and info.spec.policy == "native"
    assert info.logit_scales is not None and len(info.logit_scales) == 2


def test_protobuf_reader_matches_onnx(tiny):
    import onnx

    m = onnx.load(tiny)
    assert read_metadata_props(tiny) == {p.key: p.value for p in m.metadata_props}


def test_not_onnx(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("just some text, definitely not protobuf\n")
    with pytest.raises(QuasarError, match="notes.onnx: not an ONNX model"):
        load_model_info(p)
    with pytest.raises(NotOnnx):
        read_metadata_props(p)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(QuasarError, match="empty.onnx"):
        load_model_info(tmp_path / "empty.onnx")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(QuasarError, match="model file not found"):
        load_model_info(tmp_path / "nope.onnx")
    with pytest.raises(QuasarError, match="is a directory"):
        load_model_info(tmp_path)


@pytest.mark.parametrize("override,message", [
    ({"quasar.format": None}, "not a QUASAR fused model"),
    ({"quasar.format": "something-else"}, "expected 'quasar-fused-model'"),
    ({"quasar.format_version": "4"}, "format version 4 is newer"),
    ({"quasar.format_version": "one"}, "not an integer"),
    ({"quasar.heads": "[quality"}, "quasar.heads is not valid JSON"),
    ({"quasar.heads": "[]"}, "non-empty list"),
    ({"quasar.heads": '["a", "a"]'}, "distinct"),
    ({"quasar.preprocess": '{"policy": "squash"}'}, "bad quasar.preprocess"),
    ({"quasar.preprocess": "{not json"}, "bad quasar.preprocess"),
    ({"quasar.input_layout": None}, "missing quasar.input_layout"),
    ({"quasar.input_layout": "NCHW_float32"}, "input_layout"),
    ({"quasar.dynamic_size": "maybe"}, "dynamic_size"),
    ({"quasar.dynamic_size": "false"}, "fixed input size but its spec policy"),
    ({"quasar.logit_scales": "[1.0]"}, "logit_scales must list 2"),
])
def test_bad_metadata_is_refused_naming_the_file(tmp_path, override, message):
    p = write_tiny_model(tmp_path / "bad.onnx", metadata=override)
    with pytest.raises(QuasarError, match=message) as e:
        Scorer(p)
    assert str(p) in str(e.value)


def test_heads_count_must_match_output_width(tmp_path):
    from quasar.runtime.backends.ort import OrtBackend

    p = write_tiny_model(tmp_path / "k3.onnx", out_heads=3)  # graph outputs 3 columns, metadata names 2 heads
    with pytest.raises(QuasarError, match=r"k3.onnx: metadata quasar.logit_scales .* disagree with the graph"):
        Scorer(p)  # the graph's 3 logit scales already give it away at load
    unchecked = parse_metadata(model_mod.read_model_metadata(p), p)  # the backend's own I/O check
    with pytest.raises(QuasarError, match=r"k3.onnx: output 'scores' has 3 columns .* 2 heads"):
        OrtBackend(unchecked)


def test_fixed_size_graph_checks(tmp_path):
    import numpy as np

    from quasar.preprocess import PreprocessSpec

    p = write_tiny_model(tmp_path / "crop.onnx", spec=TINY_CROP_SPEC)
    assert not load_model_info(p).dynamic_size
    with Scorer(p) as s:
        assert s.score(np.zeros((100, 80, 3), np.uint8))[0].ok
    lying = write_tiny_model(tmp_path / "lying.onnx", spec=TINY_CROP_SPEC, metadata={"quasar.dynamic_size": "true"})
    with pytest.raises(QuasarError, match="lying.onnx: metadata says dynamic_size=true but the graph input is fixed"):
        Scorer(lying)
    other = PreprocessSpec(policy="center_crop", size=96).to_json()
    wrong = write_tiny_model(tmp_path / "wrong.onnx", spec=TINY_CROP_SPEC, metadata={"quasar.preprocess": other})
    with pytest.raises(QuasarError, match="wrong.onnx: graph input is 64x64 but the spec crops 96x96"):
        Scorer(wrong)


def test_engine_needs_sidecar_and_tensorrt(tmp_path, tiny):
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"not really an engine")
    with pytest.raises(QuasarError, match="without its metadata sidecar"):
        load_model_info(eng)
    meta = model_mod.read_model_metadata(tiny)
    (tmp_path / "m.engine.json").write_text(json.dumps(  # the layout quasar.export.tensorrt writes
        {"format": "quasar-tensorrt-engine", "format_version": 1, "onnx_metadata": meta, "tensorrt_version": "10.0"}))
    info = load_model_info(eng)
    assert info.kind == "engine" and info.heads == ("quality", "aesthetics")
    assert resolve_backend(info, "auto") == ("tensorrt", "cuda")
    with pytest.raises(QuasarError, match="only on the tensorrt backend"):
        resolve_backend(info, "onnxruntime")
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(QuasarError, match="needs the tensorrt Python package"):
            Scorer(eng)
    (tmp_path / "m.engine.json").write_text(json.dumps({"format": "quasar-tensorrt-engine", "format_version": 9}))
    with pytest.raises(QuasarError, match="sidecar format version 9 is newer"):
        load_model_info(eng)
    (tmp_path / "m.engine.json").write_text(json.dumps({"format": "quasar-tensorrt-engine", "format_version": 1}))
    with pytest.raises(QuasarError, match="holds no QUASAR metadata"):
        load_model_info(eng)


def test_backend_resolution(tiny):
    info = load_model_info(tiny)
    assert resolve_backend(info, "auto")[0] == "onnxruntime"
    with pytest.raises(QuasarError, match="needs an engine file"):
        resolve_backend(info, "tensorrt")
    with pytest.raises(QuasarError, match="unknown backend"):
        resolve_backend(info, "tflite")


def test_env_var_overrides_default_model(tiny, monkeypatch):
    monkeypatch.setenv("QUASAR_MODEL", tiny)
    assert model_mod.default_model_path() == tiny
    with Scorer() as s:
        assert s.model_path == tiny
