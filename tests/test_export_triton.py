"""``quasar export triton``: the repository's config parses with Triton's own ModelConfig protobuf
(from tritonclient) and agrees with the model it holds. No Triton server runs here (docs/scaling.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_images import encode, pattern

from quasar.cli import main
from quasar.contract import INPUT_NAME, OUTPUT_NAMES
from quasar.errors import QuasarError
from quasar.export.triton import write_repository
from quasar.runtime import Scorer
from quasar.runtime.model import default_model_path
from quasar.sidecars import engine_sidecar

onnx = pytest.importorskip("onnx")
text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
from quasar.testing import TINY_CROP_SPEC, write_tiny_model  # noqa: E402


def parse_config(folder) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def graph_io(path) -> tuple[list, dict[str, list]]:
    """Per-image input dims (-1 where dynamic) and output dims of an ONNX graph, batch dim dropped."""
    g = onnx.load(str(path), load_external_data=False).graph

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim][1:]

    (inp,) = g.input
    assert inp.name == INPUT_NAME and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    return dims(inp), {o.name: dims(o) for o in g.output}


def test_default_model_repository_matches_its_graph_and_scores_like_the_runtime(tmp_path):
    model = default_model_path()
    folder = write_repository(model, tmp_path / "repo", max_batch_size=16, queue_delay_us=500)
    cfg = parse_config(folder)
    mc = model_config_pb2
    assert cfg.name == "quasar" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 16
    copied = folder / "1" / "model.onnx"
    assert copied.read_bytes() == open(model, "rb").read()
    in_dims, out_dims = graph_io(copied)
    (inp,) = cfg.input
    assert inp.name == INPUT_NAME and inp.data_type == mc.TYPE_UINT8 and inp.format == mc.ModelInput.FORMAT_NHWC
    assert list(inp.dims) == in_dims == [-1, -1, 3]  # the default model takes native sizes
    assert [o.name for o in cfg.output] == list(OUTPUT_NAMES)
    for o in cfg.output:
        assert o.data_type == mc.TYPE_FP32 and list(o.dims) == out_dims[o.name]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    with Scorer(model) as s:
        assert params["quasar.heads"].split(",") == list(s.heads)
        assert json.loads(params["quasar.preprocess"]) == s.info.preprocess
        # what a Triton client would send (the preprocessed uint8 NHWC tensor), run from the repository
        x = s.preprocess(encode(pattern(300, 400), ".png"))
        import onnxruntime as ort

        sess = ort.InferenceSession(str(copied), providers=["CPUExecutionProvider"])
        scores, _ = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: x[None]})
        want = s.score(encode(pattern(300, 400), ".png"))[0].scores
    assert np.allclose(scores[0], [want[h] for h in params["quasar.heads"].split(",")], atol=1e-5)


def test_fixed_size_model_gets_fixed_dims_and_cli_writes_it(tmp_path, capsys):
    model = write_tiny_model(tmp_path / "crop.onnx", spec=TINY_CROP_SPEC)
    assert main(["export", "triton", str(tmp_path / "repo"), "--model", model, "--name", "tiny",
                 "--max-batch-size", "8", "--preferred", "2", "8", "99", "--instances", "2"]) == 0
    cfg = parse_config(tmp_path / "repo" / "tiny")
    in_dims, out_dims = graph_io(tmp_path / "repo" / "tiny" / "1" / "model.onnx")
    assert list(cfg.input[0].dims) == in_dims == [64, 64, 3]
    assert list(cfg.output[0].dims) == out_dims["scores"] == [2]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 8]  # 99 > max batch: dropped
    assert cfg.instance_group[0].count == 2
    assert "not tested against a live server" in capsys.readouterr().out
    # an existing entry is not overwritten silently
    assert main(["export", "triton", str(tmp_path / "repo"), "--model", model, "--name", "tiny"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_engine_repository_uses_tensorrt_plan_within_the_profile(tmp_path):
    onnx_path = write_tiny_model(tmp_path / "tiny.onnx")
    from quasar.onnx_meta import read_metadata_props

    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"not a real engine; only the repository layout is checked")
    sidecar = engine_sidecar(engine_bytes=engine.read_bytes(), onnx_path=onnx_path,
                             onnx_metadata=read_metadata_props(onnx_path),
                             platform={"tensorrt_version": "10.0", "gpu_name": "X", "compute_capability": "9.0"},
                             profile={"min": [1, 64, 64, 3], "opt": [8, 128, 128, 3], "max": [16, 128, 128, 3]},
                             precision={"fp16": True}, built="2026-01-01")
    (tmp_path / "tiny.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(QuasarError, match="at most 16"):
        write_repository(engine, tmp_path / "repo", max_batch_size=32)
    with pytest.raises(QuasarError, match="GPUs only"):
        write_repository(engine, tmp_path / "repo", max_batch_size=16, kind="cpu")
    folder = write_repository(engine, tmp_path / "repo", max_batch_size=16)
    cfg = parse_config(folder)
    assert cfg.platform == "tensorrt_plan" and cfg.default_model_filename == "model.plan"
    assert (folder / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert list(cfg.input[0].dims) == [-1, -1, 3]


def test_onnx_with_tensorrt_accelerator(tmp_path):
    model = write_tiny_model(tmp_path / "tiny é.onnx")  # non-ASCII names survive the text format
    folder = write_repository(model, tmp_path / "repo", accelerator="tensorrt")
    cfg = parse_config(folder)
    (acc,) = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt" and cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert cfg.parameters["quasar.source_model"].string_value == "tiny é.onnx"


def test_altered_model_gets_no_repository(tmp_path, capsys):
    """Issue 21 item 8: `export triton` reads the model through the runtime's loader, digest included
    (it used to read only the metadata and would publish a model whose heads were reordered)."""
    from quasar.testing import tampered_model_bytes

    model = tmp_path / "reordered.onnx"
    model.write_bytes(tampered_model_bytes("heads-reordered"))
    assert main(["export", "triton", str(tmp_path / "repo"), "--model", str(model), "--name", "tiny"]) == 2
    assert "quasar.model_sha256" in capsys.readouterr().err
    assert not (tmp_path / "repo" / "tiny").exists()
