"""QUASAR engine: no-reference image quality and aesthetics scores from heads fitted on anchor images.

Data flows one way: anchors -> pack of heads (``quasar.centroids``) -> fused graph
(``quasar.export``) -> runtime (``quasar.runtime``) -> scores. Only ``centroids``, ``encoders``
and ``export`` import torch; the runtime needs numpy, OpenCV and ONNX Runtime alone.
"""

__version__ = "0.1.0"
