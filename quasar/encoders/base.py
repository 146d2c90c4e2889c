"""The encoder contract shared by centroid building, export and the torch backend.

An :class:`Encoder` takes what the runtime produces, uint8 images in NHWC layout (channel order per
its :class:`~quasar.preprocess.PreprocessSpec`), and returns raw (unnormalised) embeddings [N, D].
The 0..255 -> 0..1 scaling, the NHWC -> NCHW transpose and mean/std live *inside* ``forward`` so that
the exported ONNX graph contains them and the runtime only decodes and resizes.
"""

from __future__ import annotations

import torch
from torch import nn

from quasar.preprocess import PreprocessSpec


class Encoder(nn.Module):
    """A frozen image encoder with its preprocessing spec.

    Args:
        backbone: maps normalised float NCHW images to [N, D] features.
        spec: the preprocessing the backbone expects (also stored in packs and graphs).
        encoder_id: canonical id, e.g. ``effnet-lite0`` or ``open_clip:RN50*@openai``.
        embed_dim: D.
        dynamic_size: whether the backbone accepts any input height/width (CNNs, RN50*, DINOv2 with
            interpolated position embeddings); exporters make H and W dynamic only then.
        text_model: for CLIP-style encoders, an object with ``encode_text(list[str]) -> Tensor``.
    """

    def __init__(self, backbone: nn.Module, spec: PreprocessSpec, encoder_id: str, embed_dim: int,
                 dynamic_size: bool, text_model=None) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.spec = spec
        self.encoder_id = encoder_id
        self.embed_dim = int(embed_dim)
        self.dynamic_size = dynamic_size
        self.text_model = text_model
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

    def set_spec(self, spec: PreprocessSpec) -> None:
        """Use another resize policy; mean/std must match what the backbone was trained with."""
        if tuple(spec.mean) != tuple(self.spec.mean) or tuple(spec.std) != tuple(self.spec.std):
            raise ValueError(f"{self.encoder_id}: the backbone needs mean={self.spec.mean} std={self.spec.std}")
        if spec.fixed_size is False and not self.dynamic_size:
            raise ValueError(f"{self.encoder_id} takes a fixed input size; use the center_crop policy")
        self.spec = spec

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> normalised float NCHW (one fused multiply-add per pixel)."""
        x = x.permute(0, 3, 1, 2).to(self.mean.dtype)
        return (x - self.mean) * self.inv_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        if self.text_model is None:
            raise ValueError(f"{self.encoder_id} has no text tower; text anchors need a CLIP-style model")
        return self.text_model.encode_text(prompts)
