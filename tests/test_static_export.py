"""Static graphs (``quasar export onnx --static HxW``): the contract, parity with the dynamic default
model on the same pixels, ORT Mobile's usability checker (NNAPI and both CoreML formats), OpenCV DNN,
the runtime (policy ``fixed``, fixed batch padding), and int8 without quantised scalars."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from quasar.centroids.pack import CentroidPack
from quasar.errors import QuasarError
from quasar.export.metadata import load_info, write_metadata
from quasar.export.mobile import EPS, mobile_usability
from quasar.export.onnx_export import export_onnx
from quasar.io import read_rgb
from quasar.preprocess import preprocess
from quasar.shipped import shipped_model_path
from quasar.testing import resealed

pytestmark = pytest.mark.slow  # real exports of the default model

H, W = 384, 512
TOL = 1e-5
# Ops every one of NNAPI, CoreML NeuralNetwork and CoreML MLProgram lists (onnxruntime/tools/mobile_helpers),
# that OpenCV 4.6's importer parses, and that a static default graph is made of.
MOBILE_OPS = {"Add", "AveragePool", "Cast", "Concat", "Conv", "Div", "Gemm", "GlobalAveragePool", "MatMul", "Mul", "Relu",
              "Reshape", "Sigmoid", "Split", "Sqrt", "Sub", "Transpose"}


@pytest.fixture(scope="module")
def pack():
    return CentroidPack.load("default")


@pytest.fixture(scope="module")
def dynamic_path():
    path = shipped_model_path()
    assert path is not None
    return path


@pytest.fixture(scope="module")
def static_path(tmp_path_factory, pack):
    return export_onnx(None, pack, tmp_path_factory.mktemp("static") / "s.onnx", static=(H, W))


@pytest.fixture(scope="module")
def pixels(heldout_photos):
    """Held-out photos and distorted copies, each stretched to H x W exactly like the runtime does."""
    from quasar.centroids.distortions import distort
    from quasar.centroids.pack import CentroidPack

    spec = load_spec_fixed(CentroidPack.load("default"), "stretch")
    imgs = [read_rgb(p.path) for p in heldout_photos[:3]]
    imgs += [distort(imgs[0], "jpeg", 4), distort(imgs[1], "gaussian_blur", 3)]
    return np.stack([preprocess(im, spec) for im in imgs])


def load_spec_fixed(pack, fit):
    from quasar.export.onnx_export import static_spec_for

    return static_spec_for(pack.preprocess, H, W, fit)


def run(path, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    n = s.get_inputs()[0].shape[0]
    if isinstance(n, int) and n != len(x):  # a fixed batch: each image alone, repeated n times
        outs = [s.run(None, {"images": np.repeat(x[i : i + 1], n, axis=0)}) for i in range(len(x))]
        return [np.concatenate([o[k][:1] for o in outs]) for k in range(2)]
    return s.run(None, {"images": x})


def test_static_graph_contract(static_path, pack):
    info = load_info(static_path)
    assert not info.dynamic_size and info.precision == "fp32"
    spec = json.loads(info.metadata["quasar.preprocess"])
    assert (spec["policy"], spec["height"], spec["width"], spec["fit"], spec["size"]) == ("fixed", H, W, "stretch", W)
    model = onnx.load(static_path)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, H, W, 3]
    for o in model.graph.output:
        assert [d.dim_value for d in o.type.tensor_type.shape.dim] == [1, len(pack.output_names)]
    ops = {n.op_type for n in model.graph.node}
    assert "Clip" in ops and ops - {"Clip"} <= MOBILE_OPS, f"ops outside the mobile set: {ops - MOBILE_OPS}"
    assert "Shape" not in ops and "Pad" not in ops
    # what the pack's spec says except the fixed-policy fields: one source of truth for mean/std etc.
    base = json.loads(pack.preprocess.to_json())
    assert {k: v for k, v in spec.items() if k not in ("policy", "height", "width", "fit", "size")} == \
        {k: v for k, v in base.items() if k not in ("policy", "size")}


def float64_scores(pack, x: np.ndarray) -> np.ndarray:
    """The fused scorer in float64 (channel statistics included): the exact function both graphs approximate."""
    import torch
    import torch.nn.functional as F

    import quasar.encoders.taps as taps
    from quasar.export.fused import build_fused

    def stats64(t):
        t = t.double()
        mean = t.mean(dim=(2, 3))
        var = (t * t).mean(dim=(2, 3)) - mean * mean
        return mean, torch.sqrt(torch.clamp(var, min=0.0) + taps.STATS_EPS)

    fused = build_fused(pack.encoder, pack, pack.preprocess).double()
    before = taps._channel_stats
    taps._channel_stats = stats64
    try:
        with torch.no_grad():
            scores, _ = fused.head(F.normalize(fused.encoder(torch.from_numpy(x)), dim=-1))
    finally:
        taps._channel_stats = before
    return scores.numpy()


def test_static_matches_dynamic_on_same_pixels(static_path, dynamic_path, pixels, pack):
    """Within 1e-5 of the exact (float64) scores; against the dynamic graph, within 1e-5 plus the dynamic
    graph's own float32 error (its one-pass ReduceMean of E[x^2] - mean^2 is ~2e-5 off on distorted photos)."""
    ref = run(dynamic_path, pixels)
    got = run(static_path, pixels)
    exact = float64_scores(pack, pixels)
    static_err = np.abs(got[0] - exact).max()
    dynamic_err = np.abs(ref[0] - exact).max()
    assert static_err < TOL
    assert np.abs(got[0] - ref[0]).max() < dynamic_err + TOL
    assert np.abs(got[1] - ref[1]).max() < 1e-4


def test_mobile_checker_static_yes_dynamic_no(static_path, dynamic_path):
    static = mobile_usability(static_path)
    for ep in EPS:
        v = static[ep]
        assert v.verdict == "YES" and v.partitions == 1 and v.supported == v.nodes, v.line()
    dynamic = mobile_usability(dynamic_path)
    assert all(dynamic[ep].verdict == "NO" and dynamic[ep].partitions > 2 for ep in EPS)


def test_opencv_dnn_matches_onnxruntime(static_path, pixels):
    cv2 = pytest.importorskip("cv2")
    net = cv2.dnn.readNetFromONNX(str(static_path))
    ref = run(static_path, pixels)
    for i in range(len(pixels)):
        x = pixels[i : i + 1]
        try:
            net.setInput(x, "images")  # OpenCV 5 checks the graph's uint8 input type
            scores, margins = net.forward(["scores", "margins"])
        except cv2.error:
            net.setInput(x.astype(np.float32), "images")  # OpenCV 4.x runs the Cast on float data
            scores, margins = net.forward(["scores", "margins"])
        assert np.abs(scores - ref[0][i : i + 1]).max() < 1e-4
        assert np.abs(margins - ref[1][i : i + 1]).max() < 1e-4


def test_clip_form_relu_same_outputs(tmp_path, pack, static_path, pixels):
    """The OpenCV-4.x form: no Clip at all (OpenCV 4.6 parses only the opset-6 attribute Clip)."""
    path = export_onnx(None, pack, tmp_path / "r.onnx", static=(H, W), clip_form="relu")
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ops <= MOBILE_OPS, f"ops outside the mobile/OpenCV set: {ops - MOBILE_OPS}"
    for a, b in zip(run(static_path, pixels[:2]), run(path, pixels[:2]), strict=True):
        assert np.abs(a - b).max() < TOL


def test_fixed_batch_graph_and_runtime_padding(tmp_path, pack, dynamic_path, heldout_photos):
    """A batch-2 graph: the runtime pads 3 images to 2 + 2 and drops the padding; scores equal the
    dynamic model's on the same (cropped) pixels; every image is scored alone, whatever its batch-mates."""
    from quasar.runtime import Scorer

    h, w = 256, 320
    path = export_onnx(None, pack, tmp_path / "b2.onnx", static=(h, w), batch=2, fit="crop")
    dims = [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, h, w, 3]
    files = [p.path for p in heldout_photos[:3]]
    with Scorer(path, backend="onnxruntime", device="cpu", batch_size=4, workers=1) as s:
        assert s.backend.fixed_batch == 2 and s.batch_size == 2
        recs = s.score(files)
        x = np.stack([s.preprocess(f) for f in files])
    assert x.shape == (3, h, w, 3)
    got = np.array([[r.scores[k] for k in pack.output_names] for r in recs])
    alone = run(path, x)  # each image in a batch of its own copies
    assert np.abs(got - alone[0]).max() < 1e-6
    assert np.abs(got - run(dynamic_path, x)[0]).max() < 1e-4  # float32 noise of the dynamic graph (see above)


def test_runtime_refuses_inconsistent_static_graph(tmp_path, static_path):
    from quasar.runtime import Scorer

    model = onnx.load(static_path)
    spec = json.loads({p.key: p.value for p in model.metadata_props}["quasar.preprocess"])
    spec["height"], spec["width"] = W, H  # metadata says 512x384, the graph takes 384x512
    write_metadata(model, {"quasar.preprocess": json.dumps(spec, sort_keys=True)})
    bad = tmp_path / "swapped.onnx"
    bad.write_bytes(resealed(model))  # a valid digest: the cross-check itself must refuse it
    with pytest.raises(QuasarError, match="384x512 but the spec"):
        Scorer(str(bad), backend="onnxruntime", device="cpu")
    write_metadata(model, {"quasar.dynamic_size": "true"})
    bad.write_bytes(resealed(model))
    with pytest.raises(QuasarError, match="dynamic_size"):
        Scorer(str(bad), backend="onnxruntime", device="cpu")


def test_static_int8_has_no_quantised_scalars(tmp_path, pack, anchor_photos):
    """int8 static graph: no QuantizeLinear/DequantizeLinear of a scalar or of a one-value tensor (the pad
    value that OpenCV could not take), every Q/DQ scale constant, and NNAPI takes the whole graph."""
    calib = [read_rgb(p.path) for p in anchor_photos[:4]]
    path = export_onnx(None, pack, tmp_path / "q.onnx", precision="int8", static=(256, 320), calibration_images=calib)
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        x = n.input[0]
        if x in inits:
            assert inits[x].size > 1, f"{n.name} quantises a scalar"
        assert n.input[1] in inits
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for n in qdq:
        if n.op_type == "QuantizeLinear":
            assert int(np.prod(shapes.get(n.input[0], [2]))) > 1, f"{n.name} quantises a scalar"
    v = mobile_usability(path)["NNAPI"]
    assert v.verdict == "YES" and v.partitions == 1 and v.supported == v.nodes, v.line()


def test_cli_static(tmp_path, capsys):
    from quasar.cli import main

    out = str(tmp_path / "x.onnx")
    assert main(["export", "onnx", "--pack", "default", "--static", "380x512", "-o", out]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["export", "onnx", "--pack", "default", "--batch", "2", "-o", out]) == 2
    assert "--static graphs only" in capsys.readouterr().err
    assert main(["export", "onnx", "--pack", "default", "--static", "384by512", "-o", out]) == 2
    assert "384x512" in capsys.readouterr().err
    assert not os.path.exists(out)
