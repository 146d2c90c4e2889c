"""The images a perf run scores: a folder's files or synthetic JPEGs, held in RAM before any timing.

LoadGen's query sample library loads samples into memory before a test, so reading files from disk
is never timed. End to end, a sample is the encoded file's bytes (decode, preprocessing and
inference are timed); model only, it is the uint8 tensor the runtime's own
:class:`~quasar.runtime.prepare.Preparer` makes from those bytes for the model's spec.

Synthetic images are smooth colour gradients with shapes and mild noise, so a JPEG of them costs
about what a photo of that size costs to decode; their scores mean nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from quasar.errors import QuasarError
from quasar.helpfmt import parse_hw

DEFAULT_SYNTHETIC = "3000x4000"
DEFAULT_SYNTHETIC_COUNT = 16
DEFAULT_FOLDER_COUNT = 64
JPEG_QUALITY = 90


@dataclass
class Workload:
    """Encoded images (``data``) with their labels, and what they are, for the report."""

    source: str  # "folder DIR" or "synthetic HxW"
    labels: list[str]
    data: list[bytes]
    skipped: list[str] = field(default_factory=list)  # "file: reason" for folder files that cannot be scored
    _tensors: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.data)

    def describe(self) -> dict:
        sizes = [len(d) for d in self.data]
        return {"source": self.source, "count": len(self.data), "mean_bytes": round(float(np.mean(sizes))),
                "skipped": self.skipped}

    def without(self, refused: dict[str, str]) -> Workload:
        """This workload less the images labelled in ``refused`` (label -> "label: reason", kept in
        ``skipped``); QuasarError when none is left."""
        keep = [i for i, lab in enumerate(self.labels) if lab not in refused]
        if not keep:
            first = next(iter(refused.values()), "")
            raise QuasarError(f"{self.source}: no image left that every backend can score ({len(refused)} refused; "
                              f"first: {first})")
        return Workload(self.source, [self.labels[i] for i in keep], [self.data[i] for i in keep],
                        [*self.skipped, *refused.values()])

    def tensors(self, spec) -> list[np.ndarray]:
        """The runtime's preprocessed uint8 HxWx3 tensor of every image for ``spec`` (cached per spec)."""
        key = repr(spec)
        if key not in self._tensors:
            from quasar.io.decode import ImageError
            from quasar.runtime.prepare import Preparer
            from quasar.runtime.sources import Item

            prep, out = Preparer(spec), []
            for lab, d in zip(self.labels, self.data, strict=True):
                try:
                    out.append(prep(Item(lab, data=d)))
                except ImageError as e:
                    raise QuasarError(f"{lab}: cannot be preprocessed for this model ({e})") from None
            self._tensors[key] = out
        return self._tensors[key]


def synthetic_image(h: int, w: int, seed: int) -> np.ndarray:
    """A deterministic RGB uint8 image: gradients, a few filled shapes, mild noise."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        a, b, f = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(1, 4)
        img[..., c] = 128 + 60 * np.sin(f * np.pi * (a * x / w + b * y / h) + rng.uniform(0, 6))
    for _ in range(12):
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cx, cy, r = int(rng.uniform(0, w)), int(rng.uniform(0, h)), int(rng.uniform(0.03, 0.2) * min(h, w))
        if rng.uniform() < 0.5:
            cv2.circle(img, (cx, cy), r, color, -1)
        else:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), color, -1)
    img += rng.normal(0, 4, (h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic(hw: str, count: int = DEFAULT_SYNTHETIC_COUNT) -> Workload:
    """``count`` JPEGs (quality 90) of ``hw`` (HxW), encoded in memory."""
    import cv2

    h, w = parse_hw(hw, "--synthetic", minimum=16, maximum=20000, example="3000x4000")
    if count < 1:
        raise QuasarError("--count must be at least 1")
    data = []
    for i in range(count):
        ok, buf = cv2.imencode(".jpg", synthetic_image(h, w, i)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise QuasarError(f"could not encode a synthetic {h}x{w} JPEG")
        data.append(buf.tobytes())
    return Workload(f"synthetic {h}x{w} JPEG q{JPEG_QUALITY}", [f"<synthetic {i}>" for i in range(count)], data)


def from_folder(folder: str, count: int = DEFAULT_FOLDER_COUNT) -> Workload:
    """Up to ``count`` image files under ``folder`` (recursively, sorted), read into memory; files that
    cannot be decoded are left out with their reason (``skipped``); none left is an error."""
    from quasar.io import decode, read_file
    from quasar.runtime.sources import iter_path

    if not os.path.isdir(folder):
        raise QuasarError(f"{folder}: not a folder (--images wants a folder of images)")
    if count < 1:
        raise QuasarError("--count must be at least 1")
    labels, data, skipped = [], [], []
    for item in iter_path(folder, recursive=True):
        if len(data) >= count:
            break
        if item.error:
            skipped.append(f"{item.label}: {item.error}")
            continue
        try:
            blob = read_file(item.path, 1 << 30)
            decode(blob)
        except Exception as e:  # ImageError and friends: this file is left out, the run goes on
            skipped.append(f"{item.label}: {e}")
            continue
        labels.append(item.label)
        data.append(blob)
    if not data:
        raise QuasarError(f"{folder}: no image that can be decoded ({len(skipped)} files refused"
                          + (f"; first: {skipped[0]}" if skipped else "") + ")")
    return Workload(f"folder {folder}", labels, data, skipped)
