"""``quasar cull``: group near-duplicate shots, rank each group by quality, mark keep / drop."""

from __future__ import annotations

import argparse
import sys
import time

from quasar.errors import QuasarError
from quasar.helpfmt import positive_int


def _similarity(v: str) -> float:
    x = float(v)
    if not -1.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"a cosine similarity is within -1..1, got {x}")
    return x


def register(subparsers) -> None:
    from quasar.app.score import add_follow_links
    from quasar.cull.run import HOW
    from quasar.cull.views import DEFAULT_VIEW, VIEWS

    p = subparsers.add_parser(
        "cull", help="group near-duplicate shots (bursts) and mark the best of each to keep",
        description="Score photos once (quality and embedding in one pass), group near-duplicates by cosine "
                    "similarity of their embeddings, rank each group by a quality head and mark the best "
                    "photo(s) keep, the others drop. Rows: group, rank, keep, similarity, group_size, path, "
                    "the heads, capture_time, error; ordered by group, then rank.",
        epilog="Defaults (view and threshold) were chosen on bursts made from anchor photos and measured on "
               "bursts from held-out photos: benchmarks/README.md, 'Best of a burst'.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    add_follow_links(p)
    p.add_argument("-o", "--output", default="-", metavar="OUT", help="out.csv, out.jsonl or - for stdout (CSV)")
    p.add_argument("--format", choices=("csv", "jsonl"), default=None, help="override the format inferred from OUT")
    p.add_argument("--model", metavar="FILE", default=None, help="fused ONNX model (default: the built-in model)")
    p.add_argument("--threshold", type=_similarity, default=None,
                   help="cosine similarity at which two photos are near-duplicates (default: the validated "
                        "threshold of the model's encoder and --view)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="only compare photos whose EXIF capture times are at most this far apart (photos "
                        "without a time are compared among themselves); default: compare all photos")
    p.add_argument("--view", choices=sorted(VIEWS), default=None,
                   help=f"which part of the embedding to compare (default: {DEFAULT_VIEW} for effnet-lite0+taps, "
                        "else full)")
    p.add_argument("--head", default="quality", help="head that ranks each group")
    p.add_argument("--keep", type=positive_int, default=1, help="photos kept per group")
    p.add_argument("--keep-to", metavar="DIR", default=None, help="put the kept photos into DIR (see --how)")
    p.add_argument("--drop-to", metavar="DIR", default=None, help="put the dropped photos into DIR (see --how)")
    p.add_argument("--how", choices=HOW, default="symlink",
                   help="how --keep-to/--drop-to place files; a photo already there is left alone, so a re-run "
                        "adds nothing, and a file that any kept entry resolves to is never moved")
    p.add_argument("--report", metavar="HTML", default=None, help="also write a visual report with the groups")
    p.add_argument("--resume", action="store_true",
                   help="keep every photo's scores and embedding in OUT.scores.jsonl as they are computed and "
                        "reuse those already there: an interrupted cull, or a re-run after adding photos, scores "
                        "only what is new (needs -o OUT; delete OUT.scores.jsonl when done)")
    p.add_argument("--workers", type=positive_int, default=None, help="decode threads (default: cores, at most 8)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="images per inference batch")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def check_outputs(args: argparse.Namespace) -> None:
    """Everything cull will write, checked before anything is scored (quasar.runtime.outfile)."""
    import os

    from quasar.app.score import check_outputs as check_files
    from quasar.runtime.outfile import check_output
    from quasar.runtime.pathtext import encode_text

    check_files(args)
    for opt, folder in (("--keep-to", args.keep_to), ("--drop-to", args.drop_to)):
        if folder is not None and os.path.exists(folder) and not os.path.isdir(folder):
            raise QuasarError(f"{encode_text(folder)}: {opt} names a file, not a folder")
    if args.resume and args.output == "-":
        raise QuasarError("--resume needs an output file (-o OUT): the scores are kept beside it")
    if args.resume:
        from quasar.cull.run import SCORES_SUFFIX

        check_output(args.output + SCORES_SUFFIX, args.paths)
    if args.keep_to and args.drop_to and os.path.realpath(args.keep_to) == os.path.realpath(args.drop_to):
        raise QuasarError("--keep-to and --drop-to name the same folder")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from quasar.cull.run import cull, place, score_resumable, unique_items, write_rows
    from quasar.io.decode import quiet_opencv
    from quasar.runtime.progress import make_bar, progress_enabled
    from quasar.runtime.scorer import Scorer
    from quasar.runtime.sources import iter_items

    if args.window is not None and args.window < 0:
        raise QuasarError("--window must be at least 0 seconds")
    check_outputs(args)
    quiet_opencv()
    # one entry per real file (links and paths given twice resolved) before anything is grouped or placed
    items = unique_items(iter_items(args.paths, args.recursive, follow_links=args.follow_links))
    with Scorer(args.model, embeddings=True, workers=args.workers, batch_size=args.batch_size) as scorer:
        show = progress_enabled(args.output, args.quiet)
        bar = make_bar(len(items) if show else None, show)

        def records():
            for rec in scorer.score_items(items):
                bar.update()
                yield rec

        try:
            reused = 0
            if args.resume:
                recs, reused = score_resumable(scorer, items, args.output, bar.update)
            else:
                recs = records()
            result = cull(recs, encoder=scorer.info.encoder, heads=scorer.heads, head=args.head,
                          threshold=args.threshold, window=args.window, view=args.view, keep=args.keep)
        finally:
            bar.close()
    write_rows(result, args.output, args.format)
    placed = place(result, args.keep_to, args.drop_to, args.how) if (args.keep_to or args.drop_to) else None
    if args.report:
        from quasar.report.build import build_report
        from quasar.report.data import from_cull

        build_report(from_cull(result), args.report, workers=args.workers)
    n = len(result.rows)
    failed = sum(r.group is None for r in result.rows)
    kept = sum(r.keep for r in result.rows)
    if not args.quiet:
        where = "" if placed is None else (f"; placed {placed['kept']} kept, {placed['dropped']} dropped ({args.how})"
                                           + (f", {placed['present']} already there" if placed["present"] else ""))
        if args.resume and reused:
            print(f"quasar cull: {reused} photos' scores reused from {args.output}.scores.jsonl", file=sys.stderr)
        print(f"quasar cull: {n - failed} photos in {result.groups} groups, {kept} kept, {failed} failed "
              f"(view {result.view}, threshold {result.threshold:.3f}"
              f"{'' if result.window is None else f', window {result.window:g} s'}; "
              f"{time.perf_counter() - t0:.1f} s){where}", file=sys.stderr)
    return 0 if n - failed > 0 else 1
