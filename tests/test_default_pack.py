"""The shipped default pack is reproducible from its recipe (fresh embeddings, no cache)."""

from quasar.centroids.default import build_default_pack, compare_packs
from quasar.centroids.pack import CentroidPack


def test_default_pack_rebuilds_identically():
    shipped = CentroidPack.load("default")
    rebuilt, stats = build_default_pack(use_cache=False, progress=False)
    assert stats["embedded"] == shipped.heads[0].anchors["good"] + shipped.heads[0].anchors["bad"]
    assert compare_packs(rebuilt, shipped) == []
    assert rebuilt.heads[0].anchors["provenance"]["photos"] == shipped.heads[0].anchors["provenance"]["photos"]
