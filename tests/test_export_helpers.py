"""Helpers shared by the export tests (no tests here): real-photo packs and ONNX Runtime sessions.

Test packs are built from embeddings of real photos (good = pristine, bad = distorted copies) so
that scores vary meaningfully; the logit scale is set from the observed margins so that scores are
spread over (0, 1) even for random-weight encoders, whose margins are tiny.
"""

from __future__ import annotations

import numpy as np
import torch

from quasar.centroids.distortions import distort
from quasar.centroids.pack import CentroidPack, Head
from quasar.encoders.base import Encoder
from quasar.preprocess import PreprocessSpec, preprocess, read_rgb


def load_rgb(photos, n: int) -> list[np.ndarray]:
    return [read_rgb(p.path) for p in photos[:n]]


@torch.no_grad()
def embed(encoder: Encoder, images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """L2-normalised embeddings, one image at a time (native-resolution sizes differ)."""
    out = [encoder(torch.from_numpy(preprocess(img, spec))[None]).float() for img in images]
    e = torch.cat(out).numpy().astype(np.float64)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def photo_pack(encoder: Encoder, images: list[np.ndarray], spec: PreprocessSpec,
               kinds: tuple[str, ...] = ("gaussian_blur", "white_noise"), level: int = 4) -> CentroidPack:
    """One head per distortion kind: good = mean of pristine embeddings, bad = of distorted ones."""
    good = embed(encoder, images, spec)
    heads = []
    for kind in kinds:
        bad = embed(encoder, [distort(img, kind, level) for img in images], spec)
        g, b = good.mean(0), bad.mean(0)
        gn, bn = g / np.linalg.norm(g), b / np.linalg.norm(b)
        margins = np.concatenate([good, bad]) @ (gn - bn)
        scale = 3.0 / max(float(np.abs(margins).max()), 1e-6)  # |s * margin| <= 3: scores in (0.05, 0.95)
        heads.append(Head(name=kind, good=g.astype(np.float32), bad=b.astype(np.float32), logit_scale=scale,
                          logit_scale_policy="fixed", aggregation={"method": "mean"},
                          anchors={"good": len(images), "bad": len(images), "kind": "synthetic"}))
    pack = CentroidPack(encoder=encoder.encoder_id, preprocess=spec, heads=heads)
    pack.validate()
    return pack


def ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
