"""Reference preprocessing the way PIL/torchvision pipelines do it, to measure the OpenCV path against.

PIL decodes at full resolution, applies ``ImageOps.exif_transpose``, composites alpha on white
(the runtime's choice), resizes with PIL's antialiased bicubic filter to the *same* target size
(:func:`quasar.preprocess.target_shape`) and centre-crops with torchvision's rounding. With the
spec's ``pil`` resampler the runtime then differs only by reduced JPEG decoding (with
``opencv_area`` also by the filter). PIL's decoder is imported lazily, only here.
"""

from __future__ import annotations

import io
import os

import numpy as np

from quasar.preprocess import PreprocessSpec, target_shape


def reference_decode(source: str | os.PathLike | bytes) -> np.ndarray:
    """Upright RGB uint8 pixels via PIL (alpha composited on white), full resolution."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        return np.asarray(im.convert("RGB"))


def reference_preprocess(source: str | os.PathLike | bytes, spec: PreprocessSpec) -> np.ndarray:
    """What a PIL + torchvision pipeline would feed the model for ``spec`` (uint8 HxWx3)."""
    from PIL import Image

    rgb = reference_decode(source)
    rh, rw, crop = target_shape(rgb.shape[0], rgb.shape[1], spec)
    im = Image.fromarray(rgb)
    if (im.height, im.width) != (rh, rw):
        im = im.resize((rw, rh), Image.Resampling.BICUBIC)
    out = np.asarray(im)
    if crop is not None:
        ch, cw = crop
        top, left = int(round((rh - ch) / 2.0)), int(round((rw - cw) / 2.0))
        out = out[top : top + ch, left : left + cw]
    if spec.channel_order == "BGR":
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)
