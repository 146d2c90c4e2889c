"""The shipped default quality pack: effnet-lite0 multi-layer embeddings + the anchor distortion types.

``build_default_pack()`` is the single recipe; ``quasar centroids build-default`` reruns it and
``--check`` compares the result with the shipped file (identical within float tolerance).

Recipe (all choices made on anchors only, never on the held-out photos the benchmarks score):

1. anchors: ``DEFAULT_ANCHOR_PHOTOS`` photos of the *anchor* split of
   :func:`quasar.photos.fetch_photos` (round-robin across its Debian packages), each pristine and
   with every anchor distortion type (the 25 KADID-10k types and the camera defects) at five levels
   (:mod:`quasar.centroids.distortions`);
2. embeddings: ``effnet-lite0+taps``, channel statistics of every stage of EfficientNet-Lite0
   (:mod:`quasar.encoders.taps`), at the encoder's native-resolution spec;
3. heads: one per family of :data:`quasar.centroids.families.QUALITY_HEADS` (sharpness, noise,
   compression, exposure, color, spatial, optics), each calibrated so that pristine anchors score
   near 1 and the strongest level near 0, named ``quality.<family>``, plus ``quality``, their
   combination inside the graph; and one *explanation* head per family under the family's own name,
   fitted to stay high on the other families' defects, which ``--explain`` shows and names the
   ``reason`` from;
4. how heads are fitted and combined: :func:`quasar.centroids.families.select_config`, by
   cross-validation over anchor-photo halves and leave-one-family-out; the explanation heads'
   ridge alpha and specificity: :func:`quasar.centroids.families.select_explain`, on anchor-photo halves.
"""

from __future__ import annotations

import time

import numpy as np

from quasar.centroids.distortions import ANCHOR_TYPES
from quasar.centroids.families import (
    DEFAULT_CANDIDATES,
    QUALITY_HEADS,
    AnchorGrid,
    HeadConfig,
    fit_explain,
    fit_quality,
    select_config,
    select_explain,
    to_heads,
)
from quasar.centroids.pack import CentroidPack, default_pack_path
from quasar.constants import SHIPPED_PACK

DEFAULT_ENCODER = "effnet-lite0+taps"
DEFAULT_HEAD = "quality"
# Anchor photos: this many of the anchor split, round-robin across sources (quasar.photos.balanced).
# 100 x 126 images (pristine + 25 types x 5 levels) take ~30 min to embed on 2 cores.
DEFAULT_ANCHOR_PHOTOS = 100


def anchor_grid(photo_paths: list[str], encoder, use_cache: bool = True, progress: bool | None = None,
                types: tuple[str, ...] = ANCHOR_TYPES) -> tuple[AnchorGrid, dict]:
    """Embed pristine photos and all their distortions into an :class:`AnchorGrid` (cached).

    A photo that cannot be read is left out whole (with the embedder's warning), so the grid stays
    complete. Returns the grid and the embedder's statistics.
    """
    from quasar.centroids.anchors import synthetic
    from quasar.centroids.embed import Embedder

    anchors = synthetic(photo_paths, types)
    embedder = Embedder(encoder, batch_size=16, use_cache=use_cache, progress=progress)
    emb, used, failed = embedder.embed(anchors.all(), desc="anchors")
    per_photo: dict[str, int] = {}
    for a in used:
        per_photo[a.path] = per_photo.get(a.path, 0) + 1
    full = 1 + len(types) * 5
    keep = np.array([per_photo[a.path] == full for a in used], dtype=bool)
    used = [a for a, k in zip(used, keep, strict=True) if k]
    grid = AnchorGrid.from_rows(emb[keep], [a.path for a in used], [a.distortion or "" for a in used],
                                [a.level for a in used])
    return grid, dict(embedder.stats, skipped_photos=sorted({p for p, _ in failed}))


def build_default_pack(use_cache: bool = True, progress: bool | None = None, spec=None,
                       photo_paths: list[str] | None = None,
                       candidates: tuple[HeadConfig, ...] = DEFAULT_CANDIDATES) -> tuple[CentroidPack, dict]:
    """Build the default pack from scratch (embeddings may come from the cache); returns (pack, stats).

    ``photo_paths`` replaces the anchor photos (tests use a few); the shipped pack uses all of them.
    """
    from quasar import __version__
    from quasar.centroids.build import make_pack
    from quasar.encoders import create_encoder
    from quasar.photos import balanced, fetch_photos, provenance

    t0 = time.perf_counter()
    names = {}
    if photo_paths is None:
        photos = balanced([p for p in fetch_photos() if p.split == "anchor"], DEFAULT_ANCHOR_PHOTOS)
        photo_paths = [p.path for p in photos]
        names = {p.path: p.name for p in photos}
    encoder = create_encoder(DEFAULT_ENCODER, spec)
    grid, emb_stats = anchor_grid(photo_paths, encoder, use_cache, progress)
    cfg, table = select_config(grid, candidates) if len(candidates) > 1 else (candidates[0], [])
    model = fit_quality(grid, cfg)
    model.explain_cfg, explain_table = select_explain(grid, cfg)
    model.explain = fit_explain(grid, model.explain_cfg)
    meta = {"kind": "synthetic", "good": len(grid.photos), "bad": int(np.prod(grid.distorted.shape[:3])),
            "provenance": {"photos": [names.get(p, p) for p in grid.photos], "packages": provenance(),
                           "distortions": list(grid.types), "levels": list(grid.levels),
                           "recipe": "quasar.centroids.default.build_default_pack",
                           "selection": {"chosen": cfg.to_dict(), "candidates": table},
                           "explain_selection": {"chosen": model.explain_cfg.to_dict(),
                                                 "candidates": explain_table}},
            "quasar_version": __version__}
    pack = make_pack(encoder, to_heads(model, cfg, meta))
    stats = dict(emb_stats, seconds=round(time.perf_counter() - t0, 1), photos=len(grid.photos),
                 config=cfg.to_dict())
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
        if ha.kind != hb.kind or ha.combine != hb.combine:
            diffs.append(f"{ha.name}: kind/combination {ha.kind} {ha.combine} != {hb.kind} {hb.combine}")
            continue
        if ha.kind != "combine":
            d = float(np.max(np.abs(ha.direction() - hb.direction())))
            if d > atol:
                diffs.append(f"{ha.name}: direction max |diff| {d:.2e} > {atol}")
        if abs(ha.bias - hb.bias) > atol:
            diffs.append(f"{ha.name}.bias {ha.bias:.6f} != {hb.bias:.6f}")
        if abs(ha.logit_scale - hb.logit_scale) > 1e-3 * max(1.0, hb.logit_scale):
            diffs.append(f"{ha.name}.logit_scale {ha.logit_scale:.4f} != {hb.logit_scale:.4f}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Rebuild the shipped default quality pack "
                                             f"({', '.join(QUALITY_HEADS)} and {DEFAULT_HEAD}).")
    ap.add_argument("-o", "--output", default=SHIPPED_PACK,
                    help="where to write the pack (default: %(default)s in the working directory)")
    ap.add_argument("--check", action="store_true", help="compare with the shipped pack instead of writing")
    ap.add_argument("--no-cache", action="store_true", help="embed every anchor again instead of using the cache")
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
