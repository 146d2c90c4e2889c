"""Deterministic synthetic distortions at five graded levels (KADIS-style quality anchors).

Each function maps an RGB uint8 image and a level in 1..5 (5 = worst) to a distorted RGB uint8
image of the same size. Noise uses a generator seeded from the level and image shape, so the same
input always gives the same output (anchor embeddings are cached by content and must be stable).

The default quality pack uses ``ANCHOR_TYPES``; ``HELDOUT_TYPES`` are never used for anchors and
serve the evaluation of unseen distortion types.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

LEVELS = (1, 2, 3, 4, 5)


def _rng(img: np.ndarray, level: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([salt, level, *img.shape])


def _scale(img: np.ndarray) -> float:
    """Distortion strengths are defined for a 512-px short side and scaled with the image."""
    return min(img.shape[:2]) / 512.0


def gaussian_blur(img: np.ndarray, level: int) -> np.ndarray:
    sigma = (0.8, 1.5, 2.5, 4.0, 6.0)[level - 1] * _scale(img)
    return cv2.GaussianBlur(img, (0, 0), sigmaX=max(sigma, 0.3))


def white_noise(img: np.ndarray, level: int) -> np.ndarray:
    sd = (6, 12, 20, 32, 48)[level - 1]
    noise = _rng(img, level, 1).normal(0.0, sd, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, level: int) -> np.ndarray:
    q = (40, 20, 12, 7, 3)[level - 1]
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def pixelate(img: np.ndarray, level: int) -> np.ndarray:
    f = (2, 3, 5, 8, 12)[level - 1] * max(_scale(img), 0.25)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def darken(img: np.ndarray, level: int) -> np.ndarray:
    gamma = (1.4, 1.9, 2.6, 3.5, 4.6)[level - 1]
    lut = (255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return lut[img]


def desaturate(img: np.ndarray, level: int) -> np.ndarray:
    keep = (0.7, 0.5, 0.3, 0.15, 0.0)[level - 1]
    grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = keep * img.astype(np.float32) + (1 - keep) * grey[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def motion_blur(img: np.ndarray, level: int) -> np.ndarray:
    length = max(3, int(round((5, 9, 15, 23, 33)[level - 1] * _scale(img))))
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), 30, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(img, -1, k / k.sum())


def contrast_loss(img: np.ndarray, level: int) -> np.ndarray:
    keep = (0.7, 0.5, 0.35, 0.22, 0.12)[level - 1]
    f = img.astype(np.float32)
    return np.clip(f.mean() + keep * (f - f.mean()) + 0.5, 0, 255).astype(np.uint8)


def overexpose(img: np.ndarray, level: int) -> np.ndarray:
    gain = (1.3, 1.6, 2.0, 2.6, 3.4)[level - 1]
    return np.clip(img.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def salt_pepper(img: np.ndarray, level: int) -> np.ndarray:
    p = (0.005, 0.015, 0.03, 0.06, 0.1)[level - 1]
    u = _rng(img, level, 2).random(img.shape[:2])
    out = img.copy()
    out[u < p / 2] = 0
    out[u > 1 - p / 2] = 255
    return out


def quantize(img: np.ndarray, level: int) -> np.ndarray:
    levels = (24, 12, 7, 4, 2)[level - 1]
    step = 255.0 / (levels - 1)
    return (np.round(img.astype(np.float32) / step) * step).astype(np.uint8)


DISTORTIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "gaussian_blur": gaussian_blur,
    "white_noise": white_noise,
    "jpeg": jpeg,
    "pixelate": pixelate,
    "darken": darken,
    "desaturate": desaturate,
    "motion_blur": motion_blur,
    "contrast_loss": contrast_loss,
    "overexpose": overexpose,
    "salt_pepper": salt_pepper,
    "quantize": quantize,
}
ANCHOR_TYPES = ("gaussian_blur", "white_noise", "jpeg", "pixelate", "darken", "desaturate")
HELDOUT_TYPES = ("motion_blur", "contrast_loss", "overexpose", "salt_pepper", "quantize")


def distort(img: np.ndarray, kind: str, level: int) -> np.ndarray:
    """Apply distortion ``kind`` at ``level`` (1..5); level 0 returns the image unchanged."""
    if level == 0:
        return img
    if kind not in DISTORTIONS:
        raise ValueError(f"unknown distortion {kind!r}; known: {sorted(DISTORTIONS)}")
    if level not in LEVELS:
        raise ValueError(f"distortion level must be 0..5, got {level}")
    out = DISTORTIONS[kind](np.ascontiguousarray(img), level)
    assert out.shape == img.shape and out.dtype == np.uint8
    return out
