"""QUASAR engine: no-reference image quality and aesthetics scores from anchor centroids.

Data flows one way: anchors -> centroid pack (``quasar.centroids``) -> fused graph
(``quasar.export``) -> runtime (``quasar.runtime``) -> scores. Only ``centroids``, ``encoders``
and ``export`` import torch; the runtime needs numpy, OpenCV and ONNX Runtime alone.
"""

__version__ = "0.1.0"
