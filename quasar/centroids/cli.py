"""``quasar centroids build|info|build-default``."""

from __future__ import annotations

import argparse
import json
import sys

from quasar.constants import SHIPPED_PACK
from quasar.errors import QuasarError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("centroids", help="build and inspect anchor centroid packs")
    csub = p.add_subparsers(dest="centroids_command", required=True)

    b = csub.add_parser("build", help="embed an anchor source and write (or extend) a pack")
    src = b.add_argument_group("anchor source (one of)")
    src.add_argument("--good", help="folder or file list of good anchors (with --bad)")
    src.add_argument("--bad", help="folder or file list of bad anchors (with --good)")
    src.add_argument("--reference-csv", help="CSV path,is_reference (KADIS700k / PIPAL style)")
    src.add_argument("--mos-csv", help="CSV path,mos split at the median (AVA style)")
    src.add_argument("--synthetic", help="folder of pristine photos; bad set = graded synthetic distortions")
    src.add_argument("--text", nargs=2, metavar=("GOOD", "BAD"),
                     help="prompt pair for CLIP models, e.g. 'Good photo.' 'Bad photo.' (CLIP-IQA baseline)")
    b.add_argument("--root", help="base folder for relative paths in CSVs")
    b.add_argument("--distortions", default=None, help="comma-separated distortion types for --synthetic (default: all anchor types)")
    b.add_argument("--encoder", default="effnet-lite0", help="encoder id (default: effnet-lite0)")
    b.add_argument("--policy", choices=("center_crop", "native", "short_side"), help="override the resize policy (default: the encoder's)")
    b.add_argument("--size", type=int, help="override the resize size (default: the encoder's)")
    b.add_argument("--aggregation", choices=("mean", "offset", "kmeans", "lda", "ridge"), default="mean",
                   help="mean/offset/kmeans: the paper's centroid heads; lda: shrinkage Fisher direction; ridge: "
                   "ridge regression of the anchors' scores (distortion level or MOS) (default: %(default)s)")
    b.add_argument("--alpha", type=float, default=1.0,
                   help="lda/ridge regularisation, relative to the mean variance per dimension (default: %(default)s)")
    b.add_argument("--offset-ratio", type=float, default=0.2,
                   help="offset: fraction of each anchor set dropped, the anchors scored nearest the good/bad split")
    b.add_argument("-k", type=int, default=4, help="clusters per set for kmeans")
    b.add_argument("--seed", type=int, default=0, help="random seed for kmeans and --subsample")
    b.add_argument("--subsample", type=float, default=1.0, help="keep this fraction of each anchor set")
    b.add_argument("--logit-scale", default="calibrated",
                   help="calibrated (default), levels (scale and bias fitted so that scores read as the anchors' "
                   "scores: pristine 1, strongest level 0), paper (1), official (1/0.07) or a number")
    b.add_argument("--head", default="quality", help="head name (quality, aesthetics, or your own)")
    b.add_argument("--batch-size", type=int, default=16, help="anchor images per encoder batch")
    b.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    b.add_argument("--merge-into", help="add the head to this existing pack (same encoder)")
    b.add_argument("--replace", action="store_true", help="with --merge-into: overwrite a head of the same name")
    b.add_argument("--allow-unhashed", action="store_true",
                   help="with --merge-into: accept a hand-made pack without a content_hash")
    b.add_argument("-o", "--output", required=True, help="pack file to write (.qpack.json)")
    b.set_defaults(func=_build)

    i = csub.add_parser("info", help="show a pack's heads and metadata ('default' for the shipped one)")
    i.add_argument("pack", help="pack file, or 'default' for the shipped pack")
    i.add_argument("--json", action="store_true", help="print the pack as JSON (arrays as shape and dtype)")
    i.add_argument("--allow-unhashed", action="store_true", help="accept a hand-made pack without a content_hash")
    i.set_defaults(func=_info)

    d = csub.add_parser("build-default", help="rebuild the shipped default quality pack")
    d.add_argument("-o", "--output", help=f"write here (default: {SHIPPED_PACK} in the working "
                   "directory; the shipped file is never overwritten unless you name it)")
    d.add_argument("--check", action="store_true", help="compare with the shipped pack instead of writing")
    d.add_argument("--no-cache", action="store_true", help="embed every anchor again instead of using the cache")
    d.set_defaults(func=_build_default)


def _anchor_source(args):
    from quasar.centroids import anchors

    chosen = [n for n in ("good", "reference_csv", "mos_csv", "synthetic") if getattr(args, n)]
    if args.bad and not args.good:
        chosen.append("bad")
    if len(chosen) != 1:
        raise QuasarError("give exactly one anchor source: --good/--bad, --reference-csv, --mos-csv, --synthetic or --text")
    if args.good:
        if not args.bad:
            raise QuasarError("--good needs --bad")
        return anchors.from_folders(args.good, args.bad)
    if args.reference_csv:
        return anchors.from_reference_csv(args.reference_csv, args.root)
    if args.mos_csv:
        return anchors.from_mos_csv(args.mos_csv, args.root)
    from quasar.centroids.distortions import ANCHOR_TYPES

    types = tuple(args.distortions.split(",")) if args.distortions else ANCHOR_TYPES
    return anchors.synthetic(anchors.list_images(args.synthetic), types)


def _build(args) -> int:
    from quasar.extras import EXPORT_MODULES, require_all

    require_all(EXPORT_MODULES, "export", "quasar centroids build")
    from quasar.centroids.aggregate import Aggregation
    from quasar.centroids.anchors import subsample
    from quasar.centroids.build import build_head, make_pack, text_head
    from quasar.centroids.embed import Embedder
    from quasar.centroids.pack import CentroidPack
    from quasar.encoders.pretrained import build_encoder

    target = None
    if args.merge_into:  # before minutes of embedding: the pack must exist and take this head
        target = CentroidPack.load(args.merge_into, allow_unhashed=args.allow_unhashed)
        if args.head in target.head_names and not args.replace:
            raise QuasarError(f"{args.merge_into} already has a head {args.head!r}; pass --replace to overwrite "
                              "it, or name the new head with --head")
    try:
        encoder = build_encoder(args.encoder)
    except (ValueError, ImportError, FileNotFoundError, RuntimeError) as e:
        raise QuasarError(f"cannot create encoder {args.encoder!r}: {e}") from None
    if args.text and getattr(encoder, "text_model", None) is None:
        raise QuasarError(f"--text needs an encoder with a text tower (a CLIP model such as "
                          f"open_clip:RN50@/path/to/checkpoint.pt); {args.encoder} has none")
    if args.policy or args.size:
        from dataclasses import replace

        spec = replace(encoder.spec, policy=args.policy or encoder.spec.policy, size=args.size or encoder.spec.size)
        try:
            encoder.set_spec(spec)
        except ValueError as e:
            raise QuasarError(str(e)) from None
    if args.text:
        head = text_head(args.head, encoder, [args.text[0]], [args.text[1]],
                         100.0 if args.logit_scale == "calibrated" else args.logit_scale)
    else:
        src = subsample(_anchor_source(args), args.subsample, args.seed)
        embedder = Embedder(encoder, batch_size=args.batch_size, use_cache=not args.no_cache)
        if args.aggregation in ("lda", "ridge"):
            from quasar.centroids.build import build_linear_head

            head = build_linear_head(args.head, src, embedder, args.aggregation, args.alpha, args.logit_scale)
        else:
            try:
                agg = Aggregation(args.aggregation,
                                  offset_ratio=args.offset_ratio if args.aggregation == "offset" else 0.0,
                                  k=args.k if args.aggregation == "kmeans" else 1, seed=args.seed)
            except ValueError as e:
                raise QuasarError(str(e)) from None
            try:
                head = build_head(args.head, src, embedder, agg, args.logit_scale)
            except ValueError as e:
                raise QuasarError(str(e)) from None
    pack = make_pack(encoder, [head])
    if target is not None:
        pack = target.merge(pack, replace=args.replace)
    h = pack.save(args.output)
    print(f"wrote {args.output}: heads {pack.head_names}, encoder {pack.encoder}, {h}")
    return 0


def _info(args) -> int:
    from quasar.centroids.pack import CentroidPack

    pack = CentroidPack.load(args.pack, allow_unhashed=args.allow_unhashed)
    if args.json:
        d = pack.to_dict()
        for h in d["heads"]:
            for side in ("good", "bad", "weight"):
                if side in h:
                    h[side] = {"shape": h[side]["shape"], "dtype": h[side]["dtype"]}
        json.dump(d, sys.stdout, indent=1)
        print()
        return 0
    print(f"pack      {args.pack}")
    print(f"encoder   {pack.encoder}  (D={pack.embed_dim})")
    print(f"preprocess {pack.preprocess.to_json()}")
    print(f"hash      {pack.content_hash}  created {pack.created}")
    print(f"format    {pack.format_version}")
    for h in pack.heads:
        a = h.anchors
        what = f"combines {h.combine['of']} by {h.combine['rule']}" if h.kind == "combine" else (
            f"{h.kind}, method {h.aggregation.get('method')}, anchors good={a.get('good')} bad={a.get('bad')} "
            f"kind={a.get('kind')}")
        print(f"head {h.name!r}: logit scale {h.logit_scale:.3f} ({h.logit_scale_policy}), bias {h.bias:+.4f}, {what}")
    return 0


def _build_default(args) -> int:
    from quasar.extras import EXPORT_MODULES, require_all

    require_all(EXPORT_MODULES, "export", "quasar centroids build-default")
    from quasar.centroids import default

    argv = (["-o", args.output] if args.output else []) + (["--check"] if args.check else []) + \
        (["--no-cache"] if args.no_cache else [])
    return default.main(argv)
