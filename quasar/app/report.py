"""``quasar report``: a visual HTML report of a ``quasar score`` / ``quasar cull`` results file."""

from __future__ import annotations

import argparse
import sys

from quasar.helpfmt import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="a visual HTML report of scores (photos sorted by a head, histograms, groups, failures)",
        description="Make one HTML page from a quasar score or quasar cull results file: photos sorted by a "
                    "head (best or worst first), a histogram of each head, per-head bars for each photo, the "
                    "groups of quasar cull, failed files with their reason. No network, no external files "
                    "(with --thumbs files, the thumbnails are written into REPORT_files/ beside it).")
    p.add_argument("results", metavar="SCORES", help="results file (.csv or .jsonl) from quasar score or quasar cull")
    p.add_argument("-o", "--output", required=True, metavar="HTML", help="the report to write")
    p.add_argument("--images", metavar="ROOT", default=None,
                   help="folder the results' relative paths are relative to; only image files under it are "
                        "read for thumbnails (a results file may name any file) (default: the results file's folder)")
    p.add_argument("--sort", metavar="HEAD", default=None, help="head to sort by first (default: quality)")
    p.add_argument("--thumbs", choices=("embed", "files"), default="embed",
                   help="embed: thumbnails inside the HTML (one file); files: into HTML_files/ beside it")
    p.add_argument("--thumb-size", type=positive_int, default=200, help="long side of the thumbnails, px")
    p.add_argument("--workers", type=positive_int, default=None, help="decode threads for the thumbnails")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quasar.io.decode import quiet_opencv
    from quasar.report.build import build_report
    from quasar.report.data import read_results
    from quasar.runtime.outfile import check_output

    check_output(args.output, [args.results], what="report", report=True)
    quiet_opencv()
    data = read_results(args.results, args.images)
    stats = build_report(data, args.output, thumbs=args.thumbs, workers=args.workers, side=args.thumb_size,
                         sort=args.sort)
    if not args.quiet:
        print(f"quasar report: {args.output}: {stats['photos']} photos ({stats['failed']} failed), "
              f"{stats['bytes'] / 2**20:.1f} MiB, {stats['seconds']:.1f} s", file=sys.stderr)
    return 0
