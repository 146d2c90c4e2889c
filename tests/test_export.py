"""Fused ONNX export: fp32 parity with the torch FusedScorer on real photos, the contract, fp16, CLI.

Encoders: effnet-lite0 and dinov2-s14 with their real weights; open_clip RN50*, RN50 and ViT-B-32
with random weights saved to a checkpoint and loaded by path (the real open_clip loading code; the
pretrained tags would need the network).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from scipy.stats import spearmanr
from test_export_helpers import batch_at, families_pack, load_rgb, ort_session, photo_pack

from quasar.centroids.pack import CentroidPack
from quasar.contract import (
    COMBINE_KEY,
    FORMAT,
    FORMAT_VERSION,
    HEAD_WEIGHTS_INITIALIZER,
    KEYS,
    LOGIT_SCALES_INITIALIZER,
    parse_metadata,
)
from quasar.encoders import create_encoder
from quasar.errors import QuasarError
from quasar.export.fused import FusedScorer, build_fused
from quasar.export.graph import op_types
from quasar.export.metadata import check_io, load_info, read_onnx_metadata
from quasar.export.onnx_export import export_onnx

pytestmark = pytest.mark.slow  # every test here exports real models (module fixtures)

TOL = 1e-5

# name -> (encoder id template, spec size override or None, open_clip arch needing a checkpoint)
CASES = {
    "effnet-lite0": ("effnet-lite0", 320, None),
    "effnet-taps-v2": ("effnet-lite0+taps", 256, None),  # multi-layer embedding, format-2 heads
    "rn50-star": ("open_clip:RN50*@{ckpt}", 288, "RN50"),
    "vit-b-32": ("open_clip:ViT-B-32@{ckpt}", None, "ViT-B-32"),
    "dinov2-s14": ("dinov2-s14", 224, None),
    "rn50": ("open_clip:RN50@{ckpt}", None, "RN50"),
}


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory):
    """Random-init open_clip checkpoints (fp16 state dicts: half the bytes; loading casts to fp32)."""
    made: dict[str, str] = {}

    def get(arch: str) -> str:
        if arch not in made:
            import open_clip

            torch.manual_seed(0)
            model = open_clip.create_model(arch, pretrained=None)
            path = str(tmp_path_factory.mktemp("clip") / f"{arch}-random.pt")
            torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
            made[arch] = path
        return made[arch]

    return get


@dataclass
class Case:
    name: str
    encoder_id: str
    fused: FusedScorer
    pack: CentroidPack
    onnx_path: str

    @property
    def dynamic(self) -> bool:
        return self.fused.encoder.dynamic_size and not self.pack.preprocess.fixed_size


def make_case(name: str, tmp_dir, anchor_photos, clip_checkpoint) -> Case:
    template, size, arch = CASES[name]
    eid = template.format(ckpt=clip_checkpoint(arch)) if arch else template
    encoder = create_encoder(eid)
    if size:
        encoder.set_spec(dataclasses.replace(encoder.spec, size=size))
    pack = photo_pack(encoder, load_rgb(anchor_photos, 2), encoder.spec)
    if name == "effnet-taps-v2":
        pack = families_pack(pack)
    path = export_onnx(eid, pack, os.path.join(tmp_dir, f"{name}.onnx"))
    return Case(name, eid, build_fused(encoder, pack), pack, path)


@pytest.fixture(scope="module")
def effnet(tmp_path_factory, anchor_photos) -> Case:
    """Shared by the parity case and the fp16/CLI/default-model tests (built once)."""
    return make_case("effnet-lite0", str(tmp_path_factory.mktemp("effnet")), anchor_photos, None)


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory, anchor_photos, clip_checkpoint) -> Case:
    if request.param == "effnet-lite0":
        return request.getfixturevalue("effnet")
    return make_case(request.param, str(tmp_path_factory.mktemp(request.param)), anchor_photos, clip_checkpoint)


def second_shape(spec) -> tuple[int, int]:
    m = spec.size_multiple
    return m * -(-200 // m), m * -(-280 // m)


def test_fp32_matches_torch(case: Case, heldout_photos):
    """ORT CPU fp32 == torch FusedScorer to 1e-5 at batch 1 and 7 (two input sizes if dynamic)."""
    spec = case.pack.preprocess
    imgs = load_rgb(heldout_photos, 7)
    x1 = batch_at(imgs[:1], spec, None)
    x7 = batch_at(imgs, spec, second_shape(spec) if case.dynamic else None)
    if case.dynamic:
        assert x1.shape[1:3] != x7.shape[1:3]
    with torch.no_grad():  # torch before ORT: ORT's spinning worker threads slow torch down
        refs = [tuple(t.numpy() for t in case.fused(torch.from_numpy(x))) for x in (x1, x7)]
    sess = ort_session(case.onnx_path)
    k = len(case.pack.heads)
    all_scores = []
    for x, (s_ref, m_ref) in zip((x1, x7), refs, strict=True):
        scores, margins = sess.run(None, {"images": x})
        assert scores.shape == margins.shape == (x.shape[0], k)
        assert scores.dtype == margins.dtype == np.float32
        ds, dm = np.abs(scores - s_ref).max(), np.abs(margins - m_ref).max()
        print(f"{case.name} {x.shape}: max |score diff| {ds:.2e}, max |margin diff| {dm:.2e}")
        assert ds <= TOL and dm <= TOL
        all_scores.append(scores)
    s = np.concatenate(all_scores)
    assert ((s > 0.01) & (s < 0.99)).mean() > 0.5, f"scores saturate: {s}"
    assert s.std(axis=0).min() > 1e-4, "scores do not vary between photos"


def test_graph_contract(case: Case, tmp_path):
    """Metadata, I/O, named head initializers, plain ONNX ops (no _native_multi_head_attention)."""
    onnx.checker.check_model(case.onnx_path)
    model = onnx.load(case.onnx_path)
    ops = op_types(model)
    assert not any("::" in op for op in ops), f"non-standard ops: {sorted(o for o in ops if '::' in o)}"
    assert not any("attention" in op.lower() or op == "ATen" for op in ops), sorted(ops)
    info = load_info(case.onnx_path)
    assert info.encoder == case.encoder_id and info.pack_hash == case.pack.content_hash
    assert list(info.heads) == list(case.pack.output_names) and info.precision == "fp32"
    np.testing.assert_allclose(info.logit_scales, case.pack.logit_scales(), rtol=1e-6)
    assert info.dynamic_size == case.dynamic
    x = model.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    assert x.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    size = case.pack.preprocess.size
    assert dims == (["batch", "height", "width", 3] if case.dynamic else ["batch", size, size, 3])
    first = [n for n in model.graph.node if "images" in n.input]
    assert [n.op_type for n in first] == ["Cast"], "TensorRT needs the uint8 input to go into a Cast first"
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits[HEAD_WEIGHTS_INITIALIZER], case.pack.head_weights())
    np.testing.assert_array_equal(inits[LOGIT_SCALES_INITIALIZER], case.pack.logit_scales())
    if case.name == "rn50":  # fixed size (attention pool with a 7x7 position embedding): --size is refused
        with pytest.raises(QuasarError, match="does not run at 256x256 px .*leave out --size"):
            export_onnx(case.encoder_id, case.pack, tmp_path / "m.onnx", size=256)


def test_metadata_round_trip(tmp_path):
    """write_metadata/read_metadata/parse_metadata, without torch or a real model."""
    from quasar.contract import MetadataError, fused_metadata
    from quasar.export.metadata import write_metadata
    from quasar.preprocess import PreprocessSpec

    spec = PreprocessSpec(policy="native", size=512, size_multiple=32)
    meta = fused_metadata(encoder="effnet-lite0", pack_hash="sha256:" + "ab" * 32, heads=["quality", "blur"],
                          logit_scales=[41.5, 12.0], preprocess=spec.to_dict(), dynamic_size=True, precision="int8",
                          project_version="9.9")
    assert set(meta) == set(KEYS) | {COMBINE_KEY} and meta["quasar.format"] == FORMAT
    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    model.metadata_props.add(key="other", value="kept")
    model.metadata_props.add(key="quasar.precision", value="stale")
    write_metadata(model, meta)
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    back = read_onnx_metadata(path)
    assert back["other"] == "kept" and {k: back[k] for k in meta} == meta
    info = parse_metadata(back, required=KEYS)
    assert info.heads == ("quality", "blur") and info.logit_scales == (41.5, 12.0) and info.combine == ()
    assert PreprocessSpec.from_dict(info.preprocess) == spec and info.dynamic_size and info.precision == "int8"
    with pytest.raises(MetadataError, match="newer"):
        parse_metadata({**meta, "quasar.format_version": str(FORMAT_VERSION + 1)})
    with pytest.raises(MetadataError, match="not a QUASAR fused model"):
        parse_metadata({})
    with pytest.raises(MetadataError, match="missing quasar.heads"):
        parse_metadata({k: v for k, v in meta.items() if k != "quasar.heads"})
    with pytest.raises(MetadataError, match="missing quasar.precision"):
        parse_metadata({k: v for k, v in meta.items() if k != "quasar.precision"}, required=KEYS)
    with pytest.raises(MetadataError, match="unknown precision"):
        parse_metadata({**meta, "quasar.precision": "int4"})
    with pytest.raises(MetadataError, match="quasar.combine entry"):
        parse_metadata({**meta, COMBINE_KEY: '[["max", [0]]]'})
    with pytest.raises(MetadataError, match="quasar.combine entry"):
        parse_metadata({**meta, COMBINE_KEY: '[["min", [1]]]'})  # column 1 is the combine head itself
    assert parse_metadata({**meta, COMBINE_KEY: '[["min", [0]]]'}).combine == (("min", (0,)),)
    with pytest.raises(MetadataError, match="input must be uint8|expected one input"):
        check_io(model)


def test_build_fused_refuses_foreign_pack(effnet: Case, tmp_path):
    foreign = CentroidPack("open_clip:RN50*@openai", effnet.pack.preprocess, effnet.pack.heads)
    with pytest.raises(QuasarError, match="built for encoder 'open_clip:RN50\\*@openai', not 'effnet-lite0'"):
        build_fused(effnet.fused.encoder, foreign)
    with pytest.raises(QuasarError, match="built for encoder"):
        export_onnx("effnet-lite0", foreign, tmp_path / "never.onnx")
    assert os.listdir(tmp_path) == []


def test_sigmoid_of_margin_is_two_way_softmax(effnet: Case, heldout_photos):
    x = batch_at(load_rgb(heldout_photos, 3), effnet.pack.preprocess, (256, 320))
    with torch.no_grad():
        scores, margins = effnet.fused(torch.from_numpy(x))
        e = torch.nn.functional.normalize(effnet.fused.encoder(torch.from_numpy(x)), dim=-1)
    cos = e.numpy().astype(np.float64) @ effnet.pack.centroid_matrix().T.astype(np.float64)
    logits = cos.reshape(len(x), -1, 2) * effnet.pack.logit_scales()[None, :, None]
    p_good = np.exp(logits[..., 0]) / np.exp(logits).sum(-1)
    np.testing.assert_allclose(scores.numpy(), p_good, atol=1e-5)
    np.testing.assert_allclose(margins.numpy(), cos[:, 0::2] - cos[:, 1::2], atol=1e-5)


def test_fp16_variant(effnet: Case, heldout_photos, tmp_path):
    """fp16 weights/compute, same uint8 -> float32 I/O; ORT CPU runs it (via inserted Casts)."""
    path = export_onnx(None, effnet.pack, tmp_path / "fp16.onnx", precision="fp16")
    model = onnx.load(path)
    info = load_info(path)
    assert info.precision == "fp16"
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert types[HEAD_WEIGHTS_INITIALIZER] == onnx.TensorProto.FLOAT  # the head stays fp32
    conv_w = [types[n.input[1]] for n in model.graph.node if n.op_type == "Conv"]
    assert conv_w and all(t == onnx.TensorProto.FLOAT16 for t in conv_w)
    assert os.path.getsize(path) < 0.6 * os.path.getsize(effnet.onnx_path)
    imgs = load_rgb(heldout_photos, 8)
    x = batch_at(imgs + [np.ascontiguousarray(img[::-1]) for img in imgs], effnet.pack.preprocess, (256, 352))
    ref = ort_session(effnet.onnx_path).run(None, {"images": x})[0]
    half = ort_session(path).run(None, {"images": x})[0]
    d = np.abs(half - ref)
    print(f"fp16 vs fp32: mean |score diff| {d.mean():.2e}, max {d.max():.2e}")
    assert d.max() < 0.02
    assert min(spearmanr(half[:, k], ref[:, k])[0] for k in range(ref.shape[1])) > 0.995


def test_size_override(effnet: Case, tmp_path):
    path = export_onnx("effnet-lite0", effnet.pack, tmp_path / "s.onnx", size=256)
    info = load_info(path)
    assert info.preprocess["size"] == 256 and info.pack_hash == effnet.pack.content_hash
    with pytest.raises(QuasarError, match="below the encoder's smallest input"):
        export_onnx("effnet-lite0", effnet.pack, tmp_path / "t.onnx", size=16)


# --------------------------------------------------------------------------- CLI


def run_cli(argv, capsys) -> tuple[int, str, str]:
    from quasar.cli import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def effnet_pack_file(effnet, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("packs") / "effnet.qpack.json")
    effnet.pack.save(path)
    return path


def test_cli_export_onnx(effnet_pack_file, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    rc, stdout, err = run_cli(["export", "onnx", "--pack", effnet_pack_file, "-o", out, "--size", 256], capsys)
    assert rc == 0, err
    assert str(out) in stdout and "effnet-lite0" in stdout
    assert load_info(out).preprocess["size"] == 256


@pytest.mark.parametrize("problem", ["foreign pack", "missing pack", "no output dir", "output is a dir",
                                     "not a pack", "bad size", "calib dir for fp32", "missing calib dir"])
def test_cli_export_onnx_errors(problem, effnet_pack_file, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    args = {"pack": effnet_pack_file, "out": out, "extra": []}
    if problem == "foreign pack":
        args["extra"] = ["--encoder", "dinov2-s14"]
    elif problem == "missing pack":
        args["pack"] = tmp_path / "nope.qpack.json"
    elif problem == "no output dir":
        args["out"] = tmp_path / "no" / "such" / "dir" / "m.onnx"
    elif problem == "output is a dir":
        args["out"] = tmp_path
    elif problem == "not a pack":
        bad = tmp_path / "bad.qpack.json"
        bad.write_text(json.dumps({"format": "something-else"}))
        args["pack"] = bad
    elif problem == "bad size":
        args["extra"] = ["--size", "8"]
    elif problem == "calib dir for fp32":
        args["extra"] = ["--calib-dir", tmp_path]
    elif problem == "missing calib dir":
        args["extra"] = ["--precision", "int8", "--calib-dir", tmp_path / "none"]
    rc, _, err = run_cli(["export", "onnx", "--pack", args["pack"], "-o", args["out"], *args["extra"]], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("quasar: error: "), err
    assert not os.path.exists(out)
    print(problem, "->", lines[0])


# --------------------------------------------------------------------------- default model


def test_default_pack_model(effnet_pack_file, tmp_path, monkeypatch, capsys):
    import quasar.centroids.pack as pack_module
    from quasar.export import default

    monkeypatch.setenv("QUASAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pack_module, "default_pack_path", lambda: effnet_pack_file)
    pack = CentroidPack.load(effnet_pack_file)
    path = default.default_pack_model()
    assert path == str(tmp_path / "cache" / "models" / f"default-{pack.content_hash[7:19]}-fp32.onnx")
    assert load_info(path).pack_hash == pack.content_hash
    with open(path, "r+b") as f:  # a truncated cache file is exported again, not used
        f.truncate(1000)
    assert default.default_pack_model() == path and load_info(path).precision == "fp32"
    mtime = os.path.getmtime(path)
    monkeypatch.setattr("quasar.export.onnx_export.export_onnx", lambda *a, **k: pytest.fail("exported twice"))
    assert default.main([]) == 0
    assert capsys.readouterr().out.strip() == path and os.path.getmtime(path) == mtime

    monkeypatch.setattr(pack_module, "default_pack_path", lambda: str(tmp_path / "missing.qpack.json"))
    assert default.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such pack file" in err[0]


def test_score_explain_shows_the_heads_a_combine_head_summarises(tmp_path, anchor_photos, capsys):
    """A format-2 model with combine heads: `quasar score` writes the combine heads; --explain adds
    the heads they are computed from, with the same values the torch module gives."""
    from quasar.cli import main

    case = make_case("effnet-taps-v2", str(tmp_path), anchor_photos, None)
    files = [p.path for p in anchor_photos[:2]]
    out, out_x = tmp_path / "s.csv", tmp_path / "x.csv"
    assert main(["score", *files, "--model", case.onnx_path, "-o", str(out), "-q"]) == 0
    assert main(["score", *files, "--model", case.onnx_path, "-o", str(out_x), "--explain", "-q"]) == 0
    header = out.read_text().splitlines()[0].split(",")
    header_x = out_x.read_text().splitlines()[0].split(",")
    assert header == ["path", "quality", "average", "error"]
    assert header_x == ["path", *case.pack.output_names, "reason", "error"] and len(header_x) == 7
    rows = [ln.split(",") for ln in out_x.read_text().splitlines()[1:]]
    rows_s = [ln.split(",") for ln in out.read_text().splitlines()[1:]]
    from quasar.runtime.explain import reason

    families = case.pack.output_names[:2]  # the heads the combine heads summarise
    for r, rs in zip(rows, rows_s, strict=True):
        assert r[3:5] == rs[1:3], "the combine heads are the same with and without --explain"
        assert r[5] == reason(dict(zip(families, map(float, r[1:3]), strict=True)), families)
