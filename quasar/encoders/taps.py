"""Multi-layer embeddings: channel statistics of intermediate feature maps, one forward pass.

The pooled output of an ImageNet classifier is trained to be invariant to brightness, colour and
contrast, and a network's last stage mostly describes content. Those are exactly the properties a
quality metric must see. Early stages still carry them: noise and JPEG blocking raise the spatial
variance of the first feature maps, blur lowers it, exposure and colour casts move their means.

A :class:`TappedBackbone` therefore reads several stages of the frozen backbone (forward hooks, so
the backbone itself is untouched) and describes each by the per-channel **mean and standard
deviation** over its spatial positions (or tokens). Each statistic of each stage is one block, L2
normalised so that every stage has the same say whatever its width or activation range; the blocks
are concatenated. An optional block of input colour statistics (per-channel mean and standard
deviation of the 0..1 RGB pixels, not normalised) carries absolute exposure and saturation.

The whole thing is ordinary tensor arithmetic (ReduceMean, Mul, Sqrt, concatenation), so it becomes
part of the same exported graph as the backbone: no extra forward pass, and the runtime is
unchanged. Encoder ids select it with the suffix ``+taps`` (``effnet-lite0+taps``).

The QUASAR method (centroids of good and bad anchor embeddings, scores from cosine similarity) is
unchanged; only the representation is richer. See Ilyin et al., "QUASAR: Quality and Aesthetics
Scoring with Advanced Representations" (2025), for the method.
"""

from __future__ import annotations

import torch
from torch import nn

STATS_EPS = 1e-6
BLOCK_EPS = 1e-12


def _channel_stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of a [N, C, H, W] map or of [N, T, C] tokens."""
    t = t.float()
    if t.ndim == 4:
        dims = (2, 3)
    elif t.ndim == 3:
        dims = (1,)
    else:
        raise ValueError(f"cannot take channel statistics of a tensor of shape {tuple(t.shape)}")
    mean = t.mean(dim=dims)
    var = (t * t).mean(dim=dims) - mean * mean
    return mean, torch.sqrt(torch.clamp(var, min=0.0) + STATS_EPS)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True) + BLOCK_EPS)


class TappedBackbone(nn.Module):
    """``backbone`` plus forward hooks on ``taps`` (module names); ``forward(x) -> [N, D]``.

    Args:
        backbone: the frozen feature extractor; its own output is ignored unless a tap names it.
        taps: dotted module names whose outputs are described (``blocks.2``, ``visual.layer3``).
        input_stats: add the 6 input colour statistics (see :meth:`set_normalisation`).
    """

    def __init__(self, backbone: nn.Module, taps: list[str], input_stats: bool = True) -> None:
        super().__init__()
        if not taps:
            raise ValueError("a tapped backbone needs at least one tap")
        self.backbone = backbone
        self.taps = list(taps)
        self.input_stats = input_stats
        modules = dict(backbone.named_modules())
        missing = [t for t in self.taps if t not in modules]
        if missing:
            raise ValueError(f"taps not found in the backbone: {missing}")
        self._seen: dict[str, torch.Tensor] = {}
        self.layout: list[tuple[str, int, int]] = []  # (block name, start, end), set by the first forward
        for name in self.taps:
            modules[name].register_forward_hook(self._hook(name))
        self.register_buffer("pix_mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("pix_std", torch.ones(1, 3, 1, 1))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The encoder's per-channel mean/std (0..1 units), to recover pixels for the input block."""
        self.pix_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.pix_std.copy_(torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            self._seen[name] = output

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._seen = {}
        self.backbone(x)
        blocks, names = [], []
        if self.input_stats:
            pix = x * self.pix_std + self.pix_mean  # back to 0..1
            m, s = _channel_stats(pix)
            blocks += [m, s]
            names += ["input.mean", "input.std"]
        for name in self.taps:
            t = self._seen.pop(name)
            if t.ndim == 3 and t.shape[0] != x.shape[0]:
                t = t.transpose(0, 1)  # open_clip's older transformers run sequence-first (LND)
            m, s = _channel_stats(t)
            blocks += [_unit(m), _unit(s)]
            names += [f"{name}.mean", f"{name}.std"]
        self._seen = {}
        if not self.layout:
            ends = [int(v) for v in torch.tensor([b.shape[1] for b in blocks]).cumsum(0)]
            self.layout = [(n, e - b.shape[1], e) for n, b, e in zip(names, blocks, ends, strict=True)]
        return torch.cat(blocks, dim=1)


def default_taps(backbone: nn.Module) -> list[str]:
    """Stage outputs to tap, found from the module tree (timm CNNs and ViTs, open_clip CNNs and ViTs)."""
    names = dict(backbone.named_modules())
    # timm EfficientNet / MobileNet: stem, every stage, head conv.
    if "conv_stem" in names and "blocks" in names:
        stages = [f"blocks.{i}" for i in range(len(names["blocks"]))]
        return ["bn1", *stages, "bn2" if "bn2" in names else stages[-1]]
    # timm ResNet-like
    if all(f"layer{i}" in names for i in range(1, 5)):
        return ["act1" if "act1" in names else "bn1", "layer1", "layer2", "layer3", "layer4"]
    # open_clip ModifiedResNet
    if all(f"visual.layer{i}" in names for i in range(1, 5)):
        return ["visual.layer1", "visual.layer2", "visual.layer3", "visual.layer4"]
    # timm ViT (DINOv2 included): every third block and the final norm.
    if "blocks" in names and "norm" in names:
        n = len(names["blocks"])
        return [f"blocks.{i}" for i in range(2, n, 3)] + ["norm"]
    # open_clip ViT
    if "visual.transformer.resblocks" in names:
        n = len(names["visual.transformer.resblocks"])
        return [f"visual.transformer.resblocks.{i}" for i in range(2, n, 3)]
    # timm models that describe their own stages
    info = getattr(backbone, "feature_info", None)
    if info is not None:
        mods = [f["module"] for f in (info if isinstance(info, list) else info.get_dicts())]
        if mods:
            return mods
    raise ValueError(f"no default taps known for {type(backbone).__name__}; name the stages to tap")


def tapped_dim(backbone: TappedBackbone, probe_size: int = 64) -> int:
    """Embedding width, from one small probe forward pass."""
    with torch.no_grad():
        return int(backbone(torch.zeros(1, 3, probe_size, probe_size)).shape[1])
