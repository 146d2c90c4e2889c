"""The README's pictures of the report: ``quasar cull`` on the held-out burst roll, then headless Chromium.

Uses the camera roll that ``burst_eval.py`` wrote (``~/.cache/quasar/bench/bursts/heldout``; run it
first), culls it with a 2 s window, writes the report and screenshots two views into ``docs/``:
``report_photos.jpg`` (sorted by quality, histograms, per-head bars) and ``report_groups.jpg``
(bursts with their keeper). Needs Debian's ``chromium``.

Run: ``python benchmarks/report_screenshot.py``
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from quasar.cli import main as quasar
from quasar.paths import cache_dir

DOCS = Path(__file__).resolve().parents[1] / "docs"


def shoot(page: Path, fragment: str, out: Path, tmp: str) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    png = Path(tmp) / "shot.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}/p",
                    "--window-size=1400,1050", "--virtual-time-budget=8000", f"--screenshot={png}",
                    page.as_uri() + fragment], check=True, capture_output=True, timeout=300)
    cv2.imwrite(str(out), cv2.imread(str(png)), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"{out}: {out.stat().st_size // 1024} KiB", file=sys.stderr)


def main() -> int:
    roll = cache_dir() / "bench" / "bursts" / "heldout"
    if not roll.is_dir():
        raise SystemExit(f"{roll}: not found; run benchmarks/burst_eval.py first")
    with tempfile.TemporaryDirectory(prefix="quasar-shot-") as tmp:
        page = Path(tmp) / "report.html"
        rc = quasar(["cull", str(roll), "-o", str(Path(tmp) / "cull.csv"), "--window", "2", "--report", str(page), "-q"])
        if rc != 0:
            return rc
        shoot(page, "#eager", DOCS / "report_photos.jpg", tmp)
        shoot(page, "#eager#groups", DOCS / "report_groups.jpg", tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
