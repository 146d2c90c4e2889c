"""Packs that lie: no hash, zero centroids, absurd logit scales, huge files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quasar.centroids.pack import CentroidPack, Head, PackError
from quasar.cli import main
from quasar.errors import QuasarError
from quasar.limits import MAX_PACK_BYTES
from quasar.preprocess import PreprocessSpec

SPEC = PreprocessSpec(policy="native", size=512, size_multiple=32)


def make_pack(scale: float = 20.0, good=None, dim: int = 8) -> CentroidPack:
    rng = np.random.default_rng(0)
    g = rng.normal(size=dim).astype(np.float32) if good is None else np.asarray(good, np.float32)
    return CentroidPack("effnet-lite0", SPEC, [Head("quality", g, rng.normal(size=dim).astype(np.float32), scale)])


def write(path, d: dict) -> str:
    path.write_text(json.dumps(d))
    return str(path)


def test_hash_is_required_unless_allowed(tmp_path, capsys):
    d = make_pack().to_dict()
    del d["content_hash"]
    f = write(tmp_path / "hand.json", d)
    with pytest.raises(PackError, match="hand.json: the pack has no content_hash.*--allow-unhashed"):
        CentroidPack.load(f)
    assert CentroidPack.load(f, allow_unhashed=True).head_names == ["quality"]
    assert main(["centroids", "info", f]) == 2
    assert "no content_hash" in capsys.readouterr().err
    assert main(["centroids", "info", f, "--allow-unhashed"]) == 0


def test_zero_centroid_is_refused_on_load_and_before_export(tmp_path):
    d = make_pack().to_dict()
    d["heads"][0]["bad"] = {"dtype": "float32", "shape": [8], "b64": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    del d["content_hash"]
    with pytest.raises(PackError, match=r"z.json: head 'quality': bad has zero norm"):
        CentroidPack.load(write(tmp_path / "z.json", d), allow_unhashed=True)
    pytest.importorskip("torch")
    from quasar.export.onnx_export import export_onnx

    zero = make_pack(good=np.zeros(8))
    with pytest.raises(QuasarError, match="head 'quality': good has zero norm"):
        export_onnx(None, zero, tmp_path / "m.onnx")  # a one-line error, not a RuntimeError from the graph rewrite


@pytest.mark.parametrize("scale,ok", [(1e300, False), (float("inf"), False), (0.0, False), (-5.0, False),
                                      (1000.0, True), (1000.5, False), (0.01, True)])
def test_logit_scale_range(tmp_path, scale, ok):
    d = make_pack().to_dict()
    d["heads"][0]["logit_scale"] = scale
    del d["content_hash"]
    f = tmp_path / "s.json"
    f.write_text(json.dumps(d))  # json writes Infinity for inf, which Python's reader accepts
    if ok:
        assert CentroidPack.load(f, allow_unhashed=True).heads[0].logit_scale == scale
    else:
        with pytest.raises(PackError, match=r"s.json: head 'quality': logit scale "
                                            r"(.* outside the documented range 0 < s <= 1000|must be positive and finite)"):
            CentroidPack.load(f, allow_unhashed=True)


def test_pack_file_size_is_capped_before_reading(tmp_path):
    f = tmp_path / "huge.qpack.json"
    with open(f, "wb") as fh:  # sparse: 65 MiB of nothing, no disk used
        fh.truncate(MAX_PACK_BYTES + (1 << 20))
    with pytest.raises(PackError, match=r"huge.qpack.json: the file is 65.0 MiB, over the 64 MiB limit"):
        CentroidPack.load(f)


@pytest.mark.parametrize("edit", [
    lambda d: d["heads"][0].update(name=["a"]),
    lambda d: d["heads"][0].update(anchors=[1]),
    lambda d: d.update(heads={"x": 1}),
    lambda d: d["heads"][0]["good"].update(shape="abc"),
    lambda d: d.update(encoder=7),
])
def test_malformed_packs_are_pack_errors(tmp_path, edit):
    d = make_pack().to_dict()
    edit(d)
    with pytest.raises(PackError, match="m.json"):
        CentroidPack.load(write(tmp_path / "m.json", d), allow_unhashed=True)


def test_saved_packs_pass_their_own_validation(tmp_path):
    p = make_pack(scale=41.7)
    p.save(tmp_path / "p.json")
    assert CentroidPack.load(tmp_path / "p.json").heads[0].logit_scale == pytest.approx(41.7)
    with pytest.raises(PackError, match="zero norm"):
        make_pack(good=np.zeros(8)).save(tmp_path / "z.json")
