"""Camera-size JPEGs generated from the real photos, so the benchmark decodes what users decode.

The photos of :func:`quasar.photos.fetch_photos` are working copies of at most 768 px; phones and
cameras write 5-12 MP JPEGs, and at that size decoding, not the network, can dominate a pipeline.
Each source photo is centre-cropped to 4:3, upscaled (bicubic) to the target size, given light
Gaussian noise and saved as JPEG quality 92 with 4:2:0 chroma (OpenCV's default, like cameras).

Why the noise: an upscaled 768 px photo is unnaturally smooth, its JPEG about half the size of a
real camera file, and libjpeg's entropy decoding (most of the decode time) scales with the coded
size. Noise of sigma 6 brings a 12 MP file to about 3 MB, typical for a phone at quality 92; after the
8x downscale to the model's 512 px it is averaged away (sigma < 1), so scores barely move. The 1 MP
set (web-size images, 2.25x downscale) gets sigma 2.

Every 3rd image is stored portrait (rotated pixels), so pipelines see two shapes (384x512, 512x384)
and batching has to bucket. Files are generated into a cache folder once and reused (a stamp file
records the recipe); they are never committed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

RECIPE_VERSION = 1
JPEG_QUALITY = 92
NOISE_SIGMA = {"camera": 6.0, "1mp": 2.0}  # per set; see the module docstring
CAMERA_SIZES = ((4000, 3000), (2600, 1950))  # 12 MP and ~5 MP, alternating
ONE_MP_SIZE = (1152, 864)
PORTRAIT_EVERY = 3
SETS = ("camera", "1mp")


@dataclass(frozen=True)
class Planned:
    """One file to generate: its source photo and stored size (width x height of the pixels)."""

    index: int
    source: str
    width: int
    height: int

    @property
    def filename(self) -> str:
        stem = Path(self.source).stem.replace(" ", "_")[:40]
        return f"{self.index:02d}_{self.width}x{self.height}_{stem}.jpg"


def stored_size(index: int, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of image ``index``: landscape, except every ``PORTRAIT_EVERY``-th is portrait
    (3 is odd, so the camera set's portraits alternate between 12 MP and 5 MP)."""
    w, h = size
    return (h, w) if index % PORTRAIT_EVERY == PORTRAIT_EVERY - 1 else (w, h)


def plan(set_name: str, sources: Sequence[str], n: int) -> list[Planned]:
    """The files of set ``camera`` (12 MP and 5 MP alternating) or ``1mp`` (1152x864), cycling over ``sources``."""
    if set_name not in SETS:
        raise ValueError(f"unknown image set {set_name!r}; expected one of {SETS}")
    if not sources:
        raise ValueError("no source photos")
    out = []
    for i in range(n):
        size = CAMERA_SIZES[i % len(CAMERA_SIZES)] if set_name == "camera" else ONE_MP_SIZE
        w, h = stored_size(i, size)
        out.append(Planned(i, sources[i % len(sources)], w, h))
    return out


def crop_to_aspect(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Largest centred crop of ``img`` with the aspect ratio width:height."""
    h, w = img.shape[:2]
    if w * height > h * width:  # too wide
        cw = max(1, round(h * width / height))
        x = (w - cw) // 2
        return img[:, x : x + cw]
    ch = max(1, round(w * height / width))
    y = (h - ch) // 2
    return img[y : y + ch]


def camera_jpeg(img_bgr: np.ndarray, width: int, height: int, seed: int, noise_sigma: float = 0.0,
                quality: int = JPEG_QUALITY) -> bytes:
    """Encode ``img_bgr`` as a ``width`` x ``height`` camera-like JPEG (see the module docstring)."""
    big = cv2.resize(crop_to_aspect(img_bgr, width, height), (width, height), interpolation=cv2.INTER_CUBIC)
    if noise_sigma > 0:
        noise = np.random.default_rng(seed).standard_normal(big.shape, dtype=np.float32)
        noise *= noise_sigma
        noise += big
        big = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {width}x{height} JPEG")
    return buf.tobytes()


def synthetic_sources(n: int, seed: int = 0) -> list[np.ndarray]:
    """Textured stand-ins (gradients, shapes, noise) for machines without the photos (offline GPU boxes)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = 576, 768
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=-1) * rng.uniform(120, 255, 3)
        img = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        for _ in range(12):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(img, p, int(rng.integers(10, 120)), c, -1, lineType=cv2.LINE_AA)
        out.append(cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.5))))
    return out


def source_photos(n: int) -> list[str]:
    """Paths of ``n`` working-copy photos spread over all sources (deterministic), or [] if unavailable."""
    try:
        from quasar.photos import fetch_photos

        photos = sorted(fetch_photos(), key=lambda p: p.name)
    except Exception:
        return []
    if not photos:
        return []
    step = max(1, len(photos) // max(1, n))
    picked = photos[::step][:n]
    return [p.path for p in picked]


def _stamp(set_name: str, n: int, sources: Sequence[str]) -> dict:
    return {"recipe": RECIPE_VERSION, "set": set_name, "n": n, "quality": JPEG_QUALITY, "noise": NOISE_SIGMA[set_name],
            "sources": [os.path.basename(s) for s in sources]}


def generate(set_name: str, dest: str | os.PathLike, n: int, sources: Sequence[str] | None = None) -> list[str]:
    """Write (or reuse) set ``set_name`` of ``n`` JPEGs under ``dest/<set_name>-<n>``; returns the file paths.

    The folder is per ``n`` so that a ``--quick`` run never rewrites the files a full run is reading.

    ``sources`` are image paths; None: real photos via :func:`source_photos`, or synthetic images if
    those cannot be installed.
    """
    if sources is None:
        sources = source_photos(n)
    folder = Path(dest) / f"{set_name}-{n}"
    src_names = list(sources) if sources else [f"synthetic_{i:02d}" for i in range(min(n, 12))]
    planned = plan(set_name, src_names, n)
    stamp = _stamp(set_name, n, src_names)
    stamp_path = folder / "recipe.json"
    paths = [str(folder / p.filename) for p in planned]
    if stamp_path.exists() and all(os.path.exists(p) for p in paths):
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                return paths
        except ValueError:
            pass
    folder.mkdir(parents=True, exist_ok=True)
    synth = synthetic_sources(len(src_names)) if not sources else None
    cache: dict[str, np.ndarray] = {}
    for p, path in zip(planned, paths, strict=True):
        if synth is not None:
            img = synth[src_names.index(p.source)]
        else:
            if p.source not in cache:
                img = cv2.imread(p.source, cv2.IMREAD_COLOR)
                if img is None:
                    raise RuntimeError(f"{p.source}: cannot read the source photo")
                cache[p.source] = img
            img = cache[p.source]
        data = camera_jpeg(img, p.width, p.height, seed=p.index, noise_sigma=NOISE_SIGMA[set_name])
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
    return paths


def describe(paths: Sequence[str]) -> dict:
    """Pixel sizes (from the JPEG headers) and mean file size of a generated set, for the report."""
    from quasar.io.formats import probe

    sizes: dict[str, int] = {}
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            hdr = probe(f.read())
        key = f"{hdr.width}x{hdr.height}"
        sizes[key] = sizes.get(key, 0) + 1
        total += os.path.getsize(p)
    return {"n": len(paths), "sizes": sizes, "mean_file_mb": round(total / max(1, len(paths)) / 1e6, 2)}
