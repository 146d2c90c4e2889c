"""Build the report: thumbnails (decode pool), histograms (inline SVG), the page (:mod:`quasar.report.page`).

``thumbs="embed"`` puts every thumbnail into the HTML as a ``data:`` URI: one self-contained file.
``thumbs="files"`` writes them into ``<report>_files/`` beside it (a smaller page that opens faster
for 10,000 photos; keep the folder with the page). Generation time and file size at 1,000 and
10,000 photos: ``benchmarks/report_bench.py``.

Names and messages go onto the page as :func:`quasar.runtime.pathtext.encode_text` writes them in
result files (a name that is not UTF-8 shows its bytes as ``\\xNN``), so any file name can be shown;
the page is written through :func:`quasar.runtime.outfile.write_whole` (locked, a temporary file
renamed into place: a failure leaves no empty or partial report), and each thumbnail of
``thumbs="files"`` through :func:`quasar.runtime.outfile.write_file` (the same temporary file; never
over an input photo, checked for every name before any thumbnail is made).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
import time

import numpy as np

from quasar.errors import QuasarError
from quasar.report.data import ReportData
from quasar.report.page import render
from quasar.report.thumbs import FORMATS, THUMB_SIDE, make_thumbs
from quasar.runtime.outfile import check_not_input, file_ids, write_file, write_whole
from quasar.runtime.pathtext import encode_text

THUMB_MODES = ("embed", "files")
BINS = 20


def histogram_svg(head: str, values: np.ndarray, width: int = 220, height: int = 56) -> str:
    """A small SVG histogram of scores in 0..1 (``BINS`` bins), with the count, mean and median."""
    counts, _ = np.histogram(np.clip(values, 0, 1), bins=BINS, range=(0.0, 1.0))
    top = max(1, int(counts.max()))
    bw = width / BINS
    bars = []
    for i, c in enumerate(counts):
        h = (height - 12) * c / top
        hue = round(120 * (i + 0.5) / BINS)
        bars.append(f'<rect x="{i * bw + 0.5:.1f}" y="{height - 12 - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                    f'fill="hsl({hue},55%,50%)"><title>{i / BINS:.2f}-{(i + 1) / BINS:.2f}: {c}</title></rect>')
    axis = (f'<text x="0" y="{height - 1}" font-size="10" fill="#888">0</text>'
            f'<text x="{width - 6}" y="{height - 1}" font-size="10" fill="#888">1</text>')
    stats = (f"n {len(values)}, mean {values.mean():.3f}, median {np.median(values):.3f}" if len(values)
             else "no scores")
    return (f'<figure><figcaption><b>{html.escape(head)}</b> {stats}</figcaption>'
            f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">{"".join(bars)}{axis}</svg>'
            "</figure>")


def build_report(data: ReportData, out: str, *, thumbs: str = "embed", workers: int | None = None,
                 side: int = THUMB_SIDE, fmt: str = "webp", sort: str | None = None) -> dict:
    """Write the report for ``data`` to ``out``; returns {photos, failed, bytes, thumb_bytes, seconds}."""
    from quasar import __version__

    t0 = time.perf_counter()
    if thumbs not in THUMB_MODES:
        raise QuasarError(f"unknown --thumbs {thumbs!r}; expected one of {THUMB_MODES}")
    sort = sort or data.default_sort()
    if data.heads and sort not in data.heads:
        raise QuasarError(f"cannot sort by {sort!r}: the results have heads {', '.join(data.heads)}")
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise QuasarError(f"{out}: its folder does not exist")
    files_dir = os.path.splitext(out)[0] + "_files"
    ext, _, mime = FORMATS[fmt]
    scored = [i for i, p in enumerate(data.photos) if p.error is None]
    uris: list[str] = []
    thumb_of: dict[int, tuple[int, int, int]] = {}
    thumb_err: dict[int, str] = {}
    thumb_bytes = 0
    protect: frozenset = frozenset()
    if thumbs == "files":
        # every name a thumbnail may take is checked before any work: none may be (or link to) a photo
        protect = file_ids(p.file for p in data.photos)
        for k in range(len(scored)):
            check_not_input(os.path.join(files_dir, f"{k:06d}{ext}"), protect, "thumbnail")
        try:
            os.makedirs(files_dir, exist_ok=True)
        except OSError as e:
            raise QuasarError(f"{encode_text(files_dir)}: cannot make the thumbnail folder: {e.strerror or e}") from None
    for i, t in zip(scored, make_thumbs((data.photos[i].file for i in scored), workers, side, fmt), strict=True):
        if t.data is None:
            thumb_err[i] = encode_text(f"no preview: {t.error}")
            continue
        thumb_bytes += len(t.data)
        if thumbs == "embed":
            uris.append(f"data:{mime};base64,{base64.b64encode(t.data).decode()}")
        else:
            name = f"{len(uris):06d}{ext}"
            write_file(os.path.join(files_dir, name), t.data, what="thumbnail", protect=protect)
            uris.append(f"{os.path.basename(files_dir)}/{name}")
        thumb_of[i] = (len(uris) - 1, t.width, t.height)
    rows = []
    for i, p in enumerate(data.photos):
        k, w, h = thumb_of.get(i, (-1, 0, 0))
        rows.append([encode_text(p.path), [p.scores.get(hd) for hd in data.heads], k, w, h,
                     None if p.error is None else encode_text(p.error), p.group, p.rank,
                     p.keep, p.similarity, thumb_err.get(i), i])
    failed = len(data.photos) - len(scored)
    hists = "".join(histogram_svg(hd, np.array([p.scores[hd] for p in data.photos if hd in p.scores]))
                    for hd in data.heads)
    groups = len({p.group for p in data.photos if p.group is not None})
    summary = html.escape(
        f"{len(scored)} photos scored, {failed} failed"
        + (f", {groups} groups" if data.has_groups else "")
        + f" · heads: {', '.join(data.heads)} · scores 0..1, higher is better"
        + (f" · from {encode_text(data.source)}" if data.source else "")
        + f" · quasar-engine {__version__}, {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    page = render(title=encode_text(data.title), summary=summary, histograms=hists,
                  data={"heads": data.heads, "sort": sort, "groups": data.has_groups, "photos": rows},
                  thumbs=uris, has_groups=data.has_groups, failed=failed)
    write_whole(out, page, what="report")
    return {"photos": len(data.photos), "failed": failed, "bytes": len(page.encode()), "thumb_bytes": thumb_bytes,
            "seconds": time.perf_counter() - t0, "thumbs": thumbs}
