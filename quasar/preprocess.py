"""Preprocessing specs and the OpenCV implementation shared by centroid building and the runtime.

A :class:`PreprocessSpec` is data, not code: it travels inside centroid packs (JSON) and fused ONNX
graphs (metadata), so every stage resizes an image the same way. The functions here use numpy and
OpenCV only, so the runtime can import them without torch.

Pixel normalisation (mean/std, 0..255 -> 0..1) is *not* done here: fused graphs take uint8 RGB
NHWC and normalise inside the graph, and the torch encoders do the same in ``Encoder.forward``. The
CPU side therefore only decodes, resizes and crops.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from quasar.constants import CLIP_MEAN, CLIP_STD

SPEC_VERSION = 2
# Every policy bounds what one image can become, so memory and time per image are bounded whatever
# its aspect ratio: ``native`` keeps both sides within ``size``; ``center_crop`` (before its crop) and
# ``short_side`` keep the long side within MAX_ASPECT_RATIO x ``size``. Images that would exceed the
# bound (a 16384x4 strip) are refused with the reason, not padded: padding would score the padding.
MAX_ASPECT_RATIO = 16
RESAMPLERS = ("pil", "opencv_area")
POLICIES = ("center_crop", "native", "short_side", "fixed")
# ``fixed`` (static graphs, ``quasar export onnx --static HxW``): every image becomes exactly height x width,
# by stretching the whole image or by covering the box and cropping its centre.
FITS = ("stretch", "crop")
FIXED_ONLY_FIELDS = ("height", "width", "fit")  # serialised only for policy "fixed" (older specs stay byte-identical)
INTERPOLATIONS = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes encoder input.

    Attributes:
        policy: ``center_crop`` resizes the short side to ``size`` and crops the centre ``size`` x ``size``
            (OpenCLIP's default); ``native`` keeps the aspect ratio and only caps the long side at ``size``
            (the paper's native-resolution RN50*); ``short_side`` resizes the short side to ``size``
            without cropping.
        size: crop size, long-side cap or short-side length, depending on ``policy``.
        interpolation: filter used when upscaling. Downscaling is always antialiased (see :func:`resize`).
        mean, std: per-channel normalisation in 0..1 units, applied inside the graph.
        channel_order: ``RGB`` or ``BGR``: what the encoder expects.
        size_multiple: output height and width are rounded down to a multiple of this (patch size for
            ViTs, stride for CNNs) for the policies that keep the aspect ratio.
        min_size: smallest side accepted after resizing; smaller images are upscaled to it.
        resampler: ``pil`` resizes with Pillow's antialiased filters, exactly what PIL/torchvision
            pipelines (open_clip, timm, pyiqa) feed their models, so scores agree with them (measured:
            SRCC 0.996 against a PIL pipeline with reduced JPEG decoding, 1.000 without);
            ``opencv_area`` (spec version 1) shrinks with OpenCV's INTER_AREA: faster from very large
            images, but only SRCC ~0.984-0.99 against PIL pipelines.
        height, width, fit: policy ``fixed`` only (static graphs): the exact output size, and how an image
            gets there: ``stretch`` resizes the whole image to width x height (aspect not kept);
            ``crop`` resizes it to cover the box keeping the aspect and crops the centre (offsets
            floored). ``size`` is then max(height, width); ``size_multiple`` and ``min_size`` are ignored.
    """

    policy: str = "center_crop"
    size: int = 224
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    channel_order: str = "RGB"
    size_multiple: int = 1
    min_size: int = 32
    resampler: str = "pil"
    version: int = field(default=SPEC_VERSION)
    height: int | None = None
    width: int | None = None
    fit: str | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown resize policy {self.policy!r}; expected one of {POLICIES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; expected one of {tuple(INTERPOLATIONS)}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, not {self.channel_order!r}")
        if self.resampler not in RESAMPLERS:
            raise ValueError(f"unknown resampler {self.resampler!r}; expected one of {RESAMPLERS}")
        if self.size < 1 or self.size_multiple < 1:
            raise ValueError("size and size_multiple must be positive")
        if self.policy == "fixed":
            hw = (self.height, self.width)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in hw):
                raise ValueError(f"policy 'fixed' needs integer height and width >= 1, got {hw}")
            if self.fit not in FITS:
                raise ValueError(f"policy 'fixed' needs fit in {FITS}, not {self.fit!r}")
        elif any(getattr(self, k) is not None for k in FIXED_ONLY_FIELDS):
            raise ValueError(f"height, width and fit apply to policy 'fixed' only, not {self.policy!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def fixed_size(self) -> bool:
        """True when every image comes out at the same height and width."""
        return self.policy in ("center_crop", "fixed")

    @property
    def output_hw(self) -> tuple[int, int] | None:
        """(height, width) every image comes out at, for the fixed-size policies; else None."""
        if self.policy == "fixed":
            return int(self.height), int(self.width)
        if self.policy == "center_crop":
            return self.size, self.size
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.policy != "fixed":  # keeps every older spec's JSON byte-identical
            for k in FIXED_ONLY_FIELDS:
                del d[k]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessSpec:
        d = dict(d)
        version = int(d.get("version", SPEC_VERSION))
        if version > SPEC_VERSION:
            raise ValueError(f"preprocess spec version {version} is newer than this QUASAR ({SPEC_VERSION})")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocess spec fields: {sorted(unknown)}")
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        if version < 2:  # version 1 specs always shrank with OpenCV's INTER_AREA
            d.setdefault("resampler", "opencv_area")
            d["version"] = SPEC_VERSION
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        return cls.from_dict(json.loads(text))


def _round_multiple(v: float, m: int) -> int:
    return max(m, int(v) // m * m)


class ShapeError(ValueError):
    """An image whose preprocessed size would exceed the spec's bounds (an extreme aspect ratio)."""


def max_resized_side(spec: PreprocessSpec) -> int:
    """The longest side :func:`target_shape` may return for ``spec`` (see ``MAX_ASPECT_RATIO``)."""
    if spec.policy == "fixed":
        return MAX_ASPECT_RATIO * max(spec.output_hw)
    return spec.size if spec.policy == "native" else MAX_ASPECT_RATIO * spec.size


def _cover(height: int, width: int, th: int, tw: int) -> tuple[int, int]:
    """The size an image covers ``th`` x ``tw`` at, keeping its aspect ratio (each side at least the target's)."""
    scale = max(tw / width, th / height)
    return max(th, round(height * scale)), max(tw, round(width * scale))


def fixed_target(height: int, width: int, spec: PreprocessSpec) -> tuple[int, int, tuple[int, int] | None]:
    """Policy ``fixed``: ``stretch`` -> (H, W, None); ``crop`` -> the covering size and the (H, W) crop.

    Cover: scale = max(W / w, H / h), sides round(w * s) and round(h * s), each at least W resp. H.
    """
    th, tw = spec.output_hw
    if spec.fit == "stretch":
        return th, tw, None
    return (*_cover(height, width, th, tw), (th, tw))


def target_shape(height: int, width: int, spec: PreprocessSpec) -> tuple[int, int, tuple[int, int] | None]:
    """Return (resized_h, resized_w, crop) for an image of the given size; crop is (ch, cw) or None.

    Raises :class:`ShapeError` when a side would exceed :func:`max_resized_side` (an extreme aspect
    ratio), so every policy bounds the pixels one image costs.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image has no pixels ({height}x{width})")
    if spec.policy == "fixed":
        rh, rw, crop = fixed_target(height, width, spec)
    elif spec.policy == "center_crop":
        scale = spec.size / min(height, width)
        rh, rw = max(spec.size, round(height * scale)), max(spec.size, round(width * scale))
        crop: tuple[int, int] | None = (spec.size, spec.size)
    else:
        if spec.policy == "native":
            scale = min(1.0, spec.size / max(height, width))
        else:  # short_side
            scale = spec.size / min(height, width)
        if min(height, width) * scale < spec.min_size:
            scale = spec.min_size / min(height, width)
        rh = _round_multiple(round(height * scale), spec.size_multiple)
        rw = _round_multiple(round(width * scale), spec.size_multiple)
        crop = None
    limit = max_resized_side(spec)
    # ``fixed`` + stretch is bounded in memory whatever the image, but an image whose aspect ratio is
    # far from the model's would be scored squashed beyond recognition: both fits refuse when the
    # covering size (what ``crop`` resizes to) exceeds the bound, i.e. the same aspect-ratio rule.
    bh, bw = _cover(height, width, *spec.output_hw) if spec.policy == "fixed" else (rh, rw)
    if max(bh, bw) > limit:
        rh, rw = bh, bw
        ratio = max(height, width) / min(height, width)
        raise ShapeError(f"extreme aspect ratio ({width}x{height}, {ratio:.0f}:1): the model's {spec.policy} "
                         f"preprocessing (size {spec.size}, min size {spec.min_size}) would make it {rw}x{rh}, "
                         f"over its {limit} px bound; crop the image first")
    return rh, rw, crop


def resize(img: np.ndarray, height: int, width: int, interpolation: str = "bicubic",
           resampler: str = "pil") -> np.ndarray:
    """Resize with an antialiased filter when shrinking.

    Plain bicubic downscaling aliases badly (PIL and torchvision antialias by default), which moves
    scores far from the reference pipeline. ``pil`` uses Pillow's separable resampling, whose
    kernel support grows with the scale factor, i.e. exactly what PIL-based pipelines compute;
    ``opencv_area`` uses OpenCV's INTER_AREA box filter to shrink.
    """
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    if resampler == "pil":
        from PIL import Image

        filt = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                "area": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST}[interpolation]
        return np.array(Image.fromarray(np.ascontiguousarray(img)).resize((width, height), filt))  # writable
    if height <= h and width <= w:
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, (width, height), interpolation=INTERPOLATIONS[interpolation])


def crop_offsets(height: int, width: int, crop: tuple[int, int], spec: PreprocessSpec | None = None) -> tuple[int, int]:
    """(top, left) of the spec's centre crop of a ``height`` x ``width`` image: rounded like torchvision's
    ``center_crop``, or floored for policy ``fixed`` (the static-graph contract, simple to reproduce in C).
    The one rule, shared by the CPU crop below and the torch backend's crop on the device."""
    ch, cw = crop
    if spec is not None and spec.policy == "fixed":
        return max(0, (height - ch) // 2), max(0, (width - cw) // 2)
    return max(0, int(round((height - ch) / 2.0))), max(0, int(round((width - cw) / 2.0)))


def center_crop(img: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """Crop the centre; offsets are rounded like torchvision's ``center_crop`` (not floored)."""
    top, left = crop_offsets(*img.shape[:2], (ch, cw))
    return img[top : top + ch, left : left + cw]


def crop_for(img: np.ndarray, crop: tuple[int, int], spec: PreprocessSpec) -> np.ndarray:
    """The spec's centre crop (:func:`crop_offsets`)."""
    top, left = crop_offsets(*img.shape[:2], crop, spec)
    return img[top : top + crop[0], left : left + crop[1]]


def preprocess(img_rgb: np.ndarray, spec: PreprocessSpec, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize and crop an RGB uint8 HWC image per ``spec``; returns a contiguous uint8 HWC array.

    The channel order of the result is ``spec.channel_order``. ``full_size`` is the (height, width)
    the target shape is computed from when ``img_rgb`` is a reduced decode of a larger image (JPEG
    DCT scaling, as the runtime does), so the output shape never depends on the decode scale;
    default: ``img_rgb``'s own size. Centroid building and the runtime both call this.
    """
    if img_rgb.ndim != 3 or img_rgb.shape[2] != 3 or img_rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {img_rgb.dtype} {img_rgb.shape}")
    rh, rw, crop = target_shape(*(full_size or img_rgb.shape[:2]), spec)
    out = resize(img_rgb, rh, rw, spec.interpolation, spec.resampler)
    if crop is not None:
        out = crop_for(out, crop, spec)
    if spec.channel_order == "BGR":
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)
