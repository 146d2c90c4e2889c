"""The library's resampler against Pillow itself: random images and sizes (shrinking, enlarging,
mixed, degenerate 1-pixel sides), each filter the specs use; every pixel must be equal.

    python3 native/tests/resample_parity.py build/native/native/tests/quasar-resize-tool
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX,
           "nearest": Image.Resampling.NEAREST}


def main() -> int:
    tool = sys.argv[1]
    rng = np.random.default_rng(1234)
    cases = [(768, 576, 384, 512), (576, 768, 384, 512), (2304, 1728, 384, 512), (6, 8, 384, 512), (1, 1, 64, 64),
             (300, 300, 10, 200), (400, 200, 300, 150), (1000, 30, 384, 512), (37, 1, 5, 3)]
    cases += [tuple(int(v) for v in rng.integers(1, 900, 4)) for _ in range(40)]
    bad = 0
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.raw"), os.path.join(tmp, "out.raw")
        for i, (h, w, oh, ow) in enumerate(cases):
            for name in ("bicubic", "bilinear", "area") if i < 9 else (list(FILTERS)[i % 4],):
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                if i % 2:  # smooth content too, where rounding ties are rarer
                    img = (np.mgrid[0:h, 0:w][1][..., None] * 255 // max(1, w - 1)).astype(np.uint8).repeat(3, 2)
                img.tofile(src)
                subprocess.run([tool, src, str(h), str(w), str(oh), str(ow), name, dst], check=True)
                got = np.fromfile(dst, np.uint8).reshape(oh, ow, 3)
                ref = np.asarray(Image.fromarray(img).resize((ow, oh), FILTERS[name]))
                d = int(np.abs(got.astype(int) - ref).max())
                worst = max(worst, d)
                if d:
                    bad += 1
                    print(f"FAIL {name} {w}x{h} -> {ow}x{oh}: max diff {d}, {float((got != ref).mean()):.3%} of values")
    import PIL

    print(f"resample parity with Pillow {PIL.__version__}: {len(cases)} size pairs, {bad} differ (max |diff| {worst})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
