"""``quasar report`` at scale: generation time and file size for 1,000 and 10,000 photos, and page load.

Inputs: a pool of phone-sized JPEGs (real photos from :mod:`quasar.photos`, scaled to 4032x3024,
quality 90, like a 12 MP phone camera's) referenced cyclically by N result rows, so every row costs
one real decode (reduced JPEG decoding at 1/8 scale applies, as it does for phone photos). Scores
are drawn from a beta distribution: they do not change the cost. Each size is built in both
thumbnail modes (embedded ``data:`` URIs / files beside the page), and the embedded page is opened
in headless Chromium (``--screenshot``) when it is installed, timing the whole browser run.

Run: ``python benchmarks/report_bench.py [--sizes 1000 10000] [--workers 2]``; writes
``benchmarks/results/report_bench.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from quasar_bench.results import write_results

from quasar.machine import machine_info
from quasar.report.build import build_report
from quasar.report.data import read_results

RESULTS = Path(__file__).resolve().parent / "results"
HEADS = ("sharpness", "noise", "compression", "exposure", "color", "spatial", "quality")
POOL = 40


def make_pool(folder: str, n: int = POOL) -> list[str]:
    from quasar.photos import fetch_photos

    photos = fetch_photos()[:: max(1, len(fetch_photos()) // n)][:n]
    paths = []
    for k, p in enumerate(photos):
        img = cv2.imread(p.path, cv2.IMREAD_COLOR)
        if img.shape[0] > img.shape[1]:
            img = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
        img = cv2.resize(img, (4032, 3024), interpolation=cv2.INTER_CUBIC)
        path = os.path.join(folder, f"pool_{k:03d}.jpg")
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def write_fake_results(path: str, pool: list[str], n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", *HEADS, "error"])
        for i in range(n):
            if i % 200 == 199:
                w.writerow([f"missing/IMG_{i:05d}.jpg", *[""] * len(HEADS), "file not found"])
                continue
            w.writerow([pool[i % len(pool)], *[f"{v:.6f}" for v in rng.beta(5, 2, len(HEADS))], ""])


def browser_seconds(page: str, workdir: str) -> float | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    t0 = time.perf_counter()
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={workdir}/profile", "--window-size=1400,1000", "--virtual-time-budget=10000",
                    f"--screenshot={workdir}/shot.png", Path(page).as_uri()],
                   capture_output=True, timeout=600, check=False)
    return round(time.perf_counter() - t0, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="quasar-report-bench-") as tmp:
        pool = make_pool(tmp)
        for n in args.sizes:
            res = os.path.join(tmp, f"scores_{n}.csv")
            write_fake_results(res, pool, n)
            for mode in ("embed", "files"):
                out = os.path.join(tmp, f"report_{n}_{mode}.html")
                stats = build_report(read_results(res), out, thumbs=mode, workers=args.workers)
                files_dir = os.path.splitext(out)[0] + "_files"
                extra = sum(f.stat().st_size for f in Path(files_dir).glob("*")) if mode == "files" else 0
                row = {"photos": n, "thumbs": mode, "seconds": round(stats["seconds"], 2),
                       "html_mib": round(stats["bytes"] / 2**20, 2), "files_mib": round(extra / 2**20, 2),
                       "per_photo_ms": round(1000 * stats["seconds"] / n, 2),
                       "browser_s": browser_seconds(out, tmp)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    result = {"machine": machine_info(), "workers": args.workers, "pool": f"{POOL} JPEGs 4032x3024 q90",
              "rows": rows}
    md = ["| photos | thumbnails | generation s | ms per photo | HTML MiB | beside it MiB | headless Chromium s |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['photos']:,} | {r['thumbs']} | {r['seconds']} | {r['per_photo_ms']} | {r['html_mib']} | "
                  f"{r['files_mib']} | {r['browser_s'] if r['browser_s'] is not None else 'n/a'} |")
    write_results(RESULTS / "report_bench", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
