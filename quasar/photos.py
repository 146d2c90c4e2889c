"""Real photos for anchors, tests and benchmarks, installed from Debian packages and scikit-image.

No image set with human scores can be installed offline, but Debian ships real photographs as
wallpapers. ``apt-get download`` + ``dpkg-deb -x`` unpack them into a user cache folder without a
system install. Every photo is normalised once into a *working copy* (PNG, long side capped at
``WORK_SIDE`` px) so that synthetic distortions act at a realistic scale and later stages never
decode 20-megapixel files.

Photos are split deterministically by a hash of their name into an *anchor* half (used for the
default pack) and a *held-out* half (evaluation only), so evaluation never sees an anchor photo.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WORK_SIDE = 768
DEBIAN_SOURCES = {
    # package: glob patterns (relative to the unpacked root) of real photographs
    "lomiri-wallpapers-16.04": ["usr/share/backgrounds/*_by_*.jpg"],
    "mate-backgrounds": ["usr/share/backgrounds/mate/nature/*.jpg"],
    "palapeli-data": ["usr/share/palapeli/collection/*.jpg"],
}
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


def cache_dir() -> Path:
    """Root of QUASAR's caches: ``$QUASAR_CACHE`` or ``~/.cache/quasar``."""
    return Path(os.environ.get("QUASAR_CACHE", Path.home() / ".cache" / "quasar"))


@dataclass(frozen=True)
class Photo:
    path: str  # working copy (PNG)
    source: str  # Debian package or "scikit-image"
    name: str

    @property
    def split(self) -> str:
        return split_of(self.name)


def split_of(name: str) -> str:
    """``anchor`` or ``heldout``: a stable hash of the photo's name, half and half."""
    return "anchor" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "heldout"


def _apt_download(package: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    cmd = ["apt-get", "download", package]
    r = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
    if r.returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        r = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if r.returncode != 0 or not found:
        raise RuntimeError(f"could not download Debian package {package}: {r.stderr.strip()[-500:]}")
    return found[-1]


def _working_copy(src: str, dst: Path) -> None:
    data = np.fromfile(src, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"{src}: cannot decode")
    h, w = img.shape[:2]
    s = min(1.0, WORK_SIDE / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp.png")
    cv2.imwrite(str(tmp), img)
    os.replace(tmp, dst)


def fetch_photos(root: str | os.PathLike | None = None, verbose: bool = False) -> list[Photo]:
    """Install (once) and list the working copies of every photo, sorted by source and name."""
    root = Path(root) if root else cache_dir() / "photos"
    photos: list[Photo] = []
    for package, patterns in DEBIAN_SOURCES.items():
        out = root / package
        stamp = out / ".done"
        if not stamp.exists():
            deb = _apt_download(package, root / "debs")
            unpack = root / "unpack" / package
            unpack.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpack)], check=True)
            for pat in patterns:
                for src in sorted(glob.glob(str(unpack / pat))):
                    _working_copy(src, out / (Path(src).stem + ".png"))
            (out / ".version").write_text(Path(deb).name + "\n")
            shutil.rmtree(unpack, ignore_errors=True)
            stamp.write_text("ok\n")
            if verbose:
                print(f"installed photos from {deb.name}")
        photos += [Photo(str(p), package, f"{package}/{p.stem}") for p in sorted(out.glob("*.png"))]
    import skimage  # noqa: PLC0415 - optional, only for the bundled photos

    sk_dir = Path(skimage.__file__).parent / "data"
    out = root / "scikit-image"
    for name in SKIMAGE_PHOTOS:
        dst = out / (Path(name).stem + ".png")
        if not dst.exists() and (sk_dir / name).exists():
            _working_copy(str(sk_dir / name), dst)
        if dst.exists():
            photos.append(Photo(str(dst), "scikit-image", f"scikit-image/{dst.stem}"))
    return photos


def provenance(root: str | os.PathLike | None = None) -> dict:
    """Package versions the photos came from (recorded in the pack)."""
    root = Path(root) if root else cache_dir() / "photos"
    prov = {}
    for package in DEBIAN_SOURCES:
        v = root / package / ".version"
        prov[package] = v.read_text().strip() if v.exists() else None
    try:
        import skimage  # noqa: PLC0415

        prov["scikit-image"] = skimage.__version__
    except ImportError:
        prov["scikit-image"] = None
    return prov


def main() -> None:
    photos = fetch_photos(verbose=True)
    n_anchor = sum(p.split == "anchor" for p in photos)
    print(f"{len(photos)} photos in {cache_dir() / 'photos'} ({n_anchor} anchor, {len(photos) - n_anchor} held-out)")


if __name__ == "__main__":
    main()
