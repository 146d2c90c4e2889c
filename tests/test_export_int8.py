"""int8 (QDQ) export of effnet-lite0 against fp32, on real photos and distorted copies of them.

The agreement that matters for a quality score is the ranking: SRCC of int8 against fp32 scores,
per head, over 20 held-out photos x (pristine + 4 distortions). Calibration uses the anchor photos
(the default), so no evaluation photo is seen during calibration.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from scipy.stats import spearmanr
from test_export_helpers import load_rgb, ort_session, photo_pack

from quasar.centroids.distortions import distort
from quasar.contract import HEAD_WEIGHTS_INITIALIZER
from quasar.encoders import create_encoder
from quasar.export.int8 import int8_scheme, nodes_to_exclude
from quasar.export.metadata import load_info
from quasar.export.onnx_export import export_onnx
from quasar.preprocess import preprocess

pytestmark = pytest.mark.slow  # every test here exports real models (module fixtures)

EVAL_DISTORTIONS = ("gaussian_blur", "jpeg", "white_noise", "darken")


@pytest.fixture(scope="module")
def models(tmp_path_factory, anchor_photos):
    d = tmp_path_factory.mktemp("int8")
    with torch.no_grad():
        enc = create_encoder("effnet-lite0")
        pack = photo_pack(enc, load_rgb(anchor_photos, 6), enc.spec)
    del enc
    fp32 = export_onnx(None, pack, d / "fp32.onnx")
    int8 = export_onnx(None, pack, d / "int8.onnx", precision="int8")
    return pack, fp32, int8


@pytest.fixture(scope="module")
def eval_inputs(models, heldout_photos):
    pack = models[0]
    out = []
    for i, img in enumerate(load_rgb(heldout_photos, 20)):
        out.append(img)
        out += [distort(img, kind, 1 + i % 5) for kind in EVAL_DISTORTIONS]
    return [preprocess(img, pack.preprocess)[None] for img in out]


def test_int8_ranks_like_fp32(models, eval_inputs):
    pack, fp32, int8 = models
    s32, s8 = ort_session(str(fp32)), ort_session(str(int8))
    ref = np.concatenate([s32.run(None, {"images": x})[0] for x in eval_inputs])
    q = np.concatenate([s8.run(None, {"images": x})[0] for x in eval_inputs])
    d = np.abs(q - ref)
    srcc = [spearmanr(q[:, k], ref[:, k])[0] for k in range(ref.shape[1])]
    print(f"\nint8 vs fp32 on {len(eval_inputs)} images: SRCC per head {np.round(srcc, 4).tolist()}, "
          f"mean |score diff| {d.mean():.4f}, max {d.max():.4f}")
    assert min(srcc) >= 0.99


def test_int8_graph(models, tmp_path):
    """QDQ graph with the contract's I/O; normalisation, shape arithmetic and the head stay float."""
    pack, fp32, int8 = models
    onnx.checker.check_model(str(int8))
    info = load_info(int8)
    assert info.precision == "int8" and info.pack_hash == pack.content_hash
    model = onnx.load(str(int8))
    assert int8_scheme(model) == "cpu"
    nodes = list(model.graph.node)
    producers = {o: n for n in nodes for o in n.output}
    assert [n.op_type for n in nodes if "images" in n.input] == ["Cast"]
    q_inputs = {n.input[0] for n in nodes if n.op_type == "QuantizeLinear"}
    assert len(q_inputs) > 20
    # Nothing outside the backbone is quantised: no Q reads the normalisation or the head.
    assert not any(t.startswith(("/encoder/Mul", "/encoder/Sub", "/Div", "/head/", "/ReduceL2")) for t in q_inputs)
    gemm = [n for n in nodes if n.op_type == "Gemm"]
    assert len(gemm) == 1 and gemm[0].input[1] == HEAD_WEIGHTS_INITIALIZER
    assert producers[gemm[0].input[0]].op_type != "DequantizeLinear"
    inits = {t.name: t for t in model.graph.initializer}
    assert inits[HEAD_WEIGHTS_INITIALIZER].data_type == onnx.TensorProto.FLOAT
    # The pads of TF-"same" convolutions are computed from the input size: never quantised.
    fp32_model = onnx.load(str(fp32))
    excluded = set(nodes_to_exclude(fp32_model))
    assert all(n.name in excluded for n in fp32_model.graph.node if n.op_type in ("Ceil", "Shape", "Cast"))


def test_int8_tensorrt_scheme(models, anchor_photos, tmp_path):
    """The TensorRT scheme: symmetric int8 activations (zero point 0)."""
    pack = models[0]
    path = export_onnx(None, pack, tmp_path / "trt.onnx", precision="int8", int8_scheme="tensorrt",
                       calibration_images=[p.path for p in anchor_photos[:3]])
    assert int8_scheme(onnx.load(str(path))) == "tensorrt"
    x = preprocess(load_rgb(anchor_photos, 1)[0], pack.preprocess)[None]
    scores, margins = ort_session(str(path)).run(None, {"images": x})
    assert scores.shape == (1, len(pack.heads)) and np.all(np.isfinite(scores))
