"""The baseline: the scoring pipeline users write today, in eager PyTorch, with the same model.

Same encoder (the pack's), same default-pack heads and the same resize policy (via
:func:`quasar.preprocess.target_shape`), but the usual tools: PIL decoding at full resolution and
PIL's antialiased resize (``Image.open`` + ``ImageOps.exif_transpose``, then ``resize``: the one
reference pipeline of this project, :func:`quasar.testing.reference_preprocess`, which the tests
also use), torchvision's ``ToTensor`` and ``Normalize``, and an eager ``nn.Module`` whose scoring
head is written in torch (:class:`quasar.export.fused.ScoringHead`).

Three ways to run it, as users do:

* :meth:`EagerPipeline.score_one`: one image at a time (what pyiqa-style metric wrappers do).
* :meth:`EagerPipeline.score_batched`: batches of 8 in the main thread. Batches hold images of the
  *same* preprocessed shape (buckets, flushed when full and at the end), the same rule as the QUASAR
  runtime, so batching never changes a score and the comparison is like for like. (Resizing every
  image to one fixed shape would be faster to write but changes the model's input.)
* :meth:`EagerPipeline.score_dataloader`: the same buckets through a ``torch.utils.data.DataLoader``
  with worker processes, so decoding overlaps inference: the strongest eager baseline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quasar.preprocess import PreprocessSpec, target_shape
from quasar.testing import reference_preprocess

EXIF_ORIENTATION = 0x0112


class EagerModel(nn.Module):
    """Backbone + head. ``forward`` takes normalised float NCHW (torchvision's output)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean, std) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean255", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std255", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.backbone(x).float(), dim=-1))[0]

    def forward_uint8(self, nhwc: torch.Tensor) -> torch.Tensor:
        """Model-only input: the uint8 NHWC batch the QUASAR runtime feeds its graph."""
        x = (nhwc.permute(0, 3, 1, 2).float() - self.mean255) / self.std255
        return self.forward(x)


def build_eager_model(encoder_id: str | None = None, pack: str = "default") -> tuple[EagerModel, PreprocessSpec]:
    """The eager model and its spec (the pack's; the encoder too unless given), in eval mode on the CPU."""
    from quasar.centroids.pack import CentroidPack
    from quasar.encoders.registry import create_encoder
    from quasar.export.fused import ScoringHead

    p = CentroidPack.load(pack)
    enc = create_encoder(encoder_id or p.encoder, spec=p.preprocess)
    model = EagerModel(enc.backbone, ScoringHead.from_pack(p), p.preprocess.mean, p.preprocess.std)
    return model.eval(), p.preprocess


def upright_size(im) -> tuple[int, int]:
    """(height, width) of a lazily opened PIL image after ``exif_transpose`` (header only, no decode)."""
    w, h = im.size
    try:
        orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:
        orientation = 1
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def transform_for(spec: PreprocessSpec):
    """torchvision's ``ToTensor`` + ``Normalize`` with the spec's mean/std: uint8 HxWx3 -> float CHW."""
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])


def load_tensor(path: str | os.PathLike, spec: PreprocessSpec) -> torch.Tensor:
    """Normalised float CHW tensor of one file: the reference pixels
    (:func:`quasar.testing.reference_preprocess`: PIL decode, PIL resize, crop) through torchvision."""
    return transform_for(spec)(reference_preprocess(path, spec))


class _BucketDataset(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str], spec: PreprocessSpec) -> None:
        self.paths, self.spec = list(paths), spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        return i, load_tensor(self.paths[i], self.spec)


def _collate(items: list[tuple[int, torch.Tensor]]) -> tuple[list[int], torch.Tensor]:
    return [i for i, _ in items], torch.stack([t for _, t in items])


def shape_buckets(paths: Sequence[str], spec: PreprocessSpec, batch_size: int) -> list[list[int]]:
    """Index batches of equal preprocessed shape, in order of first appearance (headers only)."""
    from PIL import Image

    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            rh, rw, _ = target_shape(*upright_size(im), spec)
        groups.setdefault((rh, rw), []).append(i)
    return [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]


class EagerPipeline:
    """Files -> P(good) [K] per file, with :class:`EagerModel` (see the module docstring)."""

    def __init__(self, model: EagerModel, spec: PreprocessSpec) -> None:
        self.model, self.spec = model, spec

    @torch.inference_mode()
    def score_one(self, path: str) -> np.ndarray:
        return self.model(load_tensor(path, self.spec).unsqueeze(0))[0].numpy()

    @torch.inference_mode()
    def score_batched(self, paths: Sequence[str], batch_size: int = 8) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(paths)
        buckets: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}

        def flush(shape: tuple[int, ...]) -> None:
            entries = buckets.pop(shape)
            scores = self.model(torch.stack([t for _, t in entries])).numpy()
            for (i, _), s in zip(entries, scores, strict=True):
                out[i] = s

        for i, p in enumerate(paths):
            t = load_tensor(p, self.spec)
            bucket = buckets.setdefault(tuple(t.shape), [])
            bucket.append((i, t))
            if len(bucket) >= batch_size:
                flush(tuple(t.shape))
        for shape in list(buckets):
            flush(shape)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def score_dataloader(self, paths: Sequence[str], batch_size: int = 8, workers: int = 2) -> list[np.ndarray]:
        loader = torch.utils.data.DataLoader(_BucketDataset(paths, self.spec),
                                             batch_sampler=shape_buckets(paths, self.spec, batch_size),
                                             num_workers=workers, collate_fn=_collate)
        out: list[np.ndarray | None] = [None] * len(paths)
        for idx, x in loader:
            for i, s in zip(idx, self.model(x).numpy(), strict=True):
                out[i] = s
        return out  # type: ignore[return-value]
