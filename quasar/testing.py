"""Test and benchmark helpers, never imported by the runtime: a tiny fused model and the PIL reference pipeline.

**The tiny model** (:func:`tiny_model_bytes`, :func:`write_tiny_model`): a fused graph that follows
the contract, built with ``onnx.helper`` (no torch, no weights), for tests and for wiring the runtime
into an application before a real model is exported. Its metadata, names and head hash come from
:mod:`quasar.contract`; it is a format version 1 graph (``quasar.centroids``), which the runtime
still reads:
uint8 NHWC ``images`` -> Cast -> NCHW -> (x - mean) / std -> 3x3 conv (stride 2) -> ReLU -> global
average pool -> L2 normalise -> cosine with ``quasar.centroids`` [2K, D] (rows good_0, bad_0, good_1,
bad_1, ... as in ``CentroidPack.centroid_matrix``) -> ``margins`` = cos_good - cos_bad -> ``scores`` = sigmoid(``quasar.logit_scales`` * margins).
Its scores carry no meaning. Needs the ``onnx`` package (imported when called).

**The reference pipeline** (:func:`reference_preprocess`): what PIL/torchvision pipelines feed a
model, with PIL only; the one the runtime's preprocessing is measured against, by the tests and by
the benchmarks (:mod:`quasar_bench.eager` feeds its pixels to the eager baseline).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from quasar.contract import (
    CENTROIDS_INITIALIZER,
    COMBINE_KEY,
    HEAD_SHA256_KEY,
    INPUT_NAME,
    LOGIT_SCALES_INITIALIZER,
    MODEL_SHA256_KEY,
    OUTPUT_NAMES,
    fused_metadata,
)
from quasar.integrity import head_sha256_of_protos, seal_model_bytes
from quasar.preprocess import PreprocessSpec, target_shape

TINY_NATIVE_SPEC = PreprocessSpec(policy="native", size=128, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                                  size_multiple=16, min_size=32)
TINY_CROP_SPEC = PreprocessSpec(policy="center_crop", size=64)


def tiny_metadata(heads, spec: PreprocessSpec, dynamic: bool, scales) -> dict[str, str]:
    """The contract's keys for the tiny graph: format version 1, no combine heads."""
    meta = fused_metadata(encoder="tiny-test-conv", pack_hash="sha256:" + "0" * 64, heads=list(heads),
                          logit_scales=[float(s) for s in scales], preprocess=spec.to_dict(), dynamic_size=dynamic,
                          precision="fp32", project_version="0.1.0")
    meta["quasar.format_version"] = "1"
    del meta[COMBINE_KEY]
    return meta


def tiny_model_bytes(heads=("quality", "aesthetics"), spec: PreprocessSpec | None = None, dim: int = 16,
                     seed: int = 0, metadata: dict[str, str | None] | None = None, out_heads: int | None = None) -> bytes:
    """Serialized ONNX bytes. ``metadata`` entries override (None deletes) the contract's keys;
    ``out_heads`` builds a graph with another output width than ``len(heads)`` (a broken model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = spec or TINY_NATIVE_SPEC
    dynamic = not spec.fixed_size
    k = out_heads or len(heads)
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.3, (dim, 3, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, (dim,)).astype(np.float32)
    cents = rng.normal(0, 1, (2 * k, dim)).astype(np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    scales = np.linspace(20, 40, k).astype(np.float32)
    mean = (np.array(spec.mean, np.float32) * 255).reshape(1, 3, 1, 1)
    inv_std = (1 / (np.array(spec.std, np.float32) * 255)).reshape(1, 3, 1, 1)
    inits = [
        numpy_helper.from_array(mean, "mean"), numpy_helper.from_array(inv_std, "inv_std"),
        numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(conv_b, "conv_b"),
        numpy_helper.from_array(cents, CENTROIDS_INITIALIZER), numpy_helper.from_array(scales, LOGIT_SCALES_INITIALIZER),
        numpy_helper.from_array(np.array([1e-12], np.float32), "eps"),
        numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array([2 * k], np.int64), "s2k"), numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([2], np.int64), "step2"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["xf"], ["xc"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["xc", "mean"], ["xs"]),
        helper.make_node("Mul", ["xs", "inv_std"], ["xn"]),
        helper.make_node("Conv", ["xn", "conv_w", "conv_b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["emb"], axis=1),
        helper.make_node("ReduceL2", ["emb"], ["nrm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["nrm", "eps"], ["nrm2"]),
        helper.make_node("Div", ["emb", "nrm2"], ["u"]),
        helper.make_node("Gemm", ["u", CENTROIDS_INITIALIZER], ["cos"], transB=1),
        helper.make_node("Slice", ["cos", "s0", "s2k", "ax1", "step2"], ["good"]),
        helper.make_node("Slice", ["cos", "s1", "s2k", "ax1", "step2"], ["bad"]),
        helper.make_node("Sub", ["good", "bad"], [OUTPUT_NAMES[1]]),
        helper.make_node("Mul", [OUTPUT_NAMES[1], LOGIT_SCALES_INITIALIZER], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [OUTPUT_NAMES[0]]),
    ]
    hw = ["height", "width"] if dynamic else [spec.size, spec.size]
    graph = helper.make_graph(
        nodes, "quasar_tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", *hw, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["batch", k]),
         helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["batch", k])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="quasar-tiny")
    model.ir_version = 8
    meta = tiny_metadata(heads, spec, dynamic, scales[: len(heads)] if len(heads) <= k else
                         list(scales) + [30.0] * (len(heads) - k))
    meta[HEAD_SHA256_KEY] = head_sha256_of_protos(graph.initializer)  # as the exporter writes it
    for key, v in (metadata or {}).items():
        if v is None:
            meta.pop(key, None)
        else:
            meta[key] = v
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    if MODEL_SHA256_KEY in (metadata or {}):  # the caller sets (or, None, removes) the digest itself
        return model.SerializeToString()
    return seal_model_bytes(model.SerializeToString())  # as the exporter writes it


def write_tiny_model(path, **kwargs) -> str:
    """Write :func:`tiny_model_bytes` to ``path`` and return it."""
    with open(path, "wb") as f:
        f.write(tiny_model_bytes(**kwargs))
    return str(path)


# --------------------------------------------------------------------------- altered models

# The alterations every runtime must refuse (tests/test_model_integrity.py for Python,
# native/tests/tampers.py for the native library): name -> what it does to a sealed model.
TAMPERS = {
    "heads-reordered": "quasar.heads listed in another order (each head would carry another's score)",
    "pack-hash": "quasar.pack_hash replaced by another well-formed hash",
    "encoder-id": "quasar.encoder replaced by another well-formed id",
    "weights-x10": "the encoder's conv weights multiplied by 10",
    "flipped-byte": "one byte flipped inside the encoder's conv weights",
    "huge-metadata": "a metadata value one byte over the documented bound",
    "removed-node": "the ReLU node removed (its input wired to its consumers)",
    "output-renamed": "the graph output 'margins' renamed",
    "logit-scale": "one logit scale changed in graph and metadata, head hash recomputed",
    "spec-changed": "the preprocess spec's mean changed",
    "centroids-rehashed": "the head centroids changed, head hash recomputed",
    "opset-changed": "the default-domain opset raised from 17 to 18",
    "doc-string": "the model's doc string changed",
    "metadata-added": "a metadata entry added",
    "digest-removed": "quasar.model_sha256 removed",
    "digest-bogus": "quasar.model_sha256 replaced by another well-formed digest",
    "digest-twice": "a second quasar.model_sha256 entry appended",
}


def tampered_model_bytes(name: str, base: bytes | None = None) -> bytes:
    """``base`` (default: :func:`tiny_model_bytes`, sealed) altered as :data:`TAMPERS` [``name``] says,
    without resealing: what a careless edit or a careful forger who does not know the digest makes."""
    import onnx
    from onnx import helper, numpy_helper

    from quasar.limits import MAX_METADATA_VALUE_BYTES

    base = base if base is not None else tiny_model_bytes()
    if name == "flipped-byte":
        m = onnx.load_from_string(base)
        w = next(t for t in m.graph.initializer if t.name == "conv_w")
        raw = numpy_helper.to_array(w).tobytes()
        i = base.find(raw)
        if i < 0:
            raise ValueError("conv_w's bytes are not in the file")
        j = i + len(raw) // 2
        return base[:j] + bytes([base[j] ^ 0x10]) + base[j + 1:]
    if name == "digest-twice":
        return _append_entry(base, MODEL_SHA256_KEY, "sha256:" + "1" * 64)
    m = onnx.load_from_string(base)
    props = {p.key: p.value for p in m.metadata_props}
    inits = {t.name: t for t in m.graph.initializer}

    def set_init(t_name: str, arr: np.ndarray) -> None:
        inits[t_name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t_name))

    if name == "heads-reordered":
        props["quasar.heads"] = json.dumps(list(reversed(json.loads(props["quasar.heads"]))))
    elif name == "pack-hash":
        props["quasar.pack_hash"] = "sha256:" + "1" * 64
    elif name == "encoder-id":
        props["quasar.encoder"] = props["quasar.encoder"] + "-v2"
    elif name == "weights-x10":
        set_init("conv_w", numpy_helper.to_array(inits["conv_w"]) * 10)
    elif name == "huge-metadata":
        props["quasar.note"] = "x" * (MAX_METADATA_VALUE_BYTES + 1)
    elif name == "removed-node":
        relu = next(n for n in m.graph.node if n.op_type == "Relu")
        for n in m.graph.node:
            n.input[:] = [relu.input[0] if x == relu.output[0] else x for x in n.input]
        m.graph.node.remove(relu)
    elif name == "output-renamed":
        for n in m.graph.node:
            n.output[:] = ["margins2" if x == OUTPUT_NAMES[1] else x for x in n.output]
            n.input[:] = ["margins2" if x == OUTPUT_NAMES[1] else x for x in n.input]
        next(o for o in m.graph.output if o.name == OUTPUT_NAMES[1]).name = "margins2"
    elif name == "logit-scale":
        scales = numpy_helper.to_array(inits[LOGIT_SCALES_INITIALIZER]).copy()
        scales[0] += 1
        set_init(LOGIT_SCALES_INITIALIZER, scales)
        props["quasar.logit_scales"] = json.dumps([float(x) for x in scales])
        props[HEAD_SHA256_KEY] = head_sha256_of_protos(m.graph.initializer)
    elif name == "spec-changed":
        spec = json.loads(props["quasar.preprocess"])
        spec["mean"] = [0.25, 0.5, 0.5]
        props["quasar.preprocess"] = json.dumps(spec, sort_keys=True)
    elif name == "centroids-rehashed":
        set_init(CENTROIDS_INITIALIZER, numpy_helper.to_array(inits[CENTROIDS_INITIALIZER])[::-1])
        props[HEAD_SHA256_KEY] = head_sha256_of_protos(m.graph.initializer)
    elif name == "opset-changed":
        next(o for o in m.opset_import if o.domain in ("", "ai.onnx")).version = 18
    elif name == "doc-string":
        m.doc_string = "edited"
    elif name == "metadata-added":
        props["quasar.note"] = "added"
    elif name == "digest-removed":
        props.pop(MODEL_SHA256_KEY)
    elif name == "digest-bogus":
        props[MODEL_SHA256_KEY] = "sha256:" + "2" * 64
    else:
        raise KeyError(name)
    del m.metadata_props[:]
    helper.set_model_props(m, props)
    return m.SerializeToString()


def nan_weights_model_bytes() -> bytes:
    """The tiny model with NaN in its encoder's conv weights and a valid digest (the NaN guard, not the
    digest, must refuse it)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(tiny_model_bytes(metadata={MODEL_SHA256_KEY: None}))
    w = next(t for t in m.graph.initializer if t.name == "conv_w")
    arr = numpy_helper.to_array(w).copy()
    arr.flat[::7] = np.nan
    w.CopyFrom(numpy_helper.from_array(arr, "conv_w"))
    return seal_model_bytes(m.SerializeToString())


def resealed(model) -> bytes:
    """An edited ``onnx.ModelProto``'s bytes with a fresh digest (any old one dropped): what the exporter
    would have written, for tests of the checks that run before the digest (a careful forger's file)."""
    props = [(p.key, p.value) for p in model.metadata_props if p.key != MODEL_SHA256_KEY]
    del model.metadata_props[:]
    for k, v in props:
        model.metadata_props.add(key=k, value=v)
    return seal_model_bytes(model.SerializeToString())


def _append_entry(model_bytes: bytes, key: str, value: str) -> bytes:
    import onnx

    m = onnx.load_from_string(model_bytes)
    m.metadata_props.add(key=key, value=value)
    return m.SerializeToString()


# --------------------------------------------------------------------------- the PIL reference pipeline


def reference_image(source: str | os.PathLike | bytes):
    """Upright RGB PIL image of the whole file: ``Image.open`` + ``ImageOps.exif_transpose``, alpha
    composited on white (the runtime's choice; ``convert("RGB")`` alone would drop it onto black)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        return im.convert("RGB")


def reference_decode(source: str | os.PathLike | bytes) -> np.ndarray:
    """Upright RGB uint8 pixels via PIL at full resolution (:func:`reference_image` as an array)."""
    return np.asarray(reference_image(source))


def reference_preprocess(source: str | os.PathLike | bytes, spec: PreprocessSpec) -> np.ndarray:
    """What a PIL + torchvision pipeline feeds the model for ``spec`` (uint8 HxWx3, spec channel order).

    PIL decodes at full resolution (:func:`reference_image`), resizes with its antialiased filter
    named by ``spec.interpolation`` (``area``: PIL's box filter) to the *same* target size
    (:func:`quasar.preprocess.target_shape`) and centre-crops with torchvision's rounding. With the
    spec's ``pil`` resampler the runtime then differs only by reduced JPEG decoding (with
    ``opencv_area`` also by the filter). Written independently of :mod:`quasar.preprocess`'s resize,
    so it can check it.
    """
    from PIL import Image

    im = reference_image(source)
    rh, rw, crop = target_shape(im.height, im.width, spec)
    if (im.height, im.width) != (rh, rw):
        im = im.resize((rw, rh), Image.Resampling[{"area": "BOX"}.get(spec.interpolation, spec.interpolation.upper())])
    out = np.asarray(im)
    if crop is not None:
        ch, cw = crop
        top, left = int(round((rh - ch) / 2.0)), int(round((rw - cw) / 2.0))
        out = out[top : top + ch, left : left + cw]
    if spec.channel_order == "BGR":
        out = out[:, :, ::-1]
    return np.array(out, order="C")  # a writable copy (PIL's array view is read-only; torch warns on those)
