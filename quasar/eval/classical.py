"""Classical no-reference IQA baselines for the quality benchmark: BRISQUE and NIQE.

Both take an RGB ``uint8`` array of shape ``(H, W, 3)`` and return a float where **lower means
better quality** (the convention of both papers; flip the sign before correlating with opinion
scores). Anything else (another dtype, a grey or RGBA array) raises :class:`ValueError`.

BRISQUE (:func:`brisque_score`)
    Mittal, Moorthy, Bovik, "No-reference image quality assessment in the spatial domain", IEEE TIP
    2012, through the pip package ``brisque==0.2.0`` (its pre-trained SVR and feature scaling; it is
    imported lazily, on first use, and the model is loaded once per process). Two kinds of override
    of ``brisque.BRISQUE`` (brisque 0.2.0, ``brisque/brisque.py``):

    * **numpy 2 fix**: the package's ``mean_squares_sum`` divides by ``filtered_values.shape`` (a
      tuple), so some features come out as ``(1,)``-shaped arrays, and ``scale_features`` calls
      ``float()`` on each of them, which numpy 2 refuses (``TypeError: only 0-dimensional arrays can
      be converted to Python scalars``). :meth:`scale_features` flattens them with ``np.ravel`` and
      applies the package's own min/max scaling (``scale_params['min_']`` / ``['max_']`` from its
      ``normalize.pickle``) to ``[-1, 1]``; the package's SVR then predicts as before.
    * **speed** (scores within 0.01 of the package's on the test photos): the local mean / variance
      use ``cv2.sepFilter2D`` with a zero border instead of ``scipy.signal.convolve2d(..., 'same')``
      (the same zero padding), and the AGGD fit is vectorised: the shape is read off a lookup table
      over the gamma grid (linear interpolation in place of the package's ``scipy.optimize.root``),
      with the package's conventions (grey from ``skimage.color.rgb2gray`` in [0, 1],
      ``C = 1/255``, right half ``x >= 0``, squared sigmas).
      ``tests/test_classical.py`` checks the result against the package with only the numpy-2 fix.

NIQE (:class:`NiqeModel`)
    Mittal, Soundararajan, Bovik, "Making a 'completely blind' image quality analyzer", IEEE SPL
    2013, implemented here from the paper and its reference MATLAB code (``computefeature.m``,
    ``estimateaggdparam.m``, ``estimatemodelparam.m``, ``computequality.m``):

    * grey luminance ``0.299 R + 0.587 G + 0.114 B`` in float64 on 0..255 (not rounded), cropped to
      whole 96 x 96 patches;
    * MSCN coefficients ``(I - mu) / (sigma + 1)`` with a 7 x 7 Gaussian window, sigma 7/6,
      replicated border, ``sigma = sqrt(|G*I^2 - mu^2|)``;
    * per patch, 18 features: the AGGD fit of the MSCN coefficients (shape, mean of the left and
      right scale parameters) and of the four paired products (horizontal, vertical, both
      diagonals, with the patch's circular shift as in ``circshift``): shape, mean, left and right
      scale. As in the reference code, the left/right features are the AGGD scale parameters
      ``beta = std * sqrt(G(1/a)/G(3/a))``, a fixed monotone function of the left/right variances
      that the paper lists; the shape comes from the nearest point of the grid ``0.2:0.001:10``;
    * two scales, the second on the image halved by bicubic interpolation with MATLAB ``imresize``'s
      antialiasing (an 8-tap filter for a factor of 2, symmetric border), with 48 x 48 patches: 36
      features per patch;
    * fitting (:meth:`NiqeModel.fit`): in each pristine image only patches whose sharpness (mean
      local sigma at the first scale) exceeds 0.75 of that image's sharpest patch; a multivariate
      Gaussian (mean, unbiased covariance) over the kept patches of all images;
    * scoring (:meth:`NiqeModel.score`): a Gaussian over all the image's patches and
      ``sqrt((mu1 - mu2)^T pinv((S1 + S2) / 2) (mu1 - mu2))``.

    MSCN coefficients below 1e-9 in magnitude (rounding noise of the local mean in flat regions)
    are set to 0, so that which side of the AGGD they fall on does not depend on the filter
    implementation. Patches whose features are undefined (no negative or no positive coefficient,
    e.g. flat regions) are dropped; the reference code's ``nanmean`` / ``nancov`` drop them per
    feature.

    **The original pristine model (``modelparameters.mat``, fitted on 125 photos) cannot be
    downloaded here**, so a model is fitted on pristine photos that the caller gives. The benchmark
    fits it on the project's *anchor* pristine photos, never on the photos it evaluates; scores of
    models fitted on different photos are not comparable. The JSON file written by
    :meth:`NiqeModel.save` keeps ``mu``, ``cov``, the feature settings and a ``provenance`` record.

Flat images
    A constant image (or one whose features are undefined everywhere) has no BRISQUE or NIQE score:
    both raise :class:`ValueError` rather than return ``nan`` or an arbitrary number.

Speed on one 768 x 512 photo (2 shared CPU cores, numpy 2.4, OpenCV 5): BRISQUE ~0.1 s, NIQE
~0.06 s; the first BRISQUE call also imports ``brisque`` and loads its SVR (~1.5 s).

Only numpy, scipy and OpenCV are imported with this module.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np
from scipy import special

__all__ = ["brisque_score", "NiqeModel", "niqe_features", "NIQE_VERSION"]

NIQE_VERSION = 1
_NIQE_FORMAT = "quasar-niqe"

# Shape grid of the reference AGGD fit (estimateaggdparam.m: gam = 0.2:0.001:10) and the ratio
# r(a) = G(2/a)^2 / (G(1/a) G(3/a)), which increases with a, so a lookup table inverts it.
_GAM = np.round(np.arange(0.2, 10.0 + 5e-4, 0.001), 3)
_R_GAM = special.gamma(2.0 / _GAM) ** 2 / (special.gamma(1.0 / _GAM) * special.gamma(3.0 / _GAM))


def _check_rgb_uint8(rgb: Any, name: str = "image") -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, not {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 RGB, got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {rgb.shape}")
    if min(rgb.shape[:2]) < 8:
        raise ValueError(f"{name} is too small: {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb


# --------------------------------------------------------------------------------------------
# AGGD fit, vectorised over rows
# --------------------------------------------------------------------------------------------


def _aggd_moments(x: np.ndarray, right_inclusive: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``x`` (n, m): left std, right std and the normalised ratio R-hat of the AGGD fit.

    The right half is ``x >= 0`` (brisque package) or ``x > 0`` (NIQE reference). A half with no
    value gives ``nan`` (MATLAB's mean of an empty vector).
    """
    m = x.shape[1]
    lo, hi = np.minimum(x, 0.0), np.maximum(x, 0.0)
    left_sum, right_sum = np.einsum("ij,ij->i", lo, lo), np.einsum("ij,ij->i", hi, hi)
    n_left = np.count_nonzero(x < 0, axis=1)
    n_right = m - n_left if right_inclusive else np.count_nonzero(x > 0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        left, right = np.sqrt(left_sum / n_left), np.sqrt(right_sum / n_right)
        g = left / right
        r_hat = (np.abs(x).sum(axis=1) / m) ** 2 / ((left_sum + right_sum) / m)
        r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return left, right, r_norm


def _aggd_shape(r_norm: np.ndarray, interpolate: bool) -> np.ndarray:
    """Invert r(a) = r_norm: the nearest grid point (NIQE reference) or linear interpolation."""
    r_norm = np.asarray(r_norm, dtype=np.float64)
    if interpolate:
        a = np.interp(r_norm, _R_GAM, _GAM)
    else:
        i = np.clip(np.searchsorted(_R_GAM, r_norm), 1, len(_GAM) - 1)
        nearer_left = (r_norm - _R_GAM[i - 1]) <= (_R_GAM[i] - r_norm)
        a = _GAM[np.where(nearer_left, i - 1, i)]
    return np.where(np.isfinite(r_norm), a, np.nan)


# --------------------------------------------------------------------------------------------
# BRISQUE
# --------------------------------------------------------------------------------------------


@functools.cache
def _brisque_classes() -> tuple[type, type]:
    """(package BRISQUE + numpy-2 scaling fix, the same + fast MSCN and AGGD fit); imports ``brisque``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.filters in brisque 0.2.0
        from brisque import BRISQUE

    class Numpy2BRISQUE(BRISQUE):
        def scale_features(self, features):
            # brisque 0.2.0 BRISQUE.scale_features, with np.ravel in place of float() per feature:
            # some features are (1,)-shaped arrays, which numpy 2 will not convert with float().
            f = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in features])
            lo = np.asarray(self.scale_params["min_"], dtype=np.float64)
            hi = np.asarray(self.scale_params["max_"], dtype=np.float64)
            return -1 + (2.0 / (hi - lo) * (f - lo))

    class FastBRISQUE(Numpy2BRISQUE):
        def calculate_mscn_coefficients(self, image, kernel_size=6, sigma=7 / 6):
            # = convolve2d(..., 'same') with its zero padding; the kernel is a symmetric outer product.
            k = self.gaussian_kernel2d(kernel_size, sigma=sigma).sum(axis=0).reshape(-1, 1)
            img = np.asarray(image, dtype=np.float64)
            mu = cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_CONSTANT)
            ex2 = cv2.sepFilter2D(img * img, cv2.CV_64F, k, k, borderType=cv2.BORDER_CONSTANT)
            return (img - mu) / (np.sqrt(np.abs(mu * mu - ex2)) + 1 / 255)

        def asymmetric_generalized_gaussian_fit(self, x):
            left, right, r_norm = _aggd_moments(np.reshape(x, (1, -1)), right_inclusive=True)
            alpha = float(_aggd_shape(r_norm, interpolate=True)[0])
            sl, sr = float(left[0]), float(right[0])
            c = math.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha)) if alpha == alpha else math.nan
            mean = (sr - sl) * c * special.gamma(2 / alpha) / special.gamma(1 / alpha)
            return alpha, mean, sl, sr

    return Numpy2BRISQUE, FastBRISQUE


@functools.cache
def _brisque_model():
    return _brisque_classes()[1]()


def brisque_score(rgb_uint8: np.ndarray) -> float:
    """BRISQUE score of an RGB ``uint8`` image (lower = better; ~0-100 on natural photos).

    Uses the pre-trained model of ``brisque==0.2.0``, loaded once per process. Raises
    :class:`ValueError` for non-uint8 or non-``(H, W, 3)`` input and for images whose features are
    undefined (a constant image).
    """
    rgb = _check_rgb_uint8(rgb_uint8)
    if rgb.min() == rgb.max():
        raise ValueError("BRISQUE is undefined for a constant image")
    model = _brisque_model()
    with np.errstate(divide="ignore", invalid="ignore"):
        score = float(model.score(rgb))
    if not math.isfinite(score):
        raise ValueError("BRISQUE features are undefined for this image")
    return score


# --------------------------------------------------------------------------------------------
# NIQE
# --------------------------------------------------------------------------------------------

_BLOCK = 96
_SHARPNESS_THRESHOLD = 0.75
_MSCN_ZERO = 1e-9
_WINDOW = cv2.getGaussianKernel(7, 7 / 6, cv2.CV_64F)  # = fspecial('gaussian', 7, 7/6), separable


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB imresize's bicubic kernel (a = -0.5)."""
    ax = np.abs(x)
    return np.where(
        ax <= 1,
        1.5 * ax**3 - 2.5 * ax**2 + 1,
        np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0),
    )


# imresize(im, 0.5, 'bicubic') with antialiasing: output pixel i samples 2i + 0.5 (0-based) with the
# kernel stretched by 2, i.e. taps at 2i-3 .. 2i+4 (distances 3.5 .. 0.5 .. 3.5), weights summing to 1.
_HALF_TAPS = 0.5 * _cubic(0.5 * np.array([3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5]))
_HALF_TAPS = (_HALF_TAPS / _HALF_TAPS.sum()).reshape(-1, 1)


def _imresize_half(im: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(im, 0.5)`` (bicubic, antialiased, symmetric border) for even sizes."""
    f = cv2.sepFilter2D(im, cv2.CV_64F, _HALF_TAPS, _HALF_TAPS, borderType=cv2.BORDER_REFLECT)
    return f[1::2, 1::2]  # the 8-tap kernel's anchor (4) puts taps 2i-3..2i+4 at 2i+1


def _grey(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _mscn(im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = cv2.sepFilter2D(im, cv2.CV_64F, _WINDOW, _WINDOW, borderType=cv2.BORDER_REPLICATE)
    ex2 = cv2.sepFilter2D(im * im, cv2.CV_64F, _WINDOW, _WINDOW, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(ex2 - mu * mu))
    mscn = (im - mu) / (sigma + 1)
    # In flat regions im - mu is rounding noise (~1e-13) whose sign depends on the filter's
    # summation order; make it 0 so that the AGGD's left/right split does not.
    mscn[np.abs(mscn) < _MSCN_ZERO] = 0.0
    return mscn, sigma


def _blocks(a: np.ndarray, b: int) -> np.ndarray:
    """(H, W) with H, W multiples of b -> (n_blocks, b, b), row-major block order."""
    h, w = a.shape
    return a.reshape(h // b, b, w // b, b).swapaxes(1, 2).reshape(-1, b, b)


def _patch_features(p: np.ndarray) -> np.ndarray:
    """computefeature.m for a stack of MSCN patches (n, b, b) -> (n, 18)."""
    n = p.shape[0]
    out = np.empty((n, 18))
    left, right, r_norm = _aggd_moments(p.reshape(n, -1), right_inclusive=False)
    a = _aggd_shape(r_norm, interpolate=False)
    with np.errstate(invalid="ignore"):
        c = np.sqrt(special.gamma(1 / a) / special.gamma(3 / a))
        out[:, 0], out[:, 1] = a, (left * c + right * c) / 2
        # circshift(structdis, [0 1]), [1 0], [1 1], [1 -1]: within each patch, wrapping around
        for j, shift in enumerate(((0, 1), (1, 0), (1, 1), (1, -1))):
            pair = p * np.roll(p, shift, axis=(1, 2))
            left, right, r_norm = _aggd_moments(pair.reshape(n, -1), right_inclusive=False)
            a = _aggd_shape(r_norm, interpolate=False)
            c = np.sqrt(special.gamma(1 / a) / special.gamma(3 / a))
            bl, br = left * c, right * c
            out[:, 2 + 4 * j] = a
            out[:, 3 + 4 * j] = (br - bl) * special.gamma(2 / a) / special.gamma(1 / a)
            out[:, 4 + 4 * j] = bl
            out[:, 5 + 4 * j] = br
    return out


def niqe_features(rgb_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch NIQE features of an RGB ``uint8`` image: ``(features (n, 36), sharpness (n,))``.

    Patches are the whole 96 x 96 tiles of the image (top-left aligned, remainder cropped), in
    row-major order; sharpness is the patch's mean local sigma at the first scale. Rows may hold
    ``nan`` where a patch is flat.
    """
    rgb = _check_rgb_uint8(rgb_uint8)
    h, w = rgb.shape[:2]
    if h < _BLOCK or w < _BLOCK:
        raise ValueError(f"NIQE needs at least one {_BLOCK}x{_BLOCK} patch, got a {w}x{h} image")
    im = _grey(rgb)[: h // _BLOCK * _BLOCK, : w // _BLOCK * _BLOCK]
    feats = []
    sharpness = None
    for scale in (1, 2):
        mscn, sigma = _mscn(im)
        b = _BLOCK // scale
        feats.append(_patch_features(_blocks(mscn, b)))
        if scale == 1:
            sharpness = _blocks(sigma, b).mean(axis=(1, 2))
            im = _imresize_half(im)
    return np.hstack(feats), sharpness


def _gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = feats.mean(axis=0)
    cov = np.cov(feats, rowvar=False) if len(feats) > 1 else np.zeros((feats.shape[1],) * 2)
    return mu, cov


class NiqeModel:
    """A NIQE pristine model: the mean ``mu`` (36,) and covariance ``cov`` (36, 36) of pristine patches.

    Fit it with :meth:`fit` on pristine photos (never on the photos it will score), keep it with
    :meth:`save` / :meth:`load` (JSON), and score with :meth:`score` (lower = better quality).
    """

    def __init__(self, mu: Sequence[float], cov: Sequence[Sequence[float]], provenance: dict | None = None):
        self.mu = np.asarray(mu, dtype=np.float64)
        self.cov = np.asarray(cov, dtype=np.float64)
        if self.mu.shape != (36,) or self.cov.shape != (36, 36):
            raise ValueError(
                f"NIQE model needs mu (36,) and cov (36, 36), got {self.mu.shape}, {self.cov.shape}"
            )
        if not (np.all(np.isfinite(self.mu)) and np.all(np.isfinite(self.cov))):
            raise ValueError("NIQE model parameters must be finite")
        self.provenance = dict(provenance or {})

    @classmethod
    def fit(
        cls,
        images: Iterable[np.ndarray],
        *,
        sharpness_threshold: float = _SHARPNESS_THRESHOLD,
        provenance: dict | None = None,
    ) -> NiqeModel:
        """Fit on pristine RGB ``uint8`` images (estimatemodelparam.m).

        From each image only the patches sharper than ``sharpness_threshold`` times its sharpest
        patch are kept. ``provenance`` (e.g. the photo names) is stored in the model.
        """
        kept, n_images, n_patches = [], 0, 0
        for i, rgb in enumerate(images):
            feats, sharp = niqe_features(_check_rgb_uint8(rgb, f"pristine image {i}"))
            n_images += 1
            n_patches += len(feats)
            f = feats[sharp > sharpness_threshold * sharp.max()]
            kept.append(f[np.all(np.isfinite(f), axis=1)])
        feats = np.vstack(kept) if kept else np.empty((0, 36))
        if len(feats) < 2:
            raise ValueError(f"NIQE fit needs at least 2 usable pristine patches, got {len(feats)}")
        mu, cov = _gaussian(feats)
        prov = {
            "method": "NIQE (Mittal, Soundararajan, Bovik 2013), quasar.eval.classical",
            "n_images": n_images,
            "n_patches": n_patches,
            "n_patches_kept": len(feats),
            "patch_size": _BLOCK,
            "sharpness_threshold": sharpness_threshold,
        }
        prov.update(provenance or {})
        return cls(mu, cov, prov)

    def score(self, rgb_uint8: np.ndarray) -> float:
        """NIQE score of an RGB ``uint8`` image (lower = better); :class:`ValueError` if no usable patch."""
        feats, _ = niqe_features(rgb_uint8)
        feats = feats[np.all(np.isfinite(feats), axis=1)]
        if len(feats) == 0:
            raise ValueError("NIQE is undefined for this image: every patch is flat")
        mu, cov = _gaussian(feats)
        d = self.mu - mu
        tol = 36 * np.finfo(np.float64).eps  # MATLAB pinv: max(size) * eps, relative to the largest sv
        inv = np.linalg.pinv((self.cov + cov) / 2, rcond=tol)
        return float(math.sqrt(max(float(d @ inv @ d), 0.0)))

    __call__ = score

    def to_dict(self) -> dict:
        return {
            "format": _NIQE_FORMAT,
            "version": NIQE_VERSION,
            "mu": self.mu.tolist(),
            "cov": self.cov.tolist(),
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")

    @classmethod
    def from_dict(cls, d: dict) -> NiqeModel:
        if d.get("format") != _NIQE_FORMAT:
            raise ValueError(f"not a NIQE model (format {d.get('format')!r})")
        if d.get("version") != NIQE_VERSION:
            raise ValueError(f"NIQE model version {d.get('version')!r}, this code reads {NIQE_VERSION}")
        return cls(d["mu"], d["cov"], d.get("provenance"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> NiqeModel:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
