"""The shipped default quality pack: effnet-lite0 + synthetic distortions of real photos.

``build_default_pack()`` is the single recipe; ``quasar centroids build-default`` reruns it and
``--check`` compares the result with the shipped file (identical within float tolerance).
Anchors are the *anchor* half of photo set v1 (:data:`DEFAULT_PHOTO_SOURCES`, split ``halves``) of
:func:`quasar.photos.fetch_photos` with the six ``ANCHOR_TYPES`` distortions at five levels; the
held-out photos and ``HELDOUT_TYPES`` are kept for evaluation (``benchmarks/quality_synthetic.py``).
The shipped pack predates photo set v2 (more packages, 2/3 anchors): rebuilding it on v2 means
setting ``DEFAULT_PHOTO_SOURCES = None`` and ``DEFAULT_PHOTO_SPLIT = "thirds"`` and shipping the result;
until then some v1 anchors fall in the v2 held-out third.
"""

from __future__ import annotations

import time

import numpy as np

from quasar.centroids.aggregate import Aggregation
from quasar.centroids.anchors import synthetic
from quasar.centroids.distortions import ANCHOR_TYPES
from quasar.centroids.pack import CentroidPack, default_pack_path
from quasar.photos import PHOTO_SET_V1, fetch_photos, provenance, split_of

DEFAULT_ENCODER = "effnet-lite0"
DEFAULT_AGGREGATION = Aggregation("mean")
DEFAULT_HEAD = "quality"
DEFAULT_PHOTO_SOURCES = PHOTO_SET_V1  # None: every source of quasar.photos
DEFAULT_PHOTO_SPLIT = "halves"


def build_default_pack(use_cache: bool = True, progress: bool | None = None, spec=None) -> tuple[CentroidPack, dict]:
    """Build the default pack from scratch (embeddings may come from the cache); returns (pack, stats)."""
    from quasar.centroids.build import build_head, make_pack
    from quasar.centroids.embed import Embedder
    from quasar.encoders import create_encoder

    t0 = time.perf_counter()
    photos = [p for p in fetch_photos(sources=DEFAULT_PHOTO_SOURCES)
              if split_of(p.name, DEFAULT_PHOTO_SPLIT) == "anchor"]
    encoder = create_encoder(DEFAULT_ENCODER, spec)
    anchors = synthetic([p.path for p in photos], ANCHOR_TYPES)
    anchors.provenance = dict(anchors.provenance, photos=[p.name for p in photos],
                              packages=provenance(sources=DEFAULT_PHOTO_SOURCES),
                              recipe="quasar.centroids.default.build_default_pack")
    embedder = Embedder(encoder, batch_size=16, use_cache=use_cache, progress=progress)
    head = build_head(DEFAULT_HEAD, anchors, embedder, DEFAULT_AGGREGATION)
    pack = make_pack(encoder, [head])
    stats = dict(embedder.stats, seconds=round(time.perf_counter() - t0, 1), photos=len(photos))
    return pack, stats


def compare_packs(a: CentroidPack, b: CentroidPack, atol: float = 1e-4) -> list[str]:
    """Human-readable differences beyond ``atol`` (empty when the packs agree)."""
    diffs = []
    if a.encoder != b.encoder:
        diffs.append(f"encoder {a.encoder} != {b.encoder}")
    if a.preprocess != b.preprocess:
        diffs.append("preprocessing specs differ")
    if a.head_names != b.head_names:
        diffs.append(f"heads {a.head_names} != {b.head_names}")
        return diffs
    for ha, hb in zip(a.heads, b.heads, strict=True):
        for side in ("good", "bad"):
            d = float(np.max(np.abs(getattr(ha, side) - getattr(hb, side))))
            if d > atol:
                diffs.append(f"{ha.name}.{side}: max |diff| {d:.2e} > {atol}")
        if abs(ha.logit_scale - hb.logit_scale) > 1e-3 * max(1.0, hb.logit_scale):
            diffs.append(f"{ha.name}.logit_scale {ha.logit_scale:.4f} != {hb.logit_scale:.4f}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Rebuild the shipped default quality pack.")
    ap.add_argument("-o", "--output", default=default_pack_path())
    ap.add_argument("--check", action="store_true", help="compare with the shipped pack instead of writing")
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    pack, stats = build_default_pack(use_cache=not args.no_cache)
    print(f"built in {stats['seconds']} s: {stats}")
    if args.check:
        diffs = compare_packs(pack, CentroidPack.load(default_pack_path()))
        print("identical within tolerance" if not diffs else "\n".join(diffs))
        return 1 if diffs else 0
    print(pack.save(args.output), "->", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
