"""Anchor centroid packs: anchors -> embeddings -> aggregation -> a versioned JSON pack.

Importing this package does not import torch; :mod:`quasar.centroids.build` and
:mod:`quasar.centroids.embed` use it when they run an encoder.
"""

from quasar.centroids.aggregate import Aggregation
from quasar.centroids.pack import CentroidPack, Head, PackError

__all__ = ["Aggregation", "CentroidPack", "Head", "PackError"]
