"""Optional dependencies: one line naming the extra to install when one is missing.

``pip install quasar-engine`` installs what scoring needs (numpy, OpenCV, ONNX Runtime, Pillow, tqdm).
Building packs, exporting graphs, evaluating and installing the photo set need more; each command
calls :func:`require` before it starts work, so a missing package is one line, not a traceback
minutes in (or after a download)::

    torch = require("torch", "export", "quasar centroids build")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from quasar.errors import QuasarError

# import name -> PyPI distribution, where they differ
DISTRIBUTIONS = {
    "skimage": "scikit-image",
    "open_clip": "open_clip_torch",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "pillow_heif": "pillow-heif",
    "pillow_avif": "pillow-avif-plugin",
    "mlperf_loadgen": "mlcommons-loadgen",
}


class MissingExtra(QuasarError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def install_hint(extra: str) -> str:
    return f"pip install 'quasar-engine[{extra}]'"


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra`: "``what`` needs X: pip install 'quasar-engine[extra]'".

    A module that is installed but fails to import (a missing sub-dependency, a broken build) gets
    the same hint plus the import error's own first line.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        dist = DISTRIBUTIONS.get(module.split(".")[0], module.split(".")[0])
        top = module.split(".")[0]
        if isinstance(e, ModuleNotFoundError) and e.name in (module, top):
            raise MissingExtra(f"{what} needs {dist}, which is not installed: {install_hint(extra)}") from None
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise MissingExtra(f"{what} needs {dist}, which cannot be imported ({reason}): {install_hint(extra)}") from None


def require_all(modules: tuple[str, ...] | list[str], extra: str, what: str) -> None:
    """:func:`require` each of ``modules`` (the first missing one is reported)."""
    for m in modules:
        require(m, extra, what)


# What each command needs beyond the runtime (checked before any work starts).
EXPORT_MODULES = ("torch", "timm", "onnx")  # building packs (torch encoders) and exporting graphs
