"""In-memory images from other libraries: PIL images and torch tensors, as IQA users pass them.

The conventions are pyiqa's and piq's: a tensor is RGB, channels first (``NCHW`` batch or ``CHW``
image), float in 0..1 (uint8 tensors are taken as 0..255). A PIL image is scored as its pixels
are, in any mode (EXIF orientation is *not* applied: an image object is taken as already upright;
pass the file to have it applied). Both become numpy arrays that take the same path as numpy input
(:func:`quasar.io.decode.from_array`: float 0..1 is scaled to uint8 with rounding, so a float
image equal to ``u8 / 255`` scores exactly as ``u8``).

Nothing here imports torch: a tensor is recognised by its type's module and converted with its own
methods, so scoring files, arrays or PIL images never loads torch.
"""

from __future__ import annotations

import numpy as np


def is_torch_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dim")


def is_pil_image(x) -> bool:
    if not type(x).__module__.startswith("PIL"):
        return False
    from PIL import Image

    return isinstance(x, Image.Image)


def foreign_images(x) -> list[tuple[str, np.ndarray | None, str | None]] | None:
    """``[(kind, HxW[xC] array or None, error or None), ...]`` for a PIL image (kind ``image``) or a
    torch tensor (kind ``tensor``, one entry per image of a batch); None for anything else."""
    if is_pil_image(x):
        return [("image", pil_to_array(x), None)]
    if is_torch_tensor(x):
        return tensor_to_arrays(x)
    return None


def pil_to_array(img) -> np.ndarray:
    """A PIL image's pixels as a numpy array :func:`~quasar.io.decode.from_array` takes."""
    mode = img.mode
    if mode in ("RGB", "RGBA", "L", "LA", "1"):
        return np.asarray(img)
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)  # native byte order
    if mode == "I":  # 32-bit integers, as Pillow opens 16-bit PNGs: 0..65535
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.asarray(img.convert("L"))
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))


def tensor_to_arrays(t) -> list[tuple[str, np.ndarray | None, str | None]]:
    """A CHW image or NCHW batch (or an HW greyscale image) as HWC numpy arrays."""
    t = t.detach()
    if t.is_floating_point():
        t = t.float()  # bfloat16 and float16 have no (or a lossy) numpy twin
    if getattr(t, "is_complex", lambda: False)():
        return [("tensor", None, f"unsupported complex tensor of shape {tuple(t.shape)}")]
    a = t.cpu().numpy()
    channels = (1, 2, 3, 4)
    if a.ndim == 4:
        if a.shape[1] not in channels:
            return [("tensor", None, f"expected an NCHW tensor (1-4 channels), got shape {tuple(a.shape)}")]
        return [("tensor", np.ascontiguousarray(img.transpose(1, 2, 0)), None) for img in a]
    if a.ndim == 3:
        if a.shape[0] not in channels:
            return [("tensor", None, f"expected a CHW tensor (1-4 channels), got shape {tuple(a.shape)}")]
        return [("tensor", np.ascontiguousarray(a.transpose(1, 2, 0)), None)]
    if a.ndim == 2:
        return [("tensor", a, None)]
    return [("tensor", None, f"expected a CHW or NCHW tensor, got shape {tuple(a.shape)}")]
