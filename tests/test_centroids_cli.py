"""`quasar centroids build/info/build-default` end to end, text anchors, and one-line errors."""

import json

import numpy as np
import pytest

from quasar.centroids.pack import CentroidPack
from quasar.cli import main


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_build_from_folders_then_info_then_merge(tmp_path, anchor_photos, capsys):
    import cv2

    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for p in anchor_photos[:3]:
        img = cv2.imread(p.path)
        cv2.imwrite(str(good / (p.name.replace("/", "_") + ".png")), img)
        cv2.imwrite(str(bad / (p.name.replace("/", "_") + ".jpg")), cv2.GaussianBlur(img, (0, 0), 5))
    out = tmp_path / "q.qpack.json"
    rc, stdout, _ = _run(["centroids", "build", "--good", str(good), "--bad", str(bad), "--size", "128",
                          "--policy", "native", "--head", "quality", "-o", str(out)], capsys)
    assert rc == 0 and "heads ['quality']" in stdout
    pack = CentroidPack.load(out)
    assert pack.heads[0].anchors["good"] == 3 and pack.preprocess.size == 128
    # A second head for the same encoder and spec merges into the pack.
    rc, _, _ = _run(["centroids", "build", "--good", str(bad), "--bad", str(good), "--size", "128", "--policy", "native",
                     "--head", "blurry", "--aggregation", "kmeans", "-k", "2", "--merge-into", str(out), "-o", str(out)], capsys)
    assert rc == 0 and CentroidPack.load(out).head_names == ["quality", "blurry"]
    rc, stdout, _ = _run(["centroids", "info", str(out)], capsys)
    assert rc == 0 and "head 'blurry'" in stdout and "kmeans" in stdout
    rc, stdout, _ = _run(["centroids", "info", "--json", str(out)], capsys)
    assert json.loads(stdout)["heads"][1]["aggregation"]["k"] == 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc, _, err = _run(["centroids", "info", str(tmp_path / "nope.json")], capsys)
    assert rc == 2 and err.count("\n") == 1 and "no such pack file" in err
    rc, _, err = _run(["centroids", "build", "--good", str(tmp_path), "-o", str(tmp_path / "x.json")], capsys)
    assert rc == 2 and "--good needs --bad" in err
    rc, _, err = _run(["centroids", "build", "--synthetic", str(tmp_path), "-o", str(tmp_path / "x.json")], capsys)
    assert rc == 2 and "no images" in err
    rc, _, err = _run(["centroids", "build", "--encoder", "bogus:x", "--synthetic", str(tmp_path), "-o", "x"], capsys)
    assert rc == 2 and "cannot create encoder" in err


@pytest.mark.slow
def test_head_for_another_encoder_is_refused(tmp_path, capsys, rn50_checkpoint):
    rc, _, _ = _run(["centroids", "build", "--encoder", f"open_clip:RN50@{rn50_checkpoint}",
                     "--text", "Good photo.", "Bad photo.", "-o", str(tmp_path / "t.json")], capsys)
    assert rc == 0
    rc, _, err = _run(["centroids", "build", "--encoder", f"open_clip:RN50@{rn50_checkpoint}", "--text", "Sharp photo.",
                       "Blurry photo.", "--head", "sharp", "--merge-into", "default", "-o", str(tmp_path / "m.json")], capsys)
    assert rc == 2 and "cannot merge a head for encoder" in err


@pytest.mark.slow
def test_text_anchors_make_a_clip_iqa_pack(tmp_path, rn50_checkpoint):
    import torch

    from quasar.centroids.build import make_pack, text_head
    from quasar.encoders import create_encoder

    enc = create_encoder(f"open_clip:RN50@{rn50_checkpoint}")
    head = text_head("quality", enc, ["Good photo."], ["Bad photo."])
    pack = make_pack(enc, [head])
    pack.save(tmp_path / "clipiqa.json")
    loaded = CentroidPack.load(tmp_path / "clipiqa.json")
    assert loaded.heads[0].anchors["kind"] == "text" and loaded.heads[0].logit_scale == 100.0
    t = torch.nn.functional.normalize(enc.encode_text(["Good photo.", "Bad photo."]), dim=-1).numpy()
    np.testing.assert_allclose(loaded.heads[0].good, t[0], atol=1e-6)
    np.testing.assert_allclose(loaded.heads[0].bad, t[1], atol=1e-6)
    with pytest.raises(ValueError, match="no text tower"):
        create_encoder("effnet-lite0").encode_text(["Good photo."])


@pytest.mark.slow
def test_build_linear_heads_with_levels_calibration(tmp_path, anchor_photos, capsys):
    """--aggregation ridge/lda on synthetic anchors: format-2 linear heads whose calibrated scores
    put the pristine photos above their strongest distortions; info and --json read them."""
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in anchor_photos[:3]:
        cv2.imwrite(str(photos / (p.name.replace("/", "_") + ".png")), cv2.imread(p.path))
    out = tmp_path / "lin.qpack.json"
    common = ["--synthetic", str(photos), "--distortions", "gaussian_blur,white_noise", "--encoder",
              "effnet-lite0+taps", "--size", "160", "--policy", "native"]
    rc, stdout, _ = _run(["centroids", "build", *common, "--aggregation", "ridge", "--head", "ridge", "-o", str(out)],
                         capsys)
    assert rc == 0
    rc, _, _ = _run(["centroids", "build", *common, "--aggregation", "lda", "--alpha", "10", "--head", "lda",
                     "--merge-into", str(out), "-o", str(out)], capsys)
    assert rc == 0
    rc, _, _ = _run(["centroids", "build", *common, "--logit-scale", "levels", "--head", "mean",
                     "--merge-into", str(out), "-o", str(out)], capsys)
    assert rc == 0
    pack = CentroidPack.load(out)
    assert pack.format_version == 2 and [h.kind for h in pack.heads] == ["linear", "linear", "centroid"]
    assert all(h.logit_scale_policy == "levels" for h in pack.heads) and pack.heads[0].bias != 0
    from quasar.centroids.distortions import distort
    from quasar.encoders import create_encoder
    from quasar.io import read_rgb
    from quasar.preprocess import preprocess

    enc = create_encoder("effnet-lite0+taps", spec=pack.preprocess)
    img = read_rgb(anchor_photos[0].path)
    import torch

    with torch.no_grad():
        e = np.stack([enc(torch.from_numpy(preprocess(x, pack.preprocess))[None]).numpy()[0]
                      for x in (img, distort(img, "gaussian_blur", 5), distort(img, "white_noise", 5))])
    scores = pack.score_embeddings(e)[0]
    assert np.all(scores[0] > scores[1:].max(axis=0)), scores
    rc, stdout, _ = _run(["centroids", "info", str(out)], capsys)
    assert rc == 0 and "linear, method ridge" in stdout and "format    2" in stdout
    rc, stdout, _ = _run(["centroids", "info", "--json", str(out)], capsys)
    assert json.loads(stdout)["heads"][0]["weight"]["shape"] == [pack.embed_dim]
