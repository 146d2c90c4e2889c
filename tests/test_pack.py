import json

import numpy as np
import pytest

from quasar.centroids.pack import CentroidPack, Head, PackError
from quasar.preprocess import PreprocessSpec

SPEC = PreprocessSpec(policy="native", size=512, size_multiple=32)


def _pack(name="quality", enc="effnet-lite0", dim=8, seed=0):
    rng = np.random.default_rng(seed)
    h = Head(name, rng.normal(size=dim).astype(np.float32), rng.normal(size=dim).astype(np.float32), 20.0,
             aggregation={"method": "mean"}, anchors={"good": 3, "bad": 9})
    return CentroidPack(enc, SPEC, [h])


def test_round_trip_is_exact_and_json(tmp_path):
    p = _pack()
    f = tmp_path / "p.qpack.json"
    h = p.save(f)
    d = json.loads(f.read_text())  # plain JSON: nothing is ever unpickled
    assert d["format"] == "quasar-centroid-pack" and d["format_version"] == 1 and d["content_hash"] == h
    q = CentroidPack.load(f)
    np.testing.assert_array_equal(q.heads[0].good, p.heads[0].good)
    assert q.preprocess == SPEC and q.encoder == "effnet-lite0" and q.content_hash == h
    m = q.centroid_matrix()
    assert m.shape == (2, 8) and np.allclose(np.linalg.norm(m, axis=1), 1)


def test_merge_and_refusals(tmp_path):
    a, b = _pack("quality"), _pack("aesthetics", seed=1)
    m = a.merge(b)
    assert m.head_names == ["quality", "aesthetics"] and m.centroid_matrix().shape == (4, 8)
    with pytest.raises(PackError, match="encoder 'dinov2-s14'"):
        a.merge(_pack("aesthetics", enc="dinov2-s14"))
    with pytest.raises(PackError, match="exists in both"):
        a.merge(_pack("quality", seed=3))
    assert a.merge(_pack("quality", seed=3), replace=True).heads[0].good[0] == _pack(seed=3).heads[0].good[0]


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(format="something-else"), "not a QUASAR centroid pack"),
        (lambda d: d.update(format_version=4), "format version 4 is not supported"),
        (lambda d: d["heads"][0].update(logit_scale=2.0), "content hash mismatch"),
        (lambda d: d["heads"][0]["good"].update(shape=[9]), "shape says"),
        (lambda d: d.pop("encoder"), "malformed pack"),
    ],
)
def test_load_refuses_bad_files(tmp_path, edit, match):
    f = tmp_path / "p.json"
    _pack().save(f)
    d = json.loads(f.read_text())
    edit(d)
    f.write_text(json.dumps(d))
    with pytest.raises(PackError, match=match):
        CentroidPack.load(f)


def test_load_refuses_non_json_and_missing(tmp_path):
    f = tmp_path / "x.json"
    f.write_bytes(b"\x80\x04\x95 pickle bytes")
    with pytest.raises(PackError, match="not a JSON centroid pack"):
        CentroidPack.load(f)
    with pytest.raises(PackError, match="no such pack"):
        CentroidPack.load(tmp_path / "missing.json")


def test_validate_rejects_nan_and_duplicates(tmp_path):
    p = _pack()
    p.heads[0].good[0] = np.nan
    with pytest.raises(PackError, match="NaN"):
        p.save(tmp_path / "n.json")
    q = _pack()
    q.heads.append(q.heads[0])
    with pytest.raises(PackError, match="duplicate"):
        q.validate()


def test_default_pack_ships():
    p = CentroidPack.load("default")
    fams = ["sharpness", "noise", "compression", "exposure", "color", "spatial", "optics"]
    assert p.encoder == "effnet-lite0+taps" and p.embed_dim == 4198 and p.format_version == 3
    assert p.output_names == [*(f"quality.{f}" for f in fams), *fams, "quality"]
    assert [p.output_names[i] for i in p.explain_plan()] == fams
    assert all(h.anchors["kind"] == "synthetic" and h.logit_scale_policy == "levels" for h in p.heads)


def _v2_pack() -> CentroidPack:
    rng = np.random.default_rng(1)
    base = _pack("sharpness", seed=4)
    heads = [base.heads[0],
             Head("noise", None, None, 12.0, kind="linear", bias=-0.02, weight=rng.normal(size=8).astype(np.float32)),
             Head("quality", None, None, 0.9, kind="combine", bias=0.3,
                  combine={"rule": "softmin", "of": ["sharpness", "noise"]})]
    return CentroidPack(base.encoder, base.preprocess, heads)


def test_format_2_round_trip(tmp_path):
    """Linear and combine heads (format 2) survive save/load bit for bit; v1-only packs stay version 1."""
    p = _v2_pack()
    assert p.format_version == 2 and _pack().format_version == 1
    f = tmp_path / "v2.json"
    h = p.save(f)
    assert json.loads(f.read_text())["format_version"] == 2
    q = CentroidPack.load(f)
    assert q.content_hash == h and q.output_names == ["sharpness", "noise", "quality"]
    np.testing.assert_array_equal(q.head_weights(), p.head_weights())
    np.testing.assert_array_equal(q.head_biases(), np.array([0.0, -0.02, 0.3], np.float32))
    assert q.combine_plan() == [("softmin", [0, 1])]
    e = np.random.default_rng(2).normal(size=(4, 8))
    s, m = q.score_embeddings(e)
    assert s.shape == m.shape == (4, 3)
    # softmin lies below the smallest family logit, and its score is sigmoid(scale * margin)
    fam_logits = m[:, :2] * q.logit_scales()[:2]
    assert np.all(m[:, 2] - 0.3 <= fam_logits.min(1) + 1e-6)
    np.testing.assert_allclose(s[:, 2], 1 / (1 + np.exp(-q.logit_scales()[2] * m[:, 2])), rtol=1e-6)


@pytest.mark.parametrize("combine,match", [
    ({"rule": "max", "of": ["sharpness"]}, "combine needs a rule"),
    ({"rule": "min", "of": ["nope"]}, "combine needs a rule"),
    ({"rule": "min", "of": []}, "combine needs a rule"),
])
def test_combine_heads_are_validated(combine, match):
    p = _v2_pack()
    p.heads[2].combine = combine
    with pytest.raises(PackError, match=match):
        p.validate()
