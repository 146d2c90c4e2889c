"""The fused scorer: encoder + centroid head as one torch module, the thing every exporter traces.

One module instead of "encoder, then numpy" so that the ONNX/TensorRT graph, the torch backend and
the tests all compute the same function:

    images (uint8 NHWC) -> Encoder (0..255 scaling, mean/std, backbone) -> L2 normalise
    -> cos = e @ C.T with C the normalised centroid matrix [2K, D], rows (good_0, bad_0, good_1, ...)
    -> margins = cos_good - cos_bad [N, K] -> scores = sigmoid(logit_scale * margins) [N, K]

``sigmoid(s * (g - b))`` *is* the 2-way softmax ``exp(s g) / (exp(s g) + exp(s b))`` (divide through by
``exp(s g)``), with one op fewer and no overflow for large ``s``.

The scoring head always runs in float32, also when the encoder runs in fp16: the cosine margins of
good and bad centroids can be small (1e-3) and a logit scale of 100 would amplify fp16 rounding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quasar.centroids.pack import CentroidPack
from quasar.encoders.base import Encoder
from quasar.errors import QuasarError
from quasar.preprocess import PreprocessSpec


def canonical_encoder_id(encoder_id: str) -> str:
    """The registry's spelling of an id, so that ``open_clip:RN50*@x`` and `` open_clip:RN50*@x`` compare equal."""
    from quasar.encoders.registry import parse_encoder_id

    try:
        return str(parse_encoder_id(encoder_id))
    except ValueError:
        return encoder_id.strip()


def _unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows as float32 unit vectors; rows already unit (``pack.centroid_matrix()``) are kept bit-exact,
    so the graph's ``quasar.centroids`` equals the pack's matrix."""
    m64 = np.asarray(m, dtype=np.float64)
    norms = np.linalg.norm(m64, axis=-1, keepdims=True)
    if m.dtype == np.float32 and np.allclose(norms, 1.0, atol=1e-6):
        return np.ascontiguousarray(m)
    return (m64 / np.maximum(norms, 1e-12)).astype(np.float32)


class FusedScorer(nn.Module):
    """Encoder plus the centroid head; ``forward(images) -> (scores, margins)``, both float32 [N, K].

    The centroid matrix and the logit scales are buffers, so the exporter finds them among the
    graph's initializers (renamed ``quasar.centroids`` / ``quasar.logit_scales``) and a torch backend
    can read them back from the ONNX file.
    """

    def __init__(self, encoder: Encoder, centroids: np.ndarray | torch.Tensor,
                 logit_scales: np.ndarray | torch.Tensor, head_names: list[str]) -> None:
        super().__init__()
        c = torch.as_tensor(_unit_rows(np.asarray(centroids)))
        s = torch.as_tensor(np.asarray(logit_scales, dtype=np.float32))
        if c.ndim != 2 or c.shape[0] != 2 * s.numel() or s.numel() != len(head_names):
            raise ValueError(f"centroids {tuple(c.shape)} must be [2K, D] for K={len(head_names)} heads "
                             f"and {s.numel()} logit scales")
        if c.shape[1] != encoder.embed_dim:
            raise ValueError(f"centroids have dimension {c.shape[1]}, the encoder {encoder.encoder_id} "
                             f"gives {encoder.embed_dim}")
        self.encoder = encoder
        self.head_names = list(head_names)
        self.register_buffer("centroids", c)
        self.register_buffer("logit_scales", s.reshape(-1))

    @property
    def num_heads(self) -> int:
        return len(self.head_names)

    @property
    def spec(self) -> PreprocessSpec:
        return self.encoder.spec

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.encoder(images)
        if emb.dtype != torch.float32:
            emb = emb.float()
        emb = F.normalize(emb, dim=-1)
        cos = F.linear(emb, self.centroids)  # [N, 2K]
        pairs = cos.view(-1, self.num_heads, 2)
        margins = pairs[:, :, 0] - pairs[:, :, 1]
        return torch.sigmoid(margins * self.logit_scales), margins


def build_fused(encoder: str | Encoder, pack: CentroidPack, spec: PreprocessSpec | None = None) -> FusedScorer:
    """The fused scorer for ``pack``, in eval mode on the CPU.

    ``encoder`` is an encoder id (built with ``spec``, default the pack's preprocessing) or a built
    :class:`Encoder`. A pack made for another encoder is refused: its centroids live in another
    embedding space, and scores would be meaningless rather than wrong-looking.
    """
    wanted = encoder.encoder_id if isinstance(encoder, Encoder) else str(encoder)
    if canonical_encoder_id(wanted) != canonical_encoder_id(pack.encoder):
        raise QuasarError(f"the pack was built for encoder {pack.encoder!r}, not {wanted!r}: its centroids only "
                          "apply to that encoder's embeddings (leave out --encoder to use the pack's)")
    if not isinstance(encoder, Encoder):
        from quasar.encoders.registry import create_encoder

        try:
            encoder = create_encoder(wanted, spec=spec or pack.preprocess)
        except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
            raise QuasarError(f"cannot build encoder {wanted!r}: {e}") from e
    elif spec is not None and spec != encoder.spec:
        try:
            encoder.set_spec(spec)
        except ValueError as e:
            raise QuasarError(str(e)) from e
    if pack.embed_dim != encoder.embed_dim:
        raise QuasarError(f"the pack's centroids have dimension {pack.embed_dim}, encoder {wanted!r} "
                          f"gives {encoder.embed_dim}")
    return FusedScorer(encoder, pack.centroid_matrix(), pack.logit_scales(), pack.head_names).eval()
