"""Helpers shared by the export tests (no tests here): real-photo packs, inputs, ONNX Runtime sessions.

Test packs are built from embeddings of real photos (good = pristine, bad = distorted copies) so
that scores vary with image content. The logit scale is set from the observed margins so that scores
spread over (0.05, 0.95), capped at 25: random-weight CLIP encoders give margins of ~1e-3, and the
score error is 0.25 * scale * margin error. ORT and torch sum the 1024-2048 products of a cosine in
different orders (margin differences up to 5e-7 measured), so the 1e-5 score tolerance of the
parity tests needs scale <= ~40; the cap keeps a 2x margin.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import cv2
import numpy as np
import torch

from quasar.centroids.distortions import distort
from quasar.centroids.pack import CentroidPack, Head
from quasar.encoders.base import Encoder
from quasar.io import read_rgb
from quasar.preprocess import PreprocessSpec, preprocess

MAX_LOGIT_SCALE = 25.0


def load_rgb(photos, n: int) -> list[np.ndarray]:
    return [read_rgb(p.path) for p in photos[:n]]


@torch.no_grad()
def embed(encoder: Encoder, images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """L2-normalised float64 embeddings, batched by preprocessed shape (native sizes differ)."""
    arrays = [preprocess(img, spec) for img in images]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, a in enumerate(arrays):
        groups[a.shape].append(i)
    out = np.zeros((len(arrays), encoder.embed_dim))
    for idx in groups.values():
        x = torch.from_numpy(np.stack([arrays[i] for i in idx]))
        out[idx] = encoder(x).float().numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def photo_pack(encoder: Encoder, images: list[np.ndarray], spec: PreprocessSpec,
               kinds: tuple[str, ...] = ("gaussian_blur", "white_noise"), level: int = 4) -> CentroidPack:
    """One head per distortion kind: good = mean of pristine embeddings, bad = of distorted ones."""
    distorted = {k: [distort(img, k, level) for img in images] for k in kinds}
    emb = embed(encoder, images + [d for k in kinds for d in distorted[k]], spec)
    n = len(images)
    good = emb[:n]
    heads = []
    for j, kind in enumerate(kinds):
        bad = emb[n * (j + 1): n * (j + 2)]
        g, b = good.mean(0), bad.mean(0)
        direction = g / np.linalg.norm(g) - b / np.linalg.norm(b)
        margins = np.concatenate([good, bad]) @ direction
        scale = min(3.0 / max(float(np.abs(margins).max()), 1e-9), MAX_LOGIT_SCALE)
        heads.append(Head(name=kind, good=g.astype(np.float32), bad=b.astype(np.float32), logit_scale=scale,
                          logit_scale_policy="fixed", aggregation={"method": "mean"},
                          anchors={"good": n, "bad": n, "kind": "synthetic"}))
    pack = CentroidPack(encoder=encoder.encoder_id, preprocess=spec, heads=heads)
    pack.validate()
    return pack


def families_pack(pack: CentroidPack) -> CentroidPack:
    """A format-2 pack from a centroid pack: the first head kept (with a bias), the others as linear
    heads (their centroid directions, biased), plus a ``softmin`` and a ``mean`` combine head."""
    first, *rest = pack.heads
    heads = [dataclasses.replace(first, bias=-0.01)]
    for i, h in enumerate(rest):
        heads.append(Head(h.name, None, None, h.logit_scale, "fixed", {"method": "ridge"}, {}, kind="linear",
                          bias=0.01 * (i + 1), weight=h.direction()))
    names = [h.name for h in heads]
    heads.append(Head("quality", None, None, 0.8, "levels", {"method": "combine"}, {}, kind="combine",
                      bias=0.5, combine={"rule": "softmin", "of": names}))
    heads.append(Head("average", None, None, 1.0, "levels", {"method": "combine"}, {}, kind="combine",
                      combine={"rule": "mean", "of": names[::-1]}))
    out = CentroidPack(pack.encoder, pack.preprocess, heads)
    out.validate()
    assert out.format_version == 2
    return out


def batch_at(images: list[np.ndarray], spec: PreprocessSpec, hw: tuple[int, int] | None) -> np.ndarray:
    """Preprocess ``images`` per spec and, for dynamic-size graphs, resize them all to ``hw``."""
    out = []
    for img in images:
        a = preprocess(img, spec)
        if hw is not None and a.shape[:2] != hw:
            a = cv2.resize(a, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        out.append(a)
    return np.ascontiguousarray(np.stack(out))


def ort_session(path: str, level: str = "ORT_ENABLE_ALL"):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
