"""Scoring runtime: decode and preprocess with OpenCV, batch, and run a fused model (no torch).

``Scorer`` is the API; ``quasar score`` (``quasar.app.score``) the command line. The runtime needs
numpy, OpenCV and ONNX Runtime only; TensorRT, cuda-python and torch are imported when (and only
when) their backend is requested.
"""

from quasar.io.decode import DEFAULT_MAX_PIXELS, ImageError
from quasar.runtime.model import ModelInfo, default_model_path, load_model_info
from quasar.runtime.scorer import Scorer, ScoreRecord

__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "ModelInfo", "ScoreRecord", "Scorer", "default_model_path",
           "load_model_info"]
