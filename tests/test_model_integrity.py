"""Models that lie: a corrupted cached default model, metadata that disagrees with the graph."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from quasar.contract import HEAD_SHA256_KEY
from quasar.errors import QuasarError
from quasar.integrity import head_sha256_of_protos
from quasar.onnx_meta import parse_tensor, read_initializers
from quasar.runtime import Scorer, load_model_info

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from quasar.testing import TINY_NATIVE_SPEC, tiny_model_bytes  # noqa: E402


def rewrite(path, model_bytes: bytes, inits=None, meta=None, rehash: bool = False) -> str:
    """Save ``model_bytes`` with initializers replaced (name -> array) and metadata keys set; with
    ``rehash`` the head hash is recomputed, as a careful forger would."""
    m = onnx.load_from_string(model_bytes)
    for t in m.graph.initializer:
        if inits and t.name in inits:
            t.CopyFrom(numpy_helper.from_array(np.asarray(inits[t.name], np.float32), t.name))
    props = {p.key: p.value for p in m.metadata_props}
    props.update(meta or {})
    if rehash:
        props[HEAD_SHA256_KEY] = head_sha256_of_protos(m.graph.initializer)
    del m.metadata_props[:]
    helper.set_model_props(m, props)
    onnx.save(m, path)
    return str(path)


def tiny_arrays() -> dict[str, np.ndarray]:
    m = onnx.load_from_string(tiny_model_bytes())
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def test_head_sha256_is_the_documented_hash():
    """Recomputed independently with onnx/numpy: sorted quasar.* names, length-prefixed name and LE data."""
    m = onnx.load_from_string(tiny_model_bytes())
    h = hashlib.sha256()
    for t in sorted((t for t in m.graph.initializer if t.name.startswith("quasar.")), key=lambda t: t.name):
        data = numpy_helper.to_array(t).astype(numpy_helper.to_array(t).dtype.newbyteorder("<")).tobytes()
        for part in (t.name.encode(), data):
            h.update(len(part).to_bytes(8, "little") + part)
    assert {p.key: p.value for p in m.metadata_props}[HEAD_SHA256_KEY] == "sha256:" + h.hexdigest()


@pytest.mark.parametrize("make", [
    lambda: helper.make_tensor("quasar.a", TensorProto.FLOAT, [2, 2], [1.5, -2.0, 3.25, 0.0]),
    lambda: helper.make_tensor("quasar.b", TensorProto.INT64, [3], [-1, 2**40, 7]),
    lambda: helper.make_tensor("quasar.c", TensorProto.FLOAT16, [2], np.array([1.5, -0.25], np.float16).view(np.uint16)),
    lambda: helper.make_tensor("quasar.d", TensorProto.INT8, [3], [-128, 0, 127]),
    lambda: helper.make_tensor("quasar.e", TensorProto.DOUBLE, [2], [0.1, -1e300]),
    lambda: numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "quasar.f"),
], ids=["float_data", "int64_data", "float16-bits", "int8", "double_data", "raw_data"])
def test_tensor_reader_matches_onnx(make):
    t = make()
    got = parse_tensor(t.SerializeToString())
    want = numpy_helper.to_array(t)
    assert got.dims == want.shape and got.data == want.astype(want.dtype.newbyteorder("<")).tobytes()


def test_reader_sees_every_initializer_type(tmp_path):
    p = tmp_path / "t.onnx"
    p.write_bytes(tiny_model_bytes())
    g = read_initializers(p)
    assert set(g.tensors) == {"quasar.centroids", "quasar.logit_scales"}
    assert g.dtypes == {TensorProto.FLOAT: 7, TensorProto.INT64: 5}


@pytest.mark.parametrize("case,message", [
    ("centroids", r"quasar.head_sha256 .* does not match the graph's head initializers"),
    ("no-head-hash", "no quasar.head_sha256 in the metadata"),
    ("scale-metadata", r"metadata quasar.logit_scales \[20.0, 41.0\] disagree with the graph's \[20.0, 40.0\]"),
    ("negated", "logit scale -20.0 is outside the documented range 0 < s <= 1000"),
    ("size-1", "preprocess size 1 is outside 16..8192"),
    ("precision", r"quasar.precision says 'fp16' but the graph's weights .* are fp32"),
    ("pack-hash", r"quasar.pack_hash 'sha256:bogus' is not 'sha256:' and 64 hex digits"),
    ("encoder", "quasar.encoder 'tiny test' is not an encoder id"),
])
def test_metadata_that_disagrees_with_the_graph_is_refused(tmp_path, case, message):
    base = tiny_model_bytes()
    a = tiny_arrays()
    p = tmp_path / f"{case}.onnx"
    spec1 = json.dumps({**TINY_NATIVE_SPEC.to_dict(), "size": 1, "min_size": 1})
    edits = {
        "centroids": dict(inits={"quasar.centroids": a["quasar.centroids"][::-1]}),
        "no-head-hash": dict(meta={}, rehash=False),
        "scale-metadata": dict(meta={"quasar.logit_scales": "[20.0, 41.0]"}, rehash=True),
        "negated": dict(inits={"quasar.logit_scales": -a["quasar.logit_scales"]},
                        meta={"quasar.logit_scales": json.dumps((-a["quasar.logit_scales"]).tolist())}, rehash=True),
        "size-1": dict(meta={"quasar.preprocess": spec1}),
        "precision": dict(meta={"quasar.precision": "fp16"}),
        "pack-hash": dict(meta={"quasar.pack_hash": "sha256:bogus"}),
        "encoder": dict(meta={"quasar.encoder": "tiny test"}),
    }[case]
    if case == "no-head-hash":
        base = tiny_model_bytes(metadata={HEAD_SHA256_KEY: None})
    rewrite(p, base, **edits)
    with pytest.raises(QuasarError, match=message) as e:
        Scorer(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_untouched_model_loads(tmp_path):
    p = rewrite(tmp_path / "ok.onnx", tiny_model_bytes(), rehash=True)
    assert load_model_info(p).heads == ("quality", "aesthetics")


# ---------------------------------------------------------------- the cached default model


def test_corrupted_default_model_is_rebuilt_and_refused(tmp_path, monkeypatch):
    from quasar.centroids.pack import CentroidPack
    from quasar.export import default as default_mod
    from quasar.export import onnx_export
    from quasar.export.metadata import producer_version

    monkeypatch.setenv("QUASAR_CACHE", str(tmp_path))
    pack = CentroidPack.load("default")
    exports = []

    def fake_export(encoder, pack_, out, precision="fp32", **kw):  # the tiny model stands in for effnet
        exports.append(out)
        m = onnx.load_from_string(tiny_model_bytes(metadata={"quasar.pack_hash": pack.content_hash,
                                                             "quasar.model_sha256": None}))
        m.producer_version = producer_version()
        with open(f"{out}.tmp", "wb") as f:
            f.write(seal_model_bytes(m.SerializeToString()))  # sealed last, as the exporter does
        os.replace(f"{out}.tmp", out)
        return str(out)

    monkeypatch.setattr(onnx_export, "export_onnx", fake_export)
    monkeypatch.setattr("quasar.shipped.shipped_model_path", lambda *a: None)  # the cache is under test
    path = default_mod.default_pack_model()
    assert len(exports) == 1 and os.path.isfile(path + ".sha256")
    assert default_mod.default_pack_model() == path and len(exports) == 1  # a cache hit
    load_model_info(path)

    conv_w = numpy_helper.to_array(next(t for t in onnx.load(path).graph.initializer if t.name == "conv_w"))
    data = bytearray(open(path, "rb").read())
    i = bytes(data).find(conv_w.tobytes())
    data[i + 5] ^= 0xFF  # one weight changes; metadata and head are intact
    open(path, "wb").write(bytes(data))
    with pytest.raises(QuasarError, match=r"does not match the .* recorded in .*\.sha256 at export: the file is corrupted"):
        load_model_info(path)
    assert default_mod.default_pack_model() == path and len(exports) == 2  # exported again
    load_model_info(path)


# ---------------------------------------------------------------- the model digest (issue 21, item 8)

from quasar.contract import MODEL_SHA256_KEY  # noqa: E402
from quasar.integrity import model_sha256, seal_model_bytes  # noqa: E402
from quasar.testing import TAMPERS, nan_weights_model_bytes, tampered_model_bytes  # noqa: E402


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_every_altered_model_is_refused(tmp_path, name):
    p = tmp_path / f"{name}.onnx"
    p.write_bytes(tampered_model_bytes(name))
    with pytest.raises(QuasarError) as e:
        load_model_info(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and "\n" not in msg and "refusing this model" in msg, msg


def test_sealed_model_loads_and_survives_a_resave(tmp_path):
    base = tiny_model_bytes()
    assert onnx.load_from_string(base).metadata_props[-1].key == MODEL_SHA256_KEY
    p = tmp_path / "resaved.onnx"
    onnx.save(onnx.load_from_string(base), p)  # protobuf moves the appended entry; the digest does not change
    assert load_model_info(p).heads == ("quality", "aesthetics")
    digest, n = model_sha256(str(p))
    assert n == 1 and f"{MODEL_SHA256_KEY}" in {q.key for q in onnx.load(p).metadata_props}
    assert {q.key: q.value for q in onnx.load(p).metadata_props}[MODEL_SHA256_KEY] == digest


def test_model_digest_is_the_documented_hash():
    """quasar.model_sha256 by hand: top-level fields but metadata_props, then sorted metadata entries."""
    unsealed = tiny_model_bytes(metadata={MODEL_SHA256_KEY: None})
    m = onnx.load_from_string(unsealed)
    props = sorted((q.key.encode(), q.value.encode()) for q in m.metadata_props)
    no_meta = onnx.ModelProto()
    no_meta.CopyFrom(m)
    del no_meta.metadata_props[:]
    h = hashlib.sha256(b"quasar-model-sha256/1\n" + no_meta.SerializeToString())
    h.update(len(props).to_bytes(8, "little"))
    for k, v in props:
        h.update(len(k).to_bytes(8, "little") + k + len(v).to_bytes(8, "little") + v)
    assert model_sha256(unsealed) == ("sha256:" + h.hexdigest(), 0)
    sealed = seal_model_bytes(unsealed)
    assert {q.key: q.value for q in onnx.load_from_string(sealed).metadata_props}[MODEL_SHA256_KEY] == \
        "sha256:" + h.hexdigest()
    with pytest.raises(ValueError):
        seal_model_bytes(sealed)


def test_huge_metadata_value_is_refused_unread(tmp_path, monkeypatch):
    """A value over the bound is refused from its length: the reader never reads its bytes."""
    from quasar import onnx_meta

    p = tmp_path / "huge.onnx"
    p.write_bytes(tampered_model_bytes("huge-metadata"))
    reads = []
    real = onnx_meta._entry
    monkeypatch.setattr(onnx_meta, "_entry", lambda buf: reads.append(len(buf)) or real(buf))
    with pytest.raises(QuasarError, match=r"a metadata entry of \d+ bytes is over the 65536-byte limit"):
        load_model_info(p)
    assert all(n <= 65536 for n in reads)


def test_nan_weights_are_refused_with_a_valid_digest(tmp_path):
    p = tmp_path / "nan.onnx"
    p.write_bytes(nan_weights_model_bytes())
    with pytest.raises(QuasarError, match="initializer 'conv_w' holds NaN values") as e:
        load_model_info(p)
    assert "\n" not in str(e.value)


def test_model_fifo_is_refused_without_blocking(tmp_path):
    p = tmp_path / "model.fifo"
    os.mkfifo(p)
    with pytest.raises(QuasarError, match="not a regular file"):
        load_model_info(p)  # before the fix: open() blocks forever waiting for a writer
