"""From an input (file, bytes or array) to the exact uint8 tensor one image contributes to a batch.

The resize and crop come from :mod:`quasar.preprocess` (the code centroid building used), driven by
the *full-resolution* upright size even when the JPEG was decoded at a reduced scale, so reduced
decoding never changes the output shape, only (slightly) the pixels. What one image can become is
bounded by the spec (:func:`quasar.preprocess.max_resized_side`): an extreme aspect ratio is refused
with the reason, so the model never sees a 64x262144 strip.
"""

from __future__ import annotations

import numpy as np

from quasar.io import read_file
from quasar.io.decode import DEFAULT_MAX_PIXELS, Decoded, ImageError, decode, from_array
from quasar.preprocess import PreprocessSpec, crop_for, resize, target_shape
from quasar.runtime.sources import Item


class Preparer:
    """Decodes and preprocesses one input per call; stateless, so worker threads share one instance.

    Args:
        spec: the model's preprocessing spec.
        max_pixels: decompression-bomb limit on the decoded image (None: no limit).
        reduced_decode: decode large JPEGs at 1/2, 1/4 or 1/8 scale when the result still covers the
            resize target (libjpeg's DCT scaling: several times faster, and itself a smoothing filter).
        max_file_bytes: refuse larger files without reading them.
    """

    def __init__(self, spec: PreprocessSpec, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 reduced_decode: bool = True, max_file_bytes: int = 1 << 30) -> None:
        self.spec = spec
        self.max_pixels = max_pixels
        self.reduced_decode = reduced_decode
        self.max_file_bytes = max_file_bytes

    def min_decoded_shape(self, height: int, width: int) -> tuple[int, int]:
        """The resize target (before any crop) for a stored image of this size (orientation-free)."""
        try:
            rh, rw, _ = target_shape(height, width, self.spec)
        except ValueError:  # refused in finish(); decode at full scale (such an image is small)
            return height, width
        return rh, rw

    def decode(self, item: Item) -> Decoded:
        if item.error is not None:
            raise ImageError(item.error)
        if item.array is not None:
            return from_array(item.array, order=item.array_order, max_pixels=self.max_pixels)
        data = item.data if item.data is not None else read_file(item.path, self.max_file_bytes)
        return decode(data, max_pixels=self.max_pixels,
                      min_shape=self.min_decoded_shape if self.reduced_decode else None)

    def finish(self, decoded: Decoded) -> np.ndarray:
        """Resize/crop per spec to a contiguous uint8 HxWx3 array in the spec's channel order."""
        spec = self.spec
        h, w = decoded.full_size
        try:
            rh, rw, crop = target_shape(h, w, spec)
        except ValueError as e:  # ShapeError: an extreme aspect ratio
            raise ImageError(str(e)) from None
        out = resize(decoded.image, rh, rw, spec.interpolation, spec.resampler)
        if crop is not None:
            out = crop_for(out, crop, spec)
        if spec.channel_order == "BGR":
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)

    def __call__(self, item: Item) -> np.ndarray:
        return self.finish(self.decode(item))

    def with_warning(self, item: Item) -> tuple[np.ndarray, str | None]:
        """Like calling it, plus a one-line warning for an image too small to say much (else None)."""
        decoded = self.decode(item)
        return self.finish(decoded), tiny_image_warning(*decoded.full_size, self.spec)


def tiny_image_warning(height: int, width: int, spec: PreprocessSpec) -> str | None:
    """A warning for an image whose short side is under ``max(TINY_SIDE, spec.min_size)`` px: it is
    upscaled for the model, and its score then mostly reflects the upscaling."""
    limit = max(TINY_SIDE, spec.min_size)
    if min(height, width) >= limit:
        return None
    return (f"tiny image ({width}x{height} px, under {limit} px on its short side): scored after upscaling, "
            "so the score says little about the image")


TINY_SIDE = 32
