"""Encoders: real effnet-lite0 weights, open_clip checkpoints loaded by path, RN50* at any size."""

import warnings

import numpy as np
import pytest
import torch

from quasar.encoders import create_encoder, parse_encoder_id
from quasar.io import read_rgb
from quasar.preprocess import PreprocessSpec, preprocess


def test_parse_encoder_ids():
    e = parse_encoder_id("open_clip:RN50*@/tmp/x.pt")
    assert (e.family, e.name, e.weights, e.no_pos_embed) == ("open_clip", "RN50", "/tmp/x.pt", True)
    assert str(e) == "open_clip:RN50*@/tmp/x.pt"
    assert str(parse_encoder_id("timm:resnet18@/a/b.pth")) == "timm:resnet18@/a/b.pth"
    assert parse_encoder_id("effnet-lite0").family == "builtin"
    for bad in ("clip:RN50", "open_clip:", "timm:vit*@x", "nonsense"):
        with pytest.raises(ValueError):
            parse_encoder_id(bad)


def test_effnet_imagenet_top1_on_cat_photo(skimage_photo_paths):
    from quasar.encoders.registry import effnet_lite0_classifier

    model = effnet_lite0_classifier()
    img = read_rgb(skimage_photo_paths[2])  # chelsea.png, a tabby cat
    x = preprocess(img, PreprocessSpec(size=224, mean=(0.5,) * 3, std=(0.5,) * 3))
    t = (torch.from_numpy(x)[None].permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        top1 = int(model(t).argmax())
    assert 281 <= top1 <= 285, f"ImageNet class {top1} is not a domestic cat"


def test_effnet_encoder_features(skimage_photo_paths):
    enc = create_encoder("effnet-lite0")
    assert enc.embed_dim == 1280 and enc.dynamic_size and enc.spec.policy == "native"
    imgs = [preprocess(read_rgb(p), enc.spec) for p in skimage_photo_paths[:2]]
    with torch.no_grad():
        e = [enc(torch.from_numpy(x)[None]).numpy()[0] for x in imgs]
    assert e[0].shape == (1280,) and np.isfinite(e[0]).all()
    cos = float(e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1]))
    assert cos < 0.99  # different photos give different embeddings


@pytest.mark.slow
def test_open_clip_checkpoint_loads_back_by_path(rn50_checkpoint):
    a = create_encoder(f"open_clip:RN50@{rn50_checkpoint}")
    b = create_encoder(f"open_clip:RN50@{rn50_checkpoint}")
    assert a.spec.policy == "center_crop" and a.spec.size == 224 and a.embed_dim == 1024
    x = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError):
        create_encoder("open_clip:RN50@/nonexistent/ckpt.pt")


@pytest.mark.slow
def test_rn50_without_positional_embedding_takes_any_size(rn50_checkpoint):
    enc = create_encoder(f"open_clip:RN50*@{rn50_checkpoint}")
    assert enc.dynamic_size and enc.spec.policy == "native"
    assert not any("positional_embedding" in n for n, _ in enc.named_parameters())
    with torch.no_grad():
        for h, w in ((224, 224), (320, 480)):
            out = enc(torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8))
            assert out.shape == (1, 1024) and torch.isfinite(out).all()


def test_registry_dispatch_table_matches_the_names():
    from quasar.encoders import registry
    from quasar.encoders.names import BUILTIN_NAMES, FAMILY_PATTERNS

    assert registry.list_builtin() == sorted(BUILTIN_NAMES)
    assert set(registry._FAMILIES) == {"builtin", *FAMILY_PATTERNS}
    for eid in registry.list_encoders():
        if "<" not in eid:  # family patterns are placeholders, built-ins parse
            assert registry.is_encoder(eid) and str(registry.parse_encoder_id(eid)) == eid


def test_timm_needs_weights_and_random_ones_are_seeded():
    """``timm:<name>`` alone would score with new random weights each call: refused; ``@random`` is
    one fixed network (seeded), the same on every call, and leaves the caller's RNG alone."""
    with pytest.raises(ValueError, match="names no weights"):
        create_encoder("timm:test_efficientnet")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = create_encoder("timm:test_efficientnet@random")
    assert torch.equal(torch.rand(1), before)  # the global generator was not consumed
    b = create_encoder("timm:test_efficientnet@random")
    x = torch.randint(0, 255, (1, a.spec.size, a.spec.size, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_timm_checkpoint_reports_unexpected_keys(tmp_path):
    """strict=False loading used to drop a checkpoint's unknown tensors unseen: one warning lists them
    (not the classifier that num_classes=0 removes on purpose)."""
    import timm

    sd = timm.create_model("test_efficientnet", pretrained=False).state_dict()  # with its classifier
    clean = tmp_path / "clean.pth"
    torch.save(sd, clean)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_encoder(f"timm:test_efficientnet@{clean}")
    sd["extra.weight"] = torch.zeros(3)
    sd["blocks.99.scale"] = torch.ones(1)
    extra = tmp_path / "extra.pth"
    torch.save(sd, extra)
    with pytest.warns(UserWarning, match=r"2 checkpoint tensors are not part of the model and were ignored: "
                                         r"extra\.weight, blocks\.99\.scale"):
        create_encoder(f"timm:test_efficientnet@{extra}")
