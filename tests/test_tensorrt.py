"""TensorRT engines: profile, sidecar checks and CLI errors everywhere; builds and parity where TensorRT runs.

The build/parity tests need ``tensorrt`` and a CUDA GPU and skip (with the reason) otherwise; the
rest exercises the sidecar logic with a tiny hand-made fused graph and a stand-in ``tensorrt`` module.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from quasar.contract import fused_metadata
from quasar.errors import QuasarError
from quasar.export.metadata import load_info, write_metadata
from quasar.export.tensorrt import ShapeProfile, make_profile
from quasar.preprocess import PreprocessSpec
from quasar.sidecars import check_engine, engine_sidecar_path, read_engine_sidecar, sidecar_mismatches


def tiny_fused_model(path, dynamic: bool = True, precision: str = "fp32", k: int = 2, int8_scheme: str = "cpu") -> str:
    """A contract-conforming graph (mean colour -> K scores) made without torch; int8 adds a Q/DQ pair."""
    spec = PreprocessSpec(policy="native" if dynamic else "center_crop", size=512 if dynamic else 224,
                          size_multiple=32 if dynamic else 1, min_size=64)
    hw = ["height", "width"] if dynamic else [224, 224]
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, k], np.linspace(-1, 1, 3 * k).tolist())
    qparams = [helper.make_tensor("s", TensorProto.FLOAT, [], [1.0]),
               helper.make_tensor("zp", TensorProto.UINT8 if int8_scheme == "cpu" else TensorProto.INT8, [], [0])]
    nodes = [
        helper.make_node("Cast", ["images"], ["f0"], to=TensorProto.FLOAT),
        *([helper.make_node("QuantizeLinear", ["f0", "s", "zp"], ["q"]),
           helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["f"])] if precision == "int8"
          else [helper.make_node("Identity", ["f0"], ["f"])]),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["margins"]),
        helper.make_node("Sigmoid", ["margins"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", *hw, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", k]),
         helper.make_tensor_value_info("margins", TensorProto.FLOAT, ["batch", k])],
        [w, *qparams] if precision == "int8" else [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    write_metadata(model, fused_metadata(encoder="tiny", pack_hash="sha256:" + "0" * 64,
                                         heads=[f"h{i}" for i in range(k)], logit_scales=[1.0] * k,
                                         preprocess=spec.to_dict(), dynamic_size=dynamic, precision=precision))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def test_profile_dynamic(tmp_path):
    info = load_info(tiny_fused_model(tmp_path / "m.onnx"))
    p = make_profile(info, ("height", "width"))
    assert p == ShapeProfile((1, 64, 64, 3), (8, 384, 512, 3), (32, 512, 512, 3))
    assert p.contains((4, 384, 256, 3)) and not p.contains((4, 640, 256, 3)) and not p.contains((33, 64, 64, 3))
    p2 = make_profile(info, ("height", "width"), min_batch=2, opt_batch=4, max_batch=16, max_side=1024,
                      opt_hw=(512, 768))
    assert p2.max == (16, 1024, 1024, 3) and p2.opt == (4, 512, 768, 3)
    assert ShapeProfile.from_dict(json.loads(json.dumps(p2.to_dict()))) == p2
    with pytest.raises(QuasarError, match="min <= opt <= max"):
        make_profile(info, ("height", "width"), opt_batch=64)


def test_profile_fixed(tmp_path):
    info = load_info(tiny_fused_model(tmp_path / "m.onnx", dynamic=False))
    assert make_profile(info, (224, 224), max_batch=64) == ShapeProfile((1, 224, 224, 3), (8, 224, 224, 3),
                                                                       (64, 224, 224, 3))
    with pytest.raises(QuasarError, match="fixed 224x224"):
        make_profile(info, (224, 224), max_side=512)


def test_sidecar_mismatches_names_each_difference():
    built = {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert sidecar_mismatches(built, dict(built)) == []
    here = {"tensorrt_version": "11.4.0.106", "gpu_name": "NVIDIA L4", "compute_capability": "8.9"}
    problems = sidecar_mismatches(built, here)
    assert len(problems) == 3
    assert "TensorRT version: engine built for '10.13.0.35', this machine has '11.4.0.106'" in problems
    assert any("compute capability" in p and "'9.0'" in p and "'8.9'" in p for p in problems)
    same_arch = {**built, "gpu_name": "NVIDIA H100 PCIe"}
    assert len(sidecar_mismatches(built, same_arch)) == 1
    assert sidecar_mismatches(built, same_arch, check_gpu_name=False) == []


def _fake_engine(tmp_path, **sidecar) -> str:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    d = {"format": "quasar-tensorrt-engine", "format_version": 1,
         "engine_sha256": hashlib.sha256(b"not really an engine").hexdigest(),
         "tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    d.update(sidecar)
    with open(engine_sidecar_path(engine), "w") as f:
        json.dump(d, f)
    return str(engine)


def _check(engine, trt_version: str) -> None:
    """What the runtime's TensorRT backend runs before it deserializes an engine."""
    check_engine(engine, open(engine, "rb").read(), read_engine_sidecar(engine), trt_version)


def test_engines_from_elsewhere_are_refused(tmp_path):
    engine = _fake_engine(tmp_path)
    with pytest.raises(QuasarError) as e:
        _check(engine, "11.4.0.106")
    msg = str(e.value)
    assert "TensorRT version: engine built for '10.13.0.35', this machine has '11.4.0.106'" in msg
    assert "compute capability" in msg and "\n" not in msg


def test_the_sidecar_must_belong_to_the_engine(tmp_path, monkeypatch):
    engine = _fake_engine(tmp_path, engine_sha256="0" * 64)
    with pytest.raises(QuasarError, match="does not match its sidecar"):
        _check(engine, "10.13.0.35")
    here = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    monkeypatch.setattr("quasar.machine.current_gpu", lambda device=0: here)
    _check(_fake_engine(tmp_path), "10.13.0.35")  # same TensorRT, GPU and compute capability: accepted
    monkeypatch.setattr("quasar.machine.current_gpu", lambda device=0: {**here, "compute_capability": "8.9"})
    with pytest.raises(QuasarError, match="GPU compute capability: engine built for '9.0', this machine has '8.9'"):
        _check(engine, "10.13.0.35")
    (tmp_path / "model.engine.json").unlink()
    with pytest.raises(QuasarError, match="without its metadata sidecar"):
        read_engine_sidecar(engine)


def run_cli(argv, capsys):
    from quasar.cli import main

    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr()


def test_cli_tensorrt_errors(tmp_path, capsys):
    rc, cap = run_cli(["export", "tensorrt", tmp_path / "missing.onnx"], capsys)
    assert rc == 2 and len(cap.err.strip().splitlines()) == 1 and "no such ONNX file" in cap.err
    model = tiny_fused_model(tmp_path / "m.onnx")
    rc, cap = run_cli(["export", "tensorrt", model, "--int8"], capsys)
    assert rc == 2 and "needs a QDQ graph" in cap.err and len(cap.err.strip().splitlines()) == 1
    cpu_int8 = tiny_fused_model(tmp_path / "q.onnx", precision="int8")
    rc, cap = run_cli(["export", "tensorrt", cpu_int8], capsys)
    assert rc == 2 and "--int8-scheme tensorrt" in cap.err and len(cap.err.strip().splitlines()) == 1
    not_fused = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(helper.make_graph([], "g", [], [])), str(not_fused))
    rc, cap = run_cli(["export", "tensorrt", not_fused], capsys)
    assert rc == 2 and "not a QUASAR fused model" in cap.err


def test_int8_scheme_detection(tmp_path):
    from quasar.export.int8 import int8_scheme

    assert int8_scheme(onnx.load(tiny_fused_model(tmp_path / "a.onnx"))) is None
    assert int8_scheme(onnx.load(tiny_fused_model(tmp_path / "b.onnx", precision="int8"))) == "cpu"
    trt_graph = tiny_fused_model(tmp_path / "c.onnx", precision="int8", int8_scheme="tensorrt")
    assert int8_scheme(onnx.load(trt_graph)) == "tensorrt"


def test_cli_tensorrt_without_tensorrt(tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed")
    rc, cap = run_cli(["export", "tensorrt", tiny_fused_model(tmp_path / "m.onnx")], capsys)
    assert rc == 2 and cap.err.strip() == ("quasar: error: a TensorRT engine (building or loading one) needs tensorrt, which is not installed: "
                                           "pip install 'quasar-engine[tensorrt]' (needs an NVIDIA GPU and driver)")


# --------------------------------------------------------------------------- with TensorRT and a GPU


@pytest.fixture(scope="module")
def trt():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from quasar.machine import current_gpu

    if current_gpu() is None:
        pytest.skip("no CUDA GPU")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("the engine runner needs torch with CUDA")
    return trt


@pytest.fixture(scope="module")
def effnet_onnx(trt, tmp_path_factory, anchor_photos):
    from test_export_helpers import load_rgb, photo_pack

    from quasar.encoders import create_encoder
    from quasar.export.onnx_export import export_onnx

    enc = create_encoder("effnet-lite0")
    pack = photo_pack(enc, load_rgb(anchor_photos, 4), enc.spec)
    d = tmp_path_factory.mktemp("trt")
    return {p: export_onnx(None, pack, d / f"{p}.onnx", precision=p, **({"int8_scheme": "tensorrt"} if p == "int8"
                                                                         else {}))
            for p in ("fp32", "fp16", "int8")}


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_matches_onnxruntime(trt, effnet_onnx, precision, heldout_photos, tmp_path):
    from test_export_helpers import batch_at, load_rgb, ort_session

    from quasar.export.tensorrt import build_engine, has_precision_flags
    from quasar.runtime.backends.tensorrt import TensorRTBackend
    from quasar.runtime.model import load_model_info

    onnx_path = effnet_onnx[precision]
    fp16_flag = precision == "fp16" and has_precision_flags(trt)
    engine = build_engine(onnx_path, tmp_path / "m.engine", fp16=fp16_flag, max_batch=8, opt_batch=4,
                          timing_cache=tmp_path / "timing.cache", tf32=False)
    sidecar = read_engine_sidecar(engine)
    assert sidecar["onnx_sha256"] == hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    assert sidecar["onnx_metadata"]["quasar.precision"] == precision
    assert (tmp_path / "timing.cache").stat().st_size > 0
    info = load_info(onnx_path)
    x = batch_at(load_rgb(heldout_photos, 8), PreprocessSpec.from_dict(info.preprocess), (384, 512))
    ref = ort_session(effnet_onnx["fp32"]).run(None, {"images": x})[0]
    backend = TensorRTBackend(load_model_info(engine))
    try:
        scores, _ = backend.run(x)
    finally:
        backend.close()
    d = np.abs(scores - ref).max()
    print(f"TensorRT {precision} vs ORT CPU fp32: max |score diff| {d:.2e}")
    assert d < {"fp32": 1e-4, "fp16": 2e-2, "int8": 1e-1}[precision]
