"""Contact sheet of every distortion type at every level (documentation image).

Rows are the 25 types (grouped by family), columns the pristine image and levels 1..5. Each tile is
the 256-px face region of scikit-image's 512x512 astronaut, distorted at full size and shown at
half size (about the downscaling an encoder input of ~224 px applies to a 512-px photo).
Run: ``python benchmarks/contact_sheet.py [--out docs/distortions_contact_sheet.jpg]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from quasar.centroids.distortions import FAMILIES, LEVELS, TYPE_FAMILY, distort

OUT = Path(__file__).resolve().parent.parent / "docs" / "distortions_contact_sheet.jpg"
TILE = 128
CROP = (slice(16, 272), slice(112, 368))  # rows, cols of the 512x512 astronaut: helmet and face
LABEL_W = 220
HEADER_H = 24
GAP = 2


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.45, thick: int = 1) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)


def _tile(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img[CROP], (TILE, TILE), interpolation=cv2.INTER_AREA)


def render(base: np.ndarray) -> np.ndarray:
    """The sheet as an RGB uint8 image."""
    types = [t for fam in FAMILIES.values() for t in fam]
    cols = 1 + len(LEVELS)
    h = HEADER_H + len(types) * (TILE + GAP)
    w = LABEL_W + cols * (TILE + GAP)
    sheet = np.full((h, w, 3), 255, np.uint8)
    for c, name in enumerate(["pristine"] + [f"level {lv}" for lv in LEVELS]):
        _text(sheet, name, LABEL_W + c * (TILE + GAP) + 30, HEADER_H - 7, 0.5)
    pristine = _tile(base)
    for r, kind in enumerate(types):
        y = HEADER_H + r * (TILE + GAP)
        _text(sheet, kind, 6, y + TILE // 2 - 2, 0.5)
        _text(sheet, f"({TYPE_FAMILY[kind]})", 6, y + TILE // 2 + 18, 0.42)
        tiles = [pristine] + [_tile(distort(base, kind, lv)) for lv in LEVELS]
        for c, t in enumerate(tiles):
            x = LABEL_W + c * (TILE + GAP)
            sheet[y:y + TILE, x:x + TILE] = t
    return sheet


def main() -> None:
    import skimage.data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args()
    sheet = render(skimage.data.astronaut())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, args.quality]):
        raise SystemExit(f"could not write {args.out}")
    print(f"{args.out}: {sheet.shape[1]}x{sheet.shape[0]}, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
