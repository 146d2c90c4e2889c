"""Deterministic synthetic distortions at five graded levels: the 25 types of KADID-10k / KADIS-700k.

Each function maps an RGB uint8 HxWx3 image and a level in 1..5 (1 = just visible, 5 = severe) to
a distorted RGB uint8 image of the same shape. Random draws use a generator seeded from a per-type
salt, the level and the image shape (``_rng``), so the same input always gives the same output bytes
(anchor embeddings are cached by content and must be stable). Spatial strengths (sigmas, radii,
shifts, patch and block sizes, block counts) are defined for a 512-px short side and scaled with the
image (``_scale``); photometric ones (noise deviations, gains, qualities) are not.

Types are grouped into KADID's seven families (``FAMILIES``, reverse map ``TYPE_FAMILY``); each
function's docstring gives its parameter per level. Where KADID has both directions (mean shift,
contrast change) one direction is used: ``mean_shift`` brightens, ``contrast_change`` reduces
contrast. ``darken`` / ``brighten`` cover the other photometric direction. Names of the former
eleven-type set are accepted by :func:`distort` through ``OLD_NAMES``.

``CAMERA_FAMILIES`` adds camera defects outside KADID's taxonomy: ``optics`` (vignetting, lateral
chromatic aberration, haze / veiling glare), ``white_balance`` (a warm or cool cast) and ``mixture``
(a dim noisy frame, a shaken compressed one, a dark denoised compressed one). ``KADID_TYPES`` are the
25 KADID types; ``ANCHOR_TYPES`` (all 32 types) and ``HELDOUT_TYPES`` (empty) are kept for callers of
the former anchor / held-out split.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

LEVELS = (1, 2, 3, 4, 5)


def _rng(img: np.ndarray, level: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([salt, level, *img.shape])


def _scale(img: np.ndarray) -> float:
    """Distortion strengths are defined for a 512-px short side and scaled with the image."""
    return min(img.shape[:2]) / 512.0


def _area(img: np.ndarray) -> float:
    """Image area relative to a 512x512 image (counts of patches / blocks scale with it)."""
    return img.shape[0] * img.shape[1] / 512.0**2


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _lut(img: np.ndarray, curve: np.ndarray) -> np.ndarray:
    return _u8(255.0 * curve)[img]


def _to_lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    return _u8(255.0 * cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


def _codec(img: np.ndarray, ext: str, params: list[int]) -> np.ndarray:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img[:, :, ::-1]), params)
    if not ok:
        raise RuntimeError(f"{ext} encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


# --- blur -------------------------------------------------------------------------------------

def gaussian_blur(img: np.ndarray, level: int) -> np.ndarray:
    """Gaussian blur, sigma = (1, 1.7, 2.7, 4.2, 6.5) px at 512."""
    sigma = (1.0, 1.7, 2.7, 4.2, 6.5)[level - 1] * _scale(img)
    return cv2.GaussianBlur(img, (0, 0), sigmaX=max(sigma, 0.3))


def lens_blur(img: np.ndarray, level: int) -> np.ndarray:
    """Defocus: antialiased disk kernel, radius = (2, 3, 4.5, 6.5, 9) px at 512."""
    r = max((2.0, 3.0, 4.5, 6.5, 9.0)[level - 1] * _scale(img), 0.5)
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    k = np.clip(r + 0.5 - np.hypot(xx, yy), 0.0, 1.0).astype(np.float32)
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT_101)


def motion_blur(img: np.ndarray, level: int) -> np.ndarray:
    """Linear motion blur at 30 degrees, length = (5, 9, 15, 23, 33) px at 512."""
    length = max(3, int(round((5, 9, 15, 23, 33)[level - 1] * _scale(img))))
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), 30, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(img, -1, k / k.sum())


# --- color ------------------------------------------------------------------------------------

def color_diffusion(img: np.ndarray, level: int) -> np.ndarray:
    """Gaussian blur of the Lab a*/b* channels only, sigma = (3, 6, 11, 18, 28) px at 512."""
    sigma = (3.0, 6.0, 11.0, 18.0, 28.0)[level - 1] * _scale(img)
    lab = _to_lab(img)
    lab[..., 1:] = cv2.GaussianBlur(lab[..., 1:], (0, 0), sigmaX=max(sigma, 0.5))
    return _from_lab(lab)


def color_shift(img: np.ndarray, level: int) -> np.ndarray:
    """KADID colour shift: green channel translated by (d, d), d = (1, 2, 4, 7, 11) px at 512."""
    d = max((1.0, 2.0, 4.0, 7.0, 11.0)[level - 1] * _scale(img), 1.0)
    m = np.float32([[1, 0, d], [0, 1, d]])
    out = img.copy()
    out[..., 1] = cv2.warpAffine(img[..., 1], m, img.shape[1::-1], flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT_101)
    return out


def color_quantization(img: np.ndarray, level: int) -> np.ndarray:
    """Median-cut palette (Pillow, from every 3rd pixel), nearest colour, no dither; k = (48, 24, 12, 6, 3)."""
    k = (48, 24, 12, 6, 3)[level - 1]
    none = Image.Dither.NONE
    pal = Image.fromarray(np.ascontiguousarray(img[::3, ::3])).quantize(k, Image.Quantize.MEDIANCUT, dither=none)
    return np.asarray(Image.fromarray(img).quantize(palette=pal, dither=none).convert("RGB")).copy()


def color_saturation_1(img: np.ndarray, level: int) -> np.ndarray:
    """Desaturation: Lab chroma (a*, b*) scaled by (0.6, 0.4, 0.25, 0.1, 0)."""
    keep = (0.6, 0.4, 0.25, 0.1, 0.0)[level - 1]
    lab = _to_lab(img)
    lab[..., 1:] *= keep
    return _from_lab(lab)


def color_saturation_2(img: np.ndarray, level: int) -> np.ndarray:
    """Oversaturation: Lab chroma (a*, b*) scaled by (1.5, 2, 2.7, 3.6, 5), clipped to RGB."""
    gain = (1.5, 2.0, 2.7, 3.6, 5.0)[level - 1]
    lab = _to_lab(img)
    lab[..., 1:] *= gain
    return _from_lab(lab)


# --- compression ------------------------------------------------------------------------------

def jpeg(img: np.ndarray, level: int) -> np.ndarray:
    """JPEG (OpenCV/libjpeg), quality = (30, 17, 10, 6, 3)."""
    q = (30, 17, 10, 6, 3)[level - 1]
    return _codec(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, q])


def jpeg2000(img: np.ndarray, level: int) -> np.ndarray:
    """JPEG 2000 (OpenCV/OpenJPEG), IMWRITE_JPEG2000_COMPRESSION_X1000 = (40, 20, 10, 5, 2)."""
    rate = (40, 20, 10, 5, 2)[level - 1]
    h, w = img.shape[:2]
    if min(h, w) < 64:  # OpenJPEG's default 6 resolution levels need a larger image: pad, then crop
        img = cv2.copyMakeBorder(img, 0, max(64 - h, 0), 0, max(64 - w, 0), cv2.BORDER_REPLICATE)
    return _codec(img, ".jp2", [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, rate])[:h, :w].copy()


# --- noise ------------------------------------------------------------------------------------

def white_noise(img: np.ndarray, level: int) -> np.ndarray:
    """Additive Gaussian noise per RGB value, sd = (6, 12, 20, 32, 48)."""
    sd = (6, 12, 20, 32, 48)[level - 1]
    noise = _rng(img, level, 1).normal(0.0, sd, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def white_noise_color_component(img: np.ndarray, level: int) -> np.ndarray:
    """Additive Gaussian noise on the YCbCr chroma (Cb, Cr) only, sd = (10, 18, 28, 40, 56)."""
    sd = (10, 18, 28, 40, 56)[level - 1]
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[..., 1:] += _rng(img, level, 3).normal(0.0, sd, (*img.shape[:2], 2)).astype(np.float32)
    return cv2.cvtColor(_u8(ycc), cv2.COLOR_YCrCb2RGB)


def impulse_noise(img: np.ndarray, level: int) -> np.ndarray:
    """Salt & pepper: fraction p = (0.005, 0.015, 0.03, 0.06, 0.1) of pixels set to black/white."""
    p = (0.005, 0.015, 0.03, 0.06, 0.1)[level - 1]
    u = _rng(img, level, 2).random(img.shape[:2])
    out = img.copy()
    out[u < p / 2] = 0
    out[u > 1 - p / 2] = 255
    return out


def multiplicative_noise(img: np.ndarray, level: int) -> np.ndarray:
    """Speckle: x * (1 + n), n Gaussian per RGB value with sd = (0.06, 0.12, 0.2, 0.3, 0.42)."""
    sd = (0.06, 0.12, 0.2, 0.3, 0.42)[level - 1]
    n = _rng(img, level, 4).normal(0.0, sd, img.shape).astype(np.float32)
    return _u8(img.astype(np.float32) * (1.0 + n))


def denoise(img: np.ndarray, level: int) -> np.ndarray:
    """Gaussian noise sd = (10, 18, 28, 40, 55), then RGB non-local means (h = 1.2 sd, 7x7 patches, 9x9 search)."""
    sd = (10, 18, 28, 40, 55)[level - 1]
    noisy = _u8(img.astype(np.float32) + _rng(img, level, 5).normal(0.0, sd, img.shape).astype(np.float32))
    return cv2.fastNlMeansDenoising(noisy, None, 1.2 * sd, 7, 9)


# --- brightness -------------------------------------------------------------------------------

def brighten(img: np.ndarray, level: int) -> np.ndarray:
    """Brightening tone curve 1 - (1 - x)^g per channel, g = (1.25, 1.65, 2.2, 3, 4.2)."""
    g = (1.25, 1.65, 2.2, 3.0, 4.2)[level - 1]
    return _lut(img, 1.0 - (1.0 - np.arange(256) / 255.0) ** g)


def darken(img: np.ndarray, level: int) -> np.ndarray:
    """Darkening tone curve x^g per channel, g = (1.25, 1.65, 2.2, 3, 4.2)."""
    g = (1.25, 1.65, 2.2, 3.0, 4.2)[level - 1]
    return _lut(img, (np.arange(256) / 255.0) ** g)


def mean_shift(img: np.ndarray, level: int) -> np.ndarray:
    """Constant added to every RGB value (increase only), c = (12, 25, 42, 65, 95), clipped."""
    c = (12, 25, 42, 65, 95)[level - 1]
    return _lut(img, np.minimum((np.arange(256) + c) / 255.0, 1.0))


# --- spatial ----------------------------------------------------------------------------------

def jitter(img: np.ndarray, level: int) -> np.ndarray:
    """Each pixel fetched from a random offset uniform in [-d, d]^2, d = (1, 2, 3.5, 5.5, 8) px at 512."""
    d = max((1.0, 2.0, 3.5, 5.5, 8.0)[level - 1] * _scale(img), 1.0)
    h, w = img.shape[:2]
    off = _rng(img, level, 6).uniform(-d, d, (2, h, w)).astype(np.float32)
    mx = off[0] + np.arange(w, dtype=np.float32)[None, :]
    my = off[1] + np.arange(h, dtype=np.float32)[:, None]
    return cv2.remap(img, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)


def non_eccentricity_patch(img: np.ndarray, level: int) -> np.ndarray:
    """n = (25, 60, 120, 220, 380) 16-px patches (per 512x512) copied to positions up to 24 px away (at 512)."""
    s = _scale(img)
    p = max(int(round(16 * s)), 3)
    reach = max(int(round(24 * s)), 2)
    n = max(1, int(round((25, 60, 120, 220, 380)[level - 1] * _area(img))))
    h, w = img.shape[:2]
    if h <= p or w <= p:
        return np.ascontiguousarray(img[::-1, ::-1])  # too small for patches: flip, still distorted
    rng = _rng(img, level, 7)
    ys, xs = rng.integers(0, h - p, n), rng.integers(0, w - p, n)
    dy, dx = rng.integers(-reach, reach + 1, (2, n))
    dy[(dy == 0) & (dx == 0)] = reach
    ty, tx = np.clip(ys + dy, 0, h - p), np.clip(xs + dx, 0, w - p)
    out = img.copy()
    for y, x, y2, x2 in zip(ys, xs, ty, tx, strict=True):
        out[y2:y2 + p, x2:x2 + p] = img[y:y + p, x:x + p]
    return out


def pixelate(img: np.ndarray, level: int) -> np.ndarray:
    """Area downsampling then nearest upsampling, factor = (2, 3, 5, 8, 12) at 512 (at least 1 + level/4)."""
    f = max((2, 3, 5, 8, 12)[level - 1] * _scale(img), 1.0 + 0.25 * level)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def quantization(img: np.ndarray, level: int) -> np.ndarray:
    """Uniform quantisation of each RGB channel to n = (20, 12, 8, 5, 3) grey levels."""
    n = (20, 12, 8, 5, 3)[level - 1]
    step = 255.0 / (n - 1)
    return _lut(img, np.round(np.arange(256) / step) * step / 255.0)


def color_block(img: np.ndarray, level: int) -> np.ndarray:
    """n = (3, 8, 16, 28, 45) uniformly coloured 32-px blocks (per 512x512, size at 512) pasted at random."""
    b = max(int(round(32 * _scale(img))), 2)
    n = max(1, int(round((3, 8, 16, 28, 45)[level - 1] * _area(img))))
    h, w = img.shape[:2]
    rng = _rng(img, level, 8)
    ys, xs = rng.integers(0, max(h - b, 0) + 1, n), rng.integers(0, max(w - b, 0) + 1, n)
    colors = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    out = img.copy()
    for y, x, c in zip(ys, xs, colors, strict=True):
        out[y:y + b, x:x + b] = c
    return out


# --- sharpness & contrast ---------------------------------------------------------------------

def high_sharpen(img: np.ndarray, level: int) -> np.ndarray:
    """Unsharp mask x + a (x - G_sigma x), sigma = 1.5 px at 512, amount a = (1, 2, 3.5, 6, 10)."""
    a = (1.0, 2.0, 3.5, 6.0, 10.0)[level - 1]
    f = img.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), sigmaX=max(1.5 * _scale(img), 0.5))
    return _u8(f + a * (f - blur))


def contrast_change(img: np.ndarray, level: int) -> np.ndarray:
    """Contrast reduction toward the image mean, kept fraction = (0.8, 0.6, 0.42, 0.28, 0.16)."""
    keep = (0.8, 0.6, 0.42, 0.28, 0.16)[level - 1]
    f = img.astype(np.float32)
    m = float(f.mean())
    return _u8(m + keep * (f - m))


# --- camera defects beyond the KADID taxonomy ---------------------------------------------------
# Optics, white balance and mixtures of two or three defects (real photos rarely carry one alone).

def _radius(img: np.ndarray) -> np.ndarray:
    """Distance of every pixel from the centre, 1.0 at the corners: [H, W] float32."""
    h, w = img.shape[:2]
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
    return np.sqrt((y[:, None] ** 2 + x[None, :] ** 2) / 2.0)


def vignetting(img: np.ndarray, level: int) -> np.ndarray:
    """Light fall-off toward the corners (in linear light): gain 1 - k r^2 with r = 1 at the corners,
    k = (0.25, 0.4, 0.55, 0.7, 0.85)."""
    k = (0.25, 0.4, 0.55, 0.7, 0.85)[level - 1]
    lin = (img.astype(np.float32) / 255.0) ** 2.2
    lin *= (1.0 - k * _radius(img) ** 2)[:, :, None]
    return _u8(255.0 * lin ** (1 / 2.2))


def chromatic_aberration(img: np.ndarray, level: int) -> np.ndarray:
    """Lateral colour fringes: red magnified and blue shrunk about the centre so that at the corners
    they move by d = (1, 2, 3.5, 5.5, 8) px at 512 in opposite directions."""
    d = (1.0, 2.0, 3.5, 5.5, 8.0)[level - 1] * _scale(img)
    h, w = img.shape[:2]
    half_diag = 0.5 * float(np.hypot(h, w))
    out = img.copy()
    for ch, sign in ((0, 1.0), (2, -1.0)):
        s = 1.0 + sign * d / half_diag
        m = np.float32([[s, 0, (1 - s) * (w - 1) / 2], [0, s, (1 - s) * (h - 1) / 2]])
        out[:, :, ch] = cv2.warpAffine(img[:, :, ch], m, (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT)
    return out


def haze(img: np.ndarray, level: int) -> np.ndarray:
    """Veiling glare / haze: a bright veil added, x + a (0.92*255 - x) with a = (0.1, 0.2, 0.32, 0.46, 0.62),
    strongest toward the top of the frame (the veil fades to 60 % at the bottom)."""
    a = (0.1, 0.2, 0.32, 0.46, 0.62)[level - 1]
    h = img.shape[0]
    ramp = (1.0 - 0.4 * np.linspace(0.0, 1.0, h, dtype=np.float32))[:, None, None]
    f = img.astype(np.float32)
    return _u8(f + a * ramp * (0.92 * 255.0 - f))


def white_balance(img: np.ndarray, level: int) -> np.ndarray:
    """White-balance cast: red and blue gains 1 +- c, c = (0.08, 0.15, 0.24, 0.35, 0.5), in linear light;
    warm (red up, blue down) or cool, the direction drawn once per image shape."""
    c = (0.08, 0.15, 0.24, 0.35, 0.5)[level - 1]
    sign = 1.0 if _rng(img, 0, 41).random() < 0.5 else -1.0
    lin = (img.astype(np.float32) / 255.0) ** 2.2
    lin[..., 0] *= 1.0 + sign * c
    lin[..., 2] *= 1.0 - sign * c
    return _u8(255.0 * np.clip(lin, 0.0, 1.0) ** (1 / 2.2))


def low_light(img: np.ndarray, level: int) -> np.ndarray:
    """A dim, noisy frame: ``darken`` at this level plus Gaussian noise, sd = (3, 6, 12, 20, 32)."""
    sd = (3, 6, 12, 20, 32)[level - 1]
    noise = _rng(img, level, 43).normal(0.0, sd, img.shape)
    return _u8(darken(img, level).astype(np.float32) + noise)


def shaken_compressed(img: np.ndarray, level: int) -> np.ndarray:
    """A shaken, compressed frame: ``motion_blur`` at this level, then JPEG at quality (70, 45, 25, 14, 8)."""
    q = (70, 45, 25, 14, 8)[level - 1]
    return _codec(motion_blur(img, level), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, q])


def night_phone(img: np.ndarray, level: int) -> np.ndarray:
    """Three defects: ``darken`` and ``denoise`` (noise smeared by denoising) at this level, then JPEG at
    quality (80, 60, 40, 25, 15)."""
    q = (80, 60, 40, 25, 15)[level - 1]
    return _codec(denoise(darken(img, level), level), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, q])


DISTORTIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    f.__name__: f for f in (
        gaussian_blur, lens_blur, motion_blur,
        color_diffusion, color_shift, color_quantization, color_saturation_1, color_saturation_2,
        jpeg, jpeg2000,
        white_noise, white_noise_color_component, impulse_noise, multiplicative_noise, denoise,
        brighten, darken, mean_shift,
        jitter, non_eccentricity_patch, pixelate, quantization, color_block,
        high_sharpen, contrast_change,
        vignetting, chromatic_aberration, haze, white_balance,
        low_light, shaken_compressed, night_phone,
    )
}
FAMILIES: dict[str, tuple[str, ...]] = {
    "blur": ("gaussian_blur", "lens_blur", "motion_blur"),
    "color": ("color_diffusion", "color_shift", "color_quantization", "color_saturation_1", "color_saturation_2"),
    "compression": ("jpeg", "jpeg2000"),
    "noise": ("white_noise", "white_noise_color_component", "impulse_noise", "multiplicative_noise", "denoise"),
    "brightness": ("brighten", "darken", "mean_shift"),
    "spatial": ("jitter", "non_eccentricity_patch", "pixelate", "quantization", "color_block"),
    "sharpness_contrast": ("high_sharpen", "contrast_change"),
}
# Camera defects outside KADID's taxonomy: lens optics, white balance, and mixtures of defects.
CAMERA_FAMILIES: dict[str, tuple[str, ...]] = {
    "optics": ("vignetting", "chromatic_aberration", "haze"),
    "white_balance": ("white_balance",),
    "mixture": ("low_light", "shaken_compressed", "night_phone"),
}
KADID_TYPES: tuple[str, ...] = tuple(t for types in FAMILIES.values() for t in types)
FAMILIES = {**FAMILIES, **CAMERA_FAMILIES}
TYPE_FAMILY: dict[str, str] = {t: fam for fam, types in FAMILIES.items() for t in types}
# Names of the former eleven-type set -> the KADID type that replaced them.
OLD_NAMES: dict[str, str] = {
    "desaturate": "color_saturation_1",
    "contrast_loss": "contrast_change",
    "overexpose": "brighten",
    "salt_pepper": "impulse_noise",
    "quantize": "quantization",
}
ANCHOR_TYPES: tuple[str, ...] = tuple(DISTORTIONS)
HELDOUT_TYPES: tuple[str, ...] = ()


@functools.cache
def signature(kind: str) -> str:
    """A short hash of the type's code: cached embeddings of distorted anchors are keyed by it, so a
    re-graded type never reuses embeddings of its former version."""
    import hashlib
    import inspect

    fn = DISTORTIONS[OLD_NAMES.get(kind, kind)]
    return hashlib.sha1(inspect.getsource(fn).encode()).hexdigest()[:8]


def distort(img: np.ndarray, kind: str, level: int) -> np.ndarray:
    """Apply distortion ``kind`` (a type or an ``OLD_NAMES`` alias) at ``level`` (1..5); 0 returns ``img``."""
    kind = OLD_NAMES.get(kind, kind)
    if kind not in DISTORTIONS:
        raise ValueError(f"unknown distortion {kind!r}; known: {sorted(DISTORTIONS)}")
    if level == 0:
        return img
    if level not in LEVELS:
        raise ValueError(f"distortion level must be 0..5, got {level}")
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {getattr(img, 'dtype', type(img))} "
                         f"{getattr(img, 'shape', '')}")
    out = DISTORTIONS[kind](np.ascontiguousarray(img), level)
    if out.shape != img.shape or out.dtype != np.uint8:
        raise ValueError(f"{kind} level {level} returned {out.dtype} {out.shape} for uint8 {img.shape}")
    return out
