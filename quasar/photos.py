"""Real photos for anchors, tests and benchmarks, installed from Debian packages and scikit-image.

No image set with human scores can be installed offline, but Debian ships real photographs as
wallpapers, user pictures, puzzle and children's-game pictures. ``apt-get download`` + ``dpkg-deb
-x`` unpack them into a user cache folder without a system install. Every photo is normalised once
into a *working copy* (PNG, long side capped at ``WORK_SIDE`` px) so that synthetic distortions act
at a realistic scale and later stages never decode 20-megapixel files.

Sources (``DEBIAN_SOURCES``) name, per package, globs of real photographs and the non-photos to
leave out (drawings, renders, logos, paintings, textures); each was checked by eye. Two packages
keep their photos inside containers: GCompris' Qt resource files (``.rcc``) and jigzo's puzzle
files (``.pzl``); ``ARCHIVE::MEMBER`` globs reach into them. Pictures whose short side is below
``MIN_SIDE`` px (thumbnails, avatars) are skipped. A photo shipped by two packages counts once: the
working copies are deduplicated by a hash of their pixels, the first source in ``DEBIAN_SOURCES``
order (then scikit-image) wins.

Photos are split deterministically by a hash of their name (:func:`split_of`): 2/3 *anchor* (used
for the default pack's anchors, int8 calibration) and 1/3 *held-out* (evaluation only), so
evaluation never sees an anchor photo. The ``halves`` scheme reproduces the split of photo set v1.

``python -m quasar.photos`` installs everything; ``--list`` prints the counts per source and split.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from quasar.errors import QuasarError
from quasar.paths import photos_dir

WORK_SIDE = 768
MIN_SIDE = 320  # short side of the original, px: smaller pictures are thumbnails or avatars


@dataclass(frozen=True)
class Source:
    """Real photographs in one Debian package.

    ``include``: ``(glob, category)`` pairs, globs relative to the unpacked package root; a glob
    ``ARCHIVE::MEMBER`` selects members of the container files matched by ``ARCHIVE`` (Qt ``.rcc``
    resources, jigzo ``.pzl`` puzzles). ``exclude``: globs on the file or member name (basename) of
    pictures that are not photographs. ``category``: a coarse content label, for the inventory only.
    """

    include: tuple[tuple[str, str], ...]
    exclude: tuple[str, ...] = ()

    @property
    def patterns(self) -> list[str]:
        return [pat for pat, _ in self.include]

    def recipe(self) -> str:
        """A short hash of the selection (working copies are rebuilt when it changes)."""
        text = repr((self.include, self.exclude, WORK_SIDE, MIN_SIDE))
        return hashlib.sha1(text.encode()).hexdigest()[:12]


_GC = "usr/share/gcompris-qt/rcc/"
DEBIAN_SOURCES: dict[str, Source] = {
    # photo set v1 (the shipped default pack's anchors): keep these three first and unchanged
    "lomiri-wallpapers-16.04": Source((("usr/share/backgrounds/*_by_*.jpg", "landscape"),)),
    "mate-backgrounds": Source((("usr/share/backgrounds/mate/nature/*.jpg", "nature close-up"),)),
    "palapeli-data": Source((("usr/share/palapeli/collection/*.jpg", "mixed"),)),
    # photo set v2
    "lxqt-themes": Source(
        (("usr/share/lxqt/wallpapers/*.jpg", "landscape"), ("usr/share/lxqt/wallpapers/*.png", "landscape")),
        exclude=("waves-*", "kde-plasma.png", "*origami*", "plasma*", "simple_blue_widescreen.png", "triangles*"),
    ),
    "budgie-control-center-data": Source(
        (("usr/share/pixmaps/budgie-faces/*.jpg", "objects close-up"),),  # the 96 px legacy ones fall under MIN_SIDE
        exclude=("gamepad.jpg",),  # possibly a render
    ),
    "tuxpaint-data": Source((("usr/share/tuxpaint/templates/*.jpg", "nature close-up"),)),
    "scribus-template": Source(
        (("usr/share/scribus/templates/*/*.jpg", "mixed"),),  # pizza, moons, sunset over a city, canyon
        exclude=("brightness.jpg",),  # a brightened copy of halfmoon.jpg
    ),
    "puzzle-jigsaw": Source((("usr/share/puzzle-jigsaw/samples/*.jp*g", "animals"),)),
    "jigzo-data": Source((("usr/share/games/jigzo/puzzles/*/*.pzl::*", "mixed"),)),
    "gcompris-qt-data": Source(
        (
            (_GC + "erase.rcc::*.webp", "animals"),
            (_GC + "explore_world_animals.rcc::*.webp", "animals"),
            (_GC + "explore_farm_animals.rcc::*.webp", "animals"),
            (_GC + "explore_monuments.rcc::*.webp", "buildings cities"),
            (_GC + "explore_world_music.rcc::*.webp", "people"),
            (_GC + "details.rcc::*_background.webp", "buildings cities"),
        ),
        exclude=(
            # details: paintings, and monuments already in explore_monuments (another photo of the same scene)
            "*Gogh*", "PortraitOfPereTanguy*", "Eglise_dAuvers*", "Chenonceau_*", "Neuschwanstein_*",
            "GizahPyramids_*", "TajMahal_*", "TourEiffel_*",
        ),
    ),
}
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
# Not used (checked by eye): gnome-backgrounds, ukui-wallpapers, sway-backgrounds, xfdesktop4-data,
# desktop-base, fvwm-crystal, propaganda-debian, mate-backgrounds desktop/ + abstract/ (renders,
# logos, textures); kanagram, khangman, GCompris' word pictures (drawings); fotoxx-common (screenshots);
# mypaint-data-extras (paper textures); lomiri-wallpapers (metapackage of the 16.04 and 20.04 sets);
# gnome-control-center-data, mate-user-admin (same user pictures as budgie-control-center-data);
# enlightenment-data (400 MB). Never: the packages reserved for independent evaluation
# (RESERVED_SOURCES).
RESERVED_SOURCES = frozenset({"plasma-workspace-wallpapers", "lomiri-wallpapers-20.04", "libjxl-testdata", "opencv-doc",
                              "scikit-learn", "sklearn", "matplotlib", "python3-sklearn", "python3-matplotlib"})
PHOTO_SET_V1 = ("lomiri-wallpapers-16.04", "mate-backgrounds", "palapeli-data", "scikit-image")
SPLIT_SCHEMES = ("thirds", "halves")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class PhotoSourceError(RuntimeError):
    """A photo package could not be downloaded or unpacked (the message is one line and names it)."""


@dataclass(frozen=True)
class Photo:
    path: str  # working copy (PNG)
    source: str  # Debian package or "scikit-image"
    name: str  # "<source>/<stem>", unique
    category: str = ""  # coarse content label (see DEBIAN_SOURCES)
    origin: str = field(default="", compare=False)  # file (or ARCHIVE::member) inside the package

    @property
    def split(self) -> str:
        return split_of(self.name)

    def split_as(self, scheme: str) -> str:
        return split_of(self.name, scheme)


def split_of(name: str, scheme: str = "thirds") -> str:
    """``anchor`` or ``heldout``, from a stable hash of the photo's name.

    ``thirds`` (default): 2/3 anchor, 1/3 held-out (first SHA-1 byte % 3 != 0 -> anchor).
    ``halves``: 1/2 and 1/2 (first byte even -> anchor), the split of photo set v1 and of the shipped
    default pack. Both are deterministic: a photo keeps its side whatever else is installed.
    """
    b = hashlib.sha1(name.encode()).digest()[0]
    if scheme == "thirds":
        return "anchor" if b % 3 != 0 else "heldout"
    if scheme == "halves":
        return "anchor" if b % 2 == 0 else "heldout"
    raise ValueError(f"unknown split scheme {scheme!r} (one of {', '.join(SPLIT_SCHEMES)})")


def balanced(photos: Sequence[Photo], n: int) -> list[Photo]:
    """``n`` of ``photos`` taken round-robin across sources (each source in name-hash order), so a
    large source (gcompris-qt-data has 122 photos) does not crowd out the others. Deterministic;
    returned in source-then-name order. ``n <= 0`` or ``n >= len(photos)`` keeps them all."""
    if n <= 0 or n >= len(photos):
        return list(photos)
    by_source: dict[str, list[Photo]] = {}
    for p in photos:
        by_source.setdefault(p.source, []).append(p)
    queues = [sorted(v, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest()) for v in by_source.values()]
    chosen: set[str] = set()
    while len(chosen) < n:
        for q in queues:
            if q and len(chosen) < n:
                chosen.add(q.pop(0).name)
    return [p for p in photos if p.name in chosen]


# ---------------------------------------------------------------- download and unpack

def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no error output"


def _apt_download(package: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    cmd = ["apt-get", "download", package]
    try:
        r = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
        if r.returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
            r = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
    except OSError as e:  # no apt-get at all
        raise PhotoSourceError(f"could not download Debian package {package}: {e}") from None
    found = sorted(dest.glob(f"{package}_*.deb"))
    if r.returncode != 0 or not found:
        raise PhotoSourceError(f"could not download Debian package {package}: {_one_line(r.stderr or r.stdout)}")
    return found[-1]


def _unpack(package: str, deb: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    except OSError as e:
        raise PhotoSourceError(f"could not unpack Debian package {package}: {e}") from None
    if r.returncode != 0:
        raise PhotoSourceError(f"could not unpack Debian package {package} ({deb.name}): {_one_line(r.stderr)}")


def _rcc_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the files in a Qt binary resource (``rcc``) file, formats 1-3."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    entry = 14 if version == 1 else 22

    def name_at(off: int) -> str:
        (n,) = struct.unpack(">H", data[names + off:names + off + 2])
        return data[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        idx, prefix = stack.pop()
        o = tree + idx * entry
        name_off, flags = struct.unpack(">IH", data[o:o + 6])
        name = name_at(name_off) if idx else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", data[o + 6:o + 14])
            stack += [(first + i, f"{prefix}{name}/") for i in range(count)]
            continue
        (off,) = struct.unpack(">I", data[o + 10:o + 14])
        (size,) = struct.unpack(">I", data[payload + off:payload + off + 4])
        raw = data[payload + off + 4:payload + off + 4 + size]
        if flags & 1:  # zlib, behind a 4-byte length
            raw = zlib.decompress(raw[4:])
        elif flags & 4:  # zstd: not used by the packages above
            continue
        yield prefix + name, raw


def _pzl_photo(data: bytes) -> np.ndarray | None:
    """The whole picture of a jigzo puzzle: the ``image x y w h`` rectangle of its texture atlas."""
    m = re.search(rb"\nimage (\d+) (\d+) (\d+) (\d+)", data[:65536])
    start = data.rfind(b"\xff\xd8\xff")  # the atlas is the last JPEG (the first is a thumbnail)
    if m is None or start < 0:
        return None
    atlas = cv2.imdecode(np.frombuffer(data[start:], np.uint8), cv2.IMREAD_COLOR)
    if atlas is None:
        return None
    x, y, w, h = map(int, m.groups())
    return atlas[y + 2:y + h - 2, x + 2:x + w - 2].copy()  # 2 px margin: the atlas has dark seams


@dataclass
class _Candidate:
    origin: str  # file path relative to the unpacked root, or "ARCHIVE::member"
    stem: str
    parent: str
    category: str
    load: object  # () -> BGR image or None


def _candidates(unpack: Path, source: Source) -> list[_Candidate]:
    """Every picture a source selects, before the size check, in a deterministic order."""
    out: list[_Candidate] = []
    seen: set[str] = set()
    for pattern, category in source.include:
        archive_glob, _, member_glob = pattern.partition("::")
        for path in sorted(unpack.glob(archive_glob)):
            rel = path.relative_to(unpack).as_posix()
            if not path.is_file():
                continue
            if not member_glob:
                if rel in seen or any(fnmatch.fnmatch(path.name, x) for x in source.exclude):
                    continue
                seen.add(rel)
                out.append(_Candidate(rel, path.stem, path.parent.name, category,
                                      lambda p=path: _decode(p.read_bytes())))
            elif path.suffix == ".pzl":
                if fnmatch.fnmatch(path.name, member_glob) and not any(fnmatch.fnmatch(path.name, x)
                                                                       for x in source.exclude):
                    data = path.read_bytes()
                    out.append(_Candidate(f"{rel}::", path.stem, path.parent.name, category,
                                          lambda d=data: _pzl_photo(d)))
            else:  # Qt resource
                archive = path.stem
                for member, raw in sorted(_rcc_members(path.read_bytes())):
                    base = member.rsplit("/", 1)[-1]
                    origin = f"{rel}::{member}"
                    if (origin in seen or not fnmatch.fnmatch(base, member_glob) or not base.lower().endswith(IMAGE_SUFFIXES)
                            or any(fnmatch.fnmatch(base, x) for x in source.exclude)):
                        continue
                    seen.add(origin)
                    folder = member.rsplit("/", 2)[-2] if member.count("/") >= 2 else archive
                    out.append(_Candidate(origin, f"{archive}-{Path(base).stem}", folder, category,
                                          lambda r=raw: _decode(r)))
    return out


def source_files(unpack: str | os.PathLike, package: str) -> list[str]:
    """Plain image files (not container members) a source selects in an unpacked package, no size check."""
    return [str(Path(unpack) / c.origin) for c in _candidates(Path(unpack), DEBIAN_SOURCES[package])
            if "::" not in c.origin]


def _unique_names(cands: list[_Candidate]) -> list[str]:
    """Working-copy names: the file stem, or ``<parent dir>-<stem>`` where stems repeat in a package."""
    counts = Counter(c.stem for c in cands)
    names = [c.stem if counts[c.stem] == 1 else f"{c.parent}-{c.stem}" for c in cands]
    if len(set(names)) != len(names):
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        raise ValueError(f"photo names are not unique: {', '.join(dup[:5])}")
    return names


# ---------------------------------------------------------------- working copies

def _decode(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _shrink(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, WORK_SIDE / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return img


def _pixel_hash(img: np.ndarray) -> str:
    return hashlib.sha1(repr(img.shape).encode() + np.ascontiguousarray(img).tobytes()).hexdigest()


def _write_png(img: np.ndarray, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp.png")
    if not cv2.imwrite(str(tmp), img):
        raise RuntimeError(f"{dst}: cannot write")
    os.replace(tmp, dst)


def _working_copy(src: str, dst: Path) -> None:
    img = _decode(np.fromfile(src, dtype=np.uint8).tobytes())
    if img is None:
        raise RuntimeError(f"{src}: cannot decode")
    _write_png(_shrink(img), dst)


MANIFEST = ".manifest.tsv"  # name, category, pixel hash, origin; first line "# recipe <hash>"


def _read_manifest(out: Path, recipe: str | None) -> list[tuple[str, str, str, str]] | None:
    f = out / MANIFEST
    if not f.exists():
        return None
    lines = f.read_text().splitlines()
    if not lines or (recipe is not None and lines[0] != f"# recipe {recipe}"):
        return None
    rows = [tuple(ln.split("\t")) for ln in lines[1:] if ln]
    if any(len(r) != 4 or not (out / f"{r[0]}.png").exists() for r in rows):
        return None
    return rows  # type: ignore[return-value]


def _write_manifest(out: Path, recipe: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
    text = f"# recipe {recipe}\n" + "".join("\t".join(r) + "\n" for r in rows)
    tmp = out / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / MANIFEST)


def _legacy_manifest(out: Path, category: str) -> list[tuple[str, str, str, str]]:
    """Rows for a folder installed by an earlier version (``.done``, PNGs, no manifest)."""
    rows = []
    for p in sorted(out.glob("*.png")):
        if p.name.startswith("."):
            continue
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            rows.append((p.stem, category, _pixel_hash(img), ""))
    return rows


def _install(package: str, source: Source, root: Path, verbose: bool) -> list[tuple[str, str, str, str]]:
    out = root / package
    deb = _apt_download(package, root / "debs")
    unpack = root / "unpack" / f"{package}.{os.getpid()}"
    shutil.rmtree(unpack, ignore_errors=True)
    try:
        _unpack(package, deb, unpack)
        try:
            cands = _candidates(unpack, source)
        except (ValueError, struct.error, zlib.error) as e:
            raise PhotoSourceError(f"could not read the photos of Debian package {package}: {e}") from None
        rows, skipped = [], 0
        for cand, name in zip(cands, _unique_names(cands), strict=True):
            img = cand.load()
            if img is None or min(img.shape[:2]) < MIN_SIDE:
                skipped += 1
                continue
            img = _shrink(img)
            _write_png(img, out / f"{name}.png")
            rows.append((name, cand.category, _pixel_hash(img), cand.origin))
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
    (out / ".version").write_text(deb.name + "\n")
    _write_manifest(out, source.recipe(), rows)
    (out / ".done").write_text("ok\n")
    if verbose:
        print(f"installed {len(rows)} photos from {deb.name} ({skipped} pictures under {MIN_SIDE} px skipped)")
    return rows


def _package_rows(package: str, source: Source, root: Path, verbose: bool,
                  install: bool = True) -> list[tuple[str, str, str, str]]:
    out = root / package
    rows = _read_manifest(out, source.recipe())
    if rows is not None:
        return rows
    if (out / ".done").exists() and package in PHOTO_SET_V1 and not (out / MANIFEST).exists():
        # installed by the first version of this module: same recipe, no manifest yet
        rows = _legacy_manifest(out, source.include[0][1])
        _write_manifest(out, source.recipe(), rows)
        return rows
    return _install(package, source, root, verbose) if install else []


def _skimage_rows(root: Path, install: bool = True) -> list[tuple[str, str, str, str]]:
    try:
        import skimage
    except ImportError:
        return []
    sk_dir = Path(skimage.__file__).parent / "data"
    out = root / "scikit-image"
    rows = []
    for name in SKIMAGE_PHOTOS:
        dst = out / (Path(name).stem + ".png")
        if install and not dst.exists() and (sk_dir / name).exists():
            _working_copy(str(sk_dir / name), dst)
        if dst.exists():
            img = cv2.imread(str(dst), cv2.IMREAD_COLOR)
            rows.append((dst.stem, "mixed", _pixel_hash(img), f"skimage/data/{name}"))
    return rows


def fetch_photos(root: str | os.PathLike | None = None, verbose: bool = False, sources: Sequence[str] | None = None,
                 on_error: str = "raise") -> list[Photo]:
    """Install (once) and list the working copies of every photo, in source order then by name.

    ``sources``: only these packages (and ``"scikit-image"``), e.g. ``PHOTO_SET_V1``; default: all.
    ``on_error``: ``"raise"`` (a :class:`PhotoSourceError` naming the package) or ``"skip"`` (a
    one-line warning on stderr, the package's photos are left out). Duplicates (same pixels) are
    listed once, under the first source.
    """
    return _list_photos(root, verbose, sources, on_error, install=True)


def cached_photos(root: str | os.PathLike | None = None, sources: Sequence[str] | None = None) -> list[Photo]:
    """The photos :func:`fetch_photos` has already installed, in the same order; never downloads
    (no ``apt-get``), a package not in the cache is left out."""
    return _list_photos(root, False, sources, "raise", install=False)


def _list_photos(root, verbose: bool, sources: Sequence[str] | None, on_error: str, install: bool) -> list[Photo]:
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    root = Path(root) if root else photos_dir()
    wanted = list(DEBIAN_SOURCES) + ["scikit-image"] if sources is None else list(sources)
    unknown = [s for s in wanted if s not in DEBIAN_SOURCES and s != "scikit-image"]
    if unknown:
        raise ValueError(f"unknown photo sources: {', '.join(unknown)}")
    if "scikit-image" in wanted:  # before any download: a photo set without them would differ silently
        from quasar.extras import require

        require("skimage", "photos", "the photo set")  # five of its photos come with scikit-image
    photos: list[Photo] = []
    seen: set[str] = set()
    for package in [p for p in DEBIAN_SOURCES if p in wanted] + (["scikit-image"] if "scikit-image" in wanted else []):
        if package == "scikit-image":
            rows = _skimage_rows(root, install)
        else:
            try:
                rows = _package_rows(package, DEBIAN_SOURCES[package], root, verbose, install)
            except PhotoSourceError as e:
                if on_error == "raise":
                    raise
                print(f"quasar.photos: error: {e}", file=sys.stderr)
                continue
        for name, category, digest, origin in sorted(rows):
            if digest in seen:
                continue
            seen.add(digest)
            photos.append(Photo(str(root / package / f"{name}.png"), package, f"{package}/{name}", category, origin))
    return photos


def provenance(root: str | os.PathLike | None = None, sources: Sequence[str] | None = None) -> dict:
    """Package versions the photos came from (recorded in packs): ``{package: deb file or None}``."""
    root = Path(root) if root else photos_dir()
    prov = {}
    for package in DEBIAN_SOURCES:
        if sources is not None and package not in sources:
            continue
        v = root / package / ".version"
        prov[package] = v.read_text().strip() if v.exists() else None
    if sources is None or "scikit-image" in sources:
        try:
            import skimage

            prov["scikit-image"] = skimage.__version__
        except ImportError:
            prov["scikit-image"] = None
    return prov


def photo_inventory(photos: Sequence[Photo] | None = None, scheme: str = "thirds") -> str:
    """A table of photo counts per source and split (and per category), as text."""
    photos = fetch_photos() if photos is None else photos
    by_source: dict[str, Counter] = {}
    for p in photos:
        by_source.setdefault(p.source, Counter())[p.split_as(scheme)] += 1
    w = max([len(s) for s in by_source] + [6])
    lines = [f"{'source':<{w}}  {'photos':>6}  {'anchor':>6}  {'heldout':>7}"]
    for s, c in by_source.items():
        lines.append(f"{s:<{w}}  {c['anchor'] + c['heldout']:>6}  {c['anchor']:>6}  {c['heldout']:>7}")
    total = Counter(p.split_as(scheme) for p in photos)
    lines.append(f"{'total':<{w}}  {len(photos):>6}  {total['anchor']:>6}  {total['heldout']:>7}")
    cats = Counter(p.category or "?" for p in photos)
    lines.append("categories: " + ", ".join(f"{k} {v}" for k, v in sorted(cats.items())))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from quasar.helpfmt import HelpFormatter

    ap = argparse.ArgumentParser(
        prog="python -m quasar.photos", formatter_class=HelpFormatter,
        description="Install the real photos (Debian packages + scikit-image) as working copies in "
                    f"{photos_dir()} ($QUASAR_CACHE/photos) and report them.")
    ap.add_argument("--list", action="store_true", help="print the counts per source and split (installs what is missing)")
    ap.add_argument("--root", help="photo folder (default: the cache above)")
    ap.add_argument("--split", choices=SPLIT_SCHEMES, default="thirds",
                    help="split scheme for the counts: thirds (2/3 anchor, default) or halves (photo set v1)")
    ap.add_argument("--sources", nargs="+", metavar="PACKAGE", help="only these sources (default: all)")
    args = ap.parse_args(argv)
    try:
        photos = fetch_photos(args.root, verbose=not args.list, sources=args.sources, on_error="skip")
    except (ValueError, RuntimeError, QuasarError) as e:
        print(f"quasar.photos: error: {e}", file=sys.stderr)
        return 1
    root = Path(args.root) if args.root else photos_dir()
    if not args.list:
        n_anchor = sum(p.split_as(args.split) == "anchor" for p in photos)
        print(f"{len(photos)} photos in {root} ({n_anchor} anchor, {len(photos) - n_anchor} held-out)")
    print(photo_inventory(photos, args.split))
    wanted = args.sources or list(DEBIAN_SOURCES)
    missing = [s for s in wanted if s in DEBIAN_SOURCES and not (root / s / MANIFEST).exists()]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
