"""Synthetic bursts built from real photos, with a known keeper: the ground truth for ``quasar cull``.

A phone burst is a handful of frames of one scene taken a fraction of a second apart: the camera
moves a little (shift, zoom, a slight roll) and some frames come out worse (motion blur from shake,
missed focus, a wrong exposure, high-ISO noise). :func:`make_burst` imitates that from one real
photo: every frame is a slightly different crop (affine warp) of the photo; exactly one frame, the
**keeper**, is left clean; each other frame gets one camera-like degradation from
:mod:`quasar.centroids.distortions` (levels 1..3). Where the keeper sits in the burst is random, so
"keep the first frame" is no strategy. A quarter of the photos give a single frame (a photo that is
not part of any burst), which is what keeps grouping honest about precision.

Everything is drawn from a generator seeded by the photo's name: the same photos give the same
bursts, byte for byte. Capture times are synthetic too (bursts minutes apart, frames 0.1..0.7 s
apart) and are written into each JPEG's EXIF (DateTimeOriginal + SubSecTimeOriginal), so the time
window of ``quasar cull`` is exercised end to end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass

import cv2
import numpy as np

# Camera-like degradations (distortion type, levels drawn from): shake, missed focus, exposure, noise.
DEGRADATIONS = (("motion_blur", (1, 2, 3)), ("gaussian_blur", (1, 2, 3)), ("lens_blur", (1, 2, 3)),
                ("darken", (1, 2, 3)), ("brighten", (1, 2, 3)), ("white_noise", (1, 2, 3)))
CROP = 0.86  # each frame shows this fraction of the photo's width and height
SIZES = (1, 2, 3, 4, 5, 6)
SIZE_WEIGHTS = (0.25, 0.15, 0.15, 0.15, 0.15, 0.15)  # a quarter of the photos are single shots
START = dt.datetime(2024, 6, 1, 9, 0, 0)


@dataclass(frozen=True)
class Frame:
    burst: str  # the source photo's name: frames of one burst share it
    index: int  # position in the burst
    keeper: bool  # the clean frame
    degradation: str  # "" for the keeper, else "type:level"
    image: np.ndarray  # RGB uint8
    time: dt.datetime


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "little"))


def _warp(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One hand-held frame: a CROP-sized view, shifted by up to 3 %, zoomed by up to 3 %, rolled by up to 1 degree."""
    h, w = img.shape[:2]
    oh, ow = int(round(h * CROP)), int(round(w * CROP))
    scale = 1.0 + rng.uniform(-0.03, 0.03)
    angle = rng.uniform(-1.0, 1.0)
    cx = w / 2 + rng.uniform(-0.03, 0.03) * w
    cy = h / 2 + rng.uniform(-0.03, 0.03) * h
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += ow / 2 - cx
    m[1, 2] += oh / 2 - cy
    return cv2.warpAffine(img, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_burst(image: np.ndarray, name: str, start: dt.datetime = START, size: int | None = None,
               mild: bool = False) -> list[Frame]:
    """The frames of one burst of ``image`` (RGB uint8), deterministic in ``name``; ``mild``: every
    degraded frame at level 1 (barely visible), the close calls of a real burst."""
    from quasar.centroids.distortions import distort

    rng = _rng(name)
    n = int(size if size is not None else rng.choice(SIZES, p=SIZE_WEIGHTS))
    keeper = int(rng.integers(n))
    frames, t = [], start
    for i in range(n):
        img = _warp(image, rng)
        deg = ""
        if i != keeper:
            kind, levels = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
            level = int(rng.choice(levels))
            level = 1 if mild else level
            img = distort(img, kind, level)
            deg = f"{kind}:{level}"
        frames.append(Frame(name, i, i == keeper, deg, img, t))
        t += dt.timedelta(seconds=float(rng.uniform(0.1, 0.7)))
    return frames


def make_roll(photos: list[tuple[str, np.ndarray]], mild: bool = False) -> list[Frame]:
    """A camera roll: one burst per (name, RGB image), in the given order, bursts 1..10 minutes apart."""
    frames: list[Frame] = []
    t = START
    for name, image in photos:
        burst = make_burst(image, name, t, mild=mild)
        frames += burst
        t = burst[-1].time + dt.timedelta(seconds=float(_rng(name + "/gap").uniform(60, 600)))
    return frames


def exif_with_time(t: dt.datetime) -> bytes:
    """An EXIF blob with DateTimeOriginal and SubSecTimeOriginal (milliseconds)."""
    from PIL import Image

    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = t.strftime("%Y:%m:%d %H:%M:%S")
    sub[0x9291] = f"{t.microsecond // 1000:03d}"
    return exif.tobytes()


def write_frames(frames: list[Frame], folder: str, quality: int = 92) -> list[str]:
    """Write each frame as ``NNNNN.jpg`` (camera-roll order) with its capture time in EXIF; returns the paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, f in enumerate(frames):
        path = os.path.join(folder, f"IMG_{k:05d}.jpg")
        buf = io.BytesIO()
        Image.fromarray(f.image).save(buf, "JPEG", quality=quality, exif=exif_with_time(f.time))
        with open(path, "wb") as out:
            out.write(buf.getvalue())
        paths.append(path)
    return paths
