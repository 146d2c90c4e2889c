"""The fused scorer: encoder + centroid head as one torch module, the thing every exporter traces.

One module instead of "encoder, then numpy" so that the ONNX/TensorRT graph, the torch backend and
the tests all compute the same function:

    images (uint8 NHWC) -> Encoder (0..255 scaling, mean/std, backbone) -> L2 normalise
    -> margins = e @ W.T (+ bias) with W [K, D] one direction per head: for the paper's centroid
       heads W_k = good_k/|good_k| - bad_k/|bad_k|, so margin = cos_good - cos_bad
    -> combine heads (optional): rule (min / mean) over other heads' logits
    -> scores = sigmoid(logit_scale * margins) [N, K]

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

from quasar.centroids.pack import COMBINE_RULES, CentroidPack
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


class ScoringHead(nn.Module):
    """Unit embedding [N, D] -> (scores, margins) [N, K]: the heads of a pack as torch arithmetic.

    ``head_weights`` [K_base, D] holds one margin direction per base head (``good/|good| -
    bad/|bad|`` for the paper's centroid heads, an LDA or ridge direction for linear heads),
    ``head_biases`` [K] and ``logit_scales`` [K] every head's shift and scale. ``combine`` lists, per
    combine head, its rule and the base columns it reads; its margin is the rule applied to those
    heads' logits, plus its bias. All are buffers, so the exporter finds them among the graph's
    initializers (renamed ``quasar.head_weights`` / ``quasar.head_biases`` /
    ``quasar.combine_biases`` / ``quasar.logit_scales``) and a torch backend can read them back.
    """

    def __init__(self, head_weights, logit_scales, head_biases=None, combine=None) -> None:
        super().__init__()
        w = torch.as_tensor(np.asarray(head_weights, dtype=np.float32))
        s = torch.as_tensor(np.asarray(logit_scales, dtype=np.float32)).reshape(-1)
        self.combine = [(str(r), [int(i) for i in idx]) for r, idx in (combine or [])]
        k_base = w.shape[0] if w.ndim == 2 else -1
        if w.ndim != 2 or k_base + len(self.combine) != s.numel():
            raise ValueError(f"head weights {tuple(w.shape)} must be [K, D] for {s.numel()} logit scales "
                             f"({len(self.combine)} of them combine heads)")
        for rule, idx in self.combine:
            if rule not in COMBINE_RULES or not idx or not all(0 <= i < k_base for i in idx):
                raise ValueError(f"bad combine rule {rule!r} over columns {idx}")
        b = np.zeros(s.numel(), np.float32) if head_biases is None else np.asarray(head_biases, np.float32)
        if b.shape != (s.numel(),):
            raise ValueError(f"head biases {b.shape} must be one per head ({s.numel()})")
        self.num_base = k_base
        # mean combines as [K_base, 1] columns: 1/k at the combined heads, 0 elsewhere (fixed by the plan)
        self._mean_cols = {j: np.where(np.isin(np.arange(k_base), idx), 1.0 / len(idx), 0.0).astype(np.float32)[:, None]
                           for j, (rule, idx) in enumerate(self.combine) if rule == "mean"}
        self.register_buffer("head_weights", w)
        # Two buffers, so that each is one initializer of the graph (a slice would be folded into a
        # new, anonymous constant); a zero bias is left out (v1 packs export the same graph as before).
        self.has_bias = bool(np.any(b[:k_base] != 0))
        self.has_combine_bias = bool(np.any(b[k_base:] != 0))
        self.register_buffer("head_biases", torch.as_tensor(b[:k_base].copy()))
        self.register_buffer("combine_biases", torch.as_tensor(b[k_base:].copy()))
        self.register_buffer("logit_scales", s)

    def place_constants(self, device) -> None:
        """Hold the mean combines' columns as tensors on ``device``, so a forward pass copies nothing from
        the host (a CUDA graph cannot capture such a copy). The torch backend calls it; export never does."""
        self._mean_cols = {j: torch.as_tensor(c, device=device) for j, c in self._mean_cols.items()}

    @classmethod
    def from_pack(cls, pack: CentroidPack) -> ScoringHead:
        return cls(pack.head_weights(), pack.logit_scales(), pack.head_biases(), pack.combine_plan())

    @property
    def embed_dim(self) -> int:
        return int(self.head_weights.shape[1])

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        margins = F.linear(emb, self.head_weights)  # [N, K_base]
        if self.has_bias:
            margins = margins + self.head_biases
        if self.combine:
            logits = margins * self.logit_scales[: self.num_base]
            cols = []
            for j, (rule, idx) in enumerate(self.combine):
                if rule == "mean":
                    # one MatMul by the plan's column: no ReduceMean and no Gather, so mobile runtimes and
                    # OpenCV DNN take it
                    avg = torch.as_tensor(self._mean_cols[j], dtype=logits.dtype, device=logits.device)
                    cols.append(logits.matmul(avg).reshape(-1))
                    continue
                part = logits[:, idx]
                if rule == "min":
                    cols.append(part.min(dim=1).values)
                else:  # softmin
                    cols.append(-torch.logsumexp(-part, dim=1))
            combined = torch.stack(cols, dim=1)
            if self.has_combine_bias:
                combined = combined + self.combine_biases
            margins = torch.cat([margins, combined], dim=1)
        return torch.sigmoid(margins * self.logit_scales), margins


class FusedScorer(nn.Module):
    """Encoder plus the scoring heads; ``forward(images) -> (scores, margins)``, both float32 [N, K]."""

    def __init__(self, encoder: Encoder, head_weights: np.ndarray | torch.Tensor,
                 logit_scales: np.ndarray | torch.Tensor, head_names: list[str],
                 head_biases: np.ndarray | torch.Tensor | None = None,
                 combine: list[tuple[str, list[int]]] | None = None) -> None:
        super().__init__()
        self.head = ScoringHead(head_weights, logit_scales, head_biases, combine)
        if len(head_names) != self.head.logit_scales.numel():
            raise ValueError(f"{len(head_names)} head names for {self.head.logit_scales.numel()} heads")
        if self.head.embed_dim != encoder.embed_dim:
            raise ValueError(f"head weights have dimension {self.head.embed_dim}, the encoder "
                             f"{encoder.encoder_id} gives {encoder.embed_dim}")
        self.encoder = encoder
        self.head_names = list(head_names)

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
        return self.head(F.normalize(emb, dim=-1))


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
        from quasar.encoders.pretrained import build_encoder

        try:
            encoder = build_encoder(wanted, spec=spec or pack.preprocess)
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
    return FusedScorer(encoder, pack.head_weights(), pack.logit_scales(), pack.output_names,
                       head_biases=pack.head_biases(), combine=pack.combine_plan()).eval()
