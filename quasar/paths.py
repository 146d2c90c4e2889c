"""Where QUASAR keeps its caches: one root, ``$QUASAR_CACHE`` or ``~/.cache/quasar``.

Standard library only, so every stage (the runtime included) can ask without importing anything
else. Layout under the root: ``models/`` (exported default models), ``embeddings/`` (anchor
embeddings), ``photos/`` (the demo photo working copies of :mod:`quasar.photos`), ``bench/``
(benchmark inputs and models), ``ort-tensorrt/`` (ONNX Runtime's TensorRT engine cache).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "QUASAR_CACHE"


def cache_dir() -> Path:
    """Root of QUASAR's caches: ``$QUASAR_CACHE`` or ``~/.cache/quasar``."""
    return Path(os.environ.get(ENV_CACHE, Path.home() / ".cache" / "quasar"))


def models_dir() -> Path:
    """Exported models (the default model and its ``.sha256`` sidecar)."""
    return cache_dir() / "models"


def photos_dir() -> Path:
    """Working copies of the demo photos (:func:`quasar.photos.fetch_photos`)."""
    return cache_dir() / "photos"
