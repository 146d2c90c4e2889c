"""Readers for published IQA / aesthetics datasets in their distributed folder layouts.

Every reader is ``read_<name>(root) -> list[LabeledImage]`` with ``LabeledImage(path, mos, group)``:

* ``path`` is absolute, ``mos`` a float on the dataset's own scale, **always oriented so that
  higher means better** (the one error-style label, PieAPP's, is negated), so a positive SRCC
  always means the model agrees with people.
* ``group`` names the pristine source of a synthetically distorted image (TID2013, KADID-10k,
  PieAPP), so that bootstrap intervals can resample source photos rather than images; it is
  ``None`` for datasets of independent photos.

Readers check that the label file and image folder of the layout exist and raise
:class:`~quasar.errors.QuasarError` naming the root and the expected path otherwise; they do
*not* open every image (missing or broken images show up as scoring failures). Image names are
resolved case-insensitively when the exact name is missing, because some distributions (TID2013)
list names in a different case than the files on disk.

Layouts follow the official archives as unpacked, cross-checked against the pyiqa preparation
scripts (chaofengc/IQA-PyTorch ``scripts/process_*.py``). Where a layout is less certain it is
marked **Uncertain** in the reader's docstring.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from quasar.errors import QuasarError

__all__ = [
    "LabeledImage",
    "Dataset",
    "DATASETS",
    "PAPER_TABLE1",
    "load_dataset",
    "canonical_name",
    "read_csv",
]


@dataclass(frozen=True)
class LabeledImage:
    """One image with its human opinion score (higher = better) and optional source group."""

    path: str
    mos: float
    group: str | None = None


# --------------------------------------------------------------------------------------------
# helpers


def _root(root: str | os.PathLike, dataset: str) -> str:
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise QuasarError(f"{dataset}: dataset root {root!r} is not a directory")
    return os.path.abspath(root)


def _need(root: str, rel: str, dataset: str, what: str = "file") -> str:
    """``root/rel`` if it exists, else a QuasarError naming the root and the expected path."""
    path = os.path.join(root, rel)
    ok = os.path.isdir(path) if what == "folder" else os.path.isfile(path)
    if not ok:
        raise QuasarError(f"{dataset}: expected {what} {rel!r} under root {root!r} (not found)")
    return path


def _first_dir(root: str, candidates: Iterable[str], dataset: str) -> str:
    """The first existing image folder among ``candidates``; an error names the first one."""
    candidates = list(candidates)
    for rel in candidates:
        if os.path.isdir(os.path.join(root, rel)):
            return os.path.join(root, rel)
    return _need(root, candidates[0], dataset, "folder")


class _Resolver:
    """Joins image names to a folder, falling back to a case-insensitive match on disk."""

    def __init__(self) -> None:
        self._listings: dict[str, dict[str, str]] = {}

    def __call__(self, folder: str, name: str) -> str:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
        parent, base = os.path.split(path)
        listing = self._listings.get(parent)
        if listing is None:
            try:
                listing = {n.lower(): n for n in os.listdir(parent)}
            except OSError:
                listing = {}
            self._listings[parent] = listing
        actual = listing.get(base.lower())
        return os.path.join(parent, actual) if actual else path


def _float(value: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise QuasarError(f"{where}: {value!r} is not a number") from None


def _pairs(labels: str, expected: str) -> Iterator[tuple[str, str, str]]:
    """(first, second, "file:line") for each non-blank line of a two-column whitespace label file."""
    with open(labels, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise QuasarError(f"{labels}:{lineno}: expected {expected!r}, got {line.strip()!r}")
            yield parts[0], parts[1], f"{labels}:{lineno}"


def _dict_rows(path: str) -> tuple[list[str], list[dict[str, str]]]:
    """CSV rows keyed by header names stripped of whitespace (PieAPP pads them with spaces)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = [
            dict(zip(header, (c.strip() for c in row), strict=False))  # short rows: missing keys
            for row in reader
            if any(c.strip() for c in row)
        ]
    return header, rows


def _column(header: list[str], path: str, *names: str) -> str:
    """The header entry matching one of ``names`` (case-insensitive), else a clear error."""
    lower = {h.lower(): h for h in header}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    raise QuasarError(f"{path}: no column {' / '.join(repr(n) for n in names)} (header: {header})")


# --------------------------------------------------------------------------------------------
# readers


def read_koniq10k(root, score: str = "MOS") -> list[LabeledImage]:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` and images in ``1024x768/``.

    Columns used: ``image_name`` and ``MOS`` (1-5 scale); pass ``score="MOS_zscore"`` for the
    z-scored MOS (0-100), which the QUASAR reference code appears to use; the two differ
    slightly in rank order. The half-size ``512x384/`` folder is used if ``1024x768/`` is absent.
    All 10,073 images are returned (the official train/validation/test split is not applied).
    """
    name = "KonIQ-10k"
    root = _root(root, name)
    labels = _need(root, "koniq10k_scores_and_distributions.csv", name)
    images = _first_dir(root, ("1024x768", "512x384"), name)
    header, rows = _dict_rows(labels)
    col_name = _column(header, labels, "image_name")
    col_mos = _column(header, labels, score)
    resolve = _Resolver()
    return [LabeledImage(resolve(images, r[col_name]), _float(r[col_mos], labels)) for r in rows]


def read_kadid10k(root) -> list[LabeledImage]:
    """KADID-10k: ``dmos.csv`` (``dist_img, ref_img, dmos, var``) and images in ``images/``.

    Despite its name, ``dmos`` is a mean degradation-category rating on 1-5 where 5 means
    "imperceptible", i.e. higher is better, so it is used as-is. Group = ``ref_img``.
    """
    name = "KADID-10k"
    root = _root(root, name)
    labels = _need(root, "dmos.csv", name)
    images = _need(root, "images", name, "folder")
    header, rows = _dict_rows(labels)
    col_d, col_r, col_m = (_column(header, labels, c) for c in ("dist_img", "ref_img", "dmos"))
    resolve = _Resolver()
    return [LabeledImage(resolve(images, r[col_d]), _float(r[col_m], labels), r[col_r]) for r in rows]


def read_tid2013(root) -> list[LabeledImage]:
    """TID2013: ``mos_with_names.txt`` (``"<MOS> <name>"`` lines) and ``distorted_images/``.

    MOS is on 0-9, higher is better. Group = the reference id (``i01`` .. ``i25``, the first
    three characters of the name). The list spells some names in a different case than the
    files (``i01_01_1.bmp`` vs ``I01_01_1.bmp``); the case-insensitive fallback handles it.
    """
    name = "TID2013"
    root = _root(root, name)
    labels = _need(root, "mos_with_names.txt", name)
    images = _need(root, "distorted_images", name, "folder")
    resolve = _Resolver()
    items = [LabeledImage(resolve(images, img), _float(mos, where), img[:3].lower())
             for mos, img, where in _pairs(labels, "<MOS> <name>")]
    return items


def _mat_str(x) -> str:
    """The string inside a MATLAB cell entry as returned by ``loadmat`` (nested 1-element arrays)."""
    while not isinstance(x, str):
        if hasattr(x, "size") and x.size == 0:
            raise ValueError("empty cell")
        x = x[0] if not hasattr(x, "ravel") else x.ravel()[0]
    return str(x)


def read_livec(root) -> list[LabeledImage]:
    """LIVE In the Wild / LIVE Challenge: ``Data/AllImages_release.mat``, ``Data/AllMOS_release.mat``.

    Images are in ``Images/``; MOS is on 0-100, higher is better. In the official layout the
    first 7 entries (``t1.bmp`` .. ``t7.bmp``) are the study's training images, kept in
    ``Images/trainingImages/``. All 1,169 entries are returned here; most papers (and pyiqa)
    drop those first 7 and report on 1,162 images, a difference far below the bootstrap CI.
    """
    from scipy.io import loadmat

    name = "LIVE Challenge"
    root = _root(root, name)
    names_mat = _need(root, os.path.join("Data", "AllImages_release.mat"), name)
    mos_mat = _need(root, os.path.join("Data", "AllMOS_release.mat"), name)
    images = _need(root, "Images", name, "folder")
    try:
        names = [_mat_str(x) for x in loadmat(names_mat)["AllImages_release"].ravel()]
        mos = [float(v) for v in loadmat(mos_mat)["AllMOS_release"].ravel()]
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise QuasarError(f"{name}: unexpected content in {names_mat} / {mos_mat}: {e}") from None
    if len(names) != len(mos):
        raise QuasarError(f"{name}: {len(names)} image names but {len(mos)} MOS values")
    training = os.path.join(images, "trainingImages")
    resolve = _Resolver()
    items = []
    for i, (img, m) in enumerate(zip(names, mos, strict=True)):
        folder = training if i < 7 and os.path.isfile(os.path.join(training, img)) else images
        items.append(LabeledImage(resolve(folder, img), m))
    return items


def _spaq_rows_xlsx(path: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        import openpyxl
    except ImportError:
        raise QuasarError(
            f"SPAQ: reading {path!r} needs openpyxl (pip install openpyxl), or export its "
            "'Image name' and 'MOS' columns to Annotations/MOS.csv"
        ) from None
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = [["" if c is None else str(c).strip() for c in row] for row in wb.worksheets[0].iter_rows(values_only=True)]
    finally:
        wb.close()
    header = rows[0] if rows else []
    return header, [dict(zip(header, r, strict=False)) for r in rows[1:] if any(r)]


def read_spaq(root) -> list[LabeledImage]:
    """SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` and images in ``TestImage/``.

    Columns used: ``Image name`` and ``MOS`` (0-100). Reading the .xlsx needs openpyxl; a CSV
    export with those two columns named ``MOS.csv`` (in ``Annotations/`` or the root) is used
    in preference when present. Images are the full-resolution phone photos (up to 4000x3000);
    many papers score them resized so that the short side is 512, here the model's preprocess
    spec decides. **Uncertain**: the CSV export is a convenience of this reader, not part of
    the official archive.
    """
    name = "SPAQ"
    root = _root(root, name)
    images = _need(root, "TestImage", name, "folder")
    for rel in (os.path.join("Annotations", "MOS.csv"), "MOS.csv"):
        if os.path.isfile(os.path.join(root, rel)):
            labels = os.path.join(root, rel)
            header, rows = _dict_rows(labels)
            break
    else:
        labels = _need(root, os.path.join("Annotations", "MOS and Image attribute scores.xlsx"), name)
        header, rows = _spaq_rows_xlsx(labels)
    col_name = _column(header, labels, "Image name", "image_name", "image")
    col_mos = _column(header, labels, "MOS")
    resolve = _Resolver()
    return [LabeledImage(resolve(images, r[col_name]), _float(r[col_mos], labels)) for r in rows]


def read_pieapp(root) -> list[LabeledImage]:
    """PieAPP test set: ``labels/test/ref_<n>_per_image_score.csv`` + ``distorted_images/test/``.

    Layout (official ``all_data_PieAPP_dataset_CVPR_2018`` archive): one per-image score file
    per test reference, columns ``reference image, distorted image, score for distorted image``
    (headers padded with spaces); the distorted images are in
    ``distorted_images/test/ref_<n>/<name>``. As in pyiqa, the per-image score of each test
    distorted image is the label (600 images, 15 for each of 40 references); the reference itself
    (score 0 by construction), if listed, is skipped. The PieAPP score is a MAP-estimated
    Bradley-Terry **dissimilarity to the reference** (higher = worse), so MOS = ``-score``.
    Group = the reference (``ref_<n>``).
    """
    name = "PieAPP"
    root = _root(root, name)
    label_dir = _need(root, os.path.join("labels", "test"), name, "folder")
    image_dir = _need(root, os.path.join("distorted_images", "test"), name, "folder")
    files = sorted(f for f in os.listdir(label_dir) if f.endswith("_per_image_score.csv"))
    if not files:
        raise QuasarError(
            f"{name}: expected files 'labels/test/ref_<n>_per_image_score.csv' under root {root!r} (none found)"
        )
    resolve = _Resolver()
    items = []
    for fname in files:
        ref = fname[: -len("_per_image_score.csv")]
        path = os.path.join(label_dir, fname)
        header, rows = _dict_rows(path)
        col_d = _column(header, path, "distorted image", "distorted image A")
        col_s = _column(header, path, "score for distorted image", "score for image A", "score")
        for r in rows:
            img = r[col_d]
            if os.path.splitext(img)[0] == ref:
                continue
            items.append(LabeledImage(resolve(os.path.join(image_dir, ref), img), -_float(r[col_s], path), ref))
    return items


def read_ava(root) -> list[LabeledImage]:
    """AVA: ``AVA.txt`` and images ``images/<image id>.jpg``.

    Each line: index, image id, then the counts of votes for scores 1..10 (columns 3-12), two
    semantic tags and a challenge id. MOS = the vote-weighted mean score (1-10). All ~255k rows
    are returned; the usual benchmark uses a ~20k test list, and some images of the original
    crawl are missing or broken (they are reported as failures). **Uncertain**: the image
    folder name varies between mirrors; ``images/`` is expected, ``image/`` is accepted.
    """
    name = "AVA"
    root = _root(root, name)
    labels = _need(root, "AVA.txt", name)
    images = _first_dir(root, ("images", "image"), name)
    items = []
    with open(labels, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 12:
                raise QuasarError(f"{labels}:{lineno}: expected at least 12 columns, got {len(parts)}")
            counts = [_float(c, f"{labels}:{lineno}") for c in parts[2:12]]
            total = sum(counts)
            if total <= 0:
                continue
            mos = sum(k * c for k, c in enumerate(counts, 1)) / total
            items.append(LabeledImage(os.path.join(images, f"{parts[1]}.jpg"), mos))
    return items


def read_aadb(root, split: str = "test") -> list[LabeledImage]:
    """AADB: ``imgListFiles_label/imgList{Train,Validation,Test}Regression_score.txt``.

    Lines are ``"<image name> <score>"`` with the overall aesthetic score in 0-1; images are in
    ``datasetImages_originalSize/``. ``split="test"`` (default, 1,000 images) or ``"train"``,
    ``"validation"``, ``"all"``. **Uncertain**: which split the paper's Table 1 used.
    """
    name = "AADB"
    root = _root(root, name)
    images = _need(root, "datasetImages_originalSize", name, "folder")
    splits = {"train": "Train", "validation": "Validation", "test": "Test"}
    if split not in (*splits, "all"):
        raise QuasarError(f"{name}: unknown split {split!r} (train, validation, test, all)")
    wanted = list(splits.values()) if split == "all" else [splits[split]]
    resolve = _Resolver()
    items = []
    for part in wanted:
        rel = os.path.join("imgListFiles_label", f"imgList{part}Regression_score.txt")
        if split == "all" and part != "Test" and not os.path.isfile(os.path.join(root, rel)):
            continue
        labels = _need(root, rel, name)
        items += [LabeledImage(resolve(images, img), _float(score, where))
                  for img, score, where in _pairs(labels, "<name> <score>")]
    return items


def read_tad66k(root, split: str = "test") -> list[LabeledImage]:
    """TAD66k: ``labels/merge/{test,train}.csv`` (columns ``image``, ``score``) and ``images/``.

    Scores are the theme-normalised aesthetic means (1-10). ``split="test"`` (default) or
    ``"train"`` / ``"all"``. **Uncertain**: the image folder name in the released archive;
    ``images/`` is expected, ``TAD66K/`` is accepted.
    """
    name = "TAD66k"
    root = _root(root, name)
    images = _first_dir(root, ("images", "TAD66K"), name)
    if split not in ("test", "train", "all"):
        raise QuasarError(f"{name}: unknown split {split!r} (train, test, all)")
    parts = ("train", "test") if split == "all" else (split,)
    resolve = _Resolver()
    items = []
    for part in parts:
        labels = _need(root, os.path.join("labels", "merge", f"{part}.csv"), name)
        header, rows = _dict_rows(labels)
        col_img, col_score = _column(header, labels, "image"), _column(header, labels, "score")
        items += [LabeledImage(resolve(images, r[col_img]), _float(r[col_score], labels)) for r in rows]
    return items


def read_csv(csv_path, root=None) -> list[LabeledImage]:
    """A plain CSV: header required, columns ``path`` and ``mos`` (any case), optional ``group``.

    Relative paths are resolved against ``root`` if given, else against the CSV's folder. MOS
    must be oriented higher = better, like every reader here.
    """
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise QuasarError(f"CSV dataset: {csv_path!r} not found")
    base = os.path.abspath(os.fspath(root)) if root is not None else os.path.dirname(os.path.abspath(csv_path))
    if root is not None and not os.path.isdir(base):
        raise QuasarError(f"CSV dataset: root {base!r} is not a directory")
    header, rows = _dict_rows(csv_path)
    if not header:
        raise QuasarError(f"{csv_path}: empty file (a header with 'path' and 'mos' is required)")
    col_path, col_mos = _column(header, csv_path, "path"), _column(header, csv_path, "mos")
    lower = {h.lower(): h for h in header}
    col_group = lower.get("group")
    items = []
    for lineno, r in enumerate(rows, 2):
        p = r.get(col_path, "")
        if not p:
            raise QuasarError(f"{csv_path}:{lineno}: empty path")
        group = (r.get(col_group) or None) if col_group else None
        items.append(LabeledImage(os.path.join(base, p), _float(r.get(col_mos), f"{csv_path}:{lineno}"), group))
    return items


# --------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: canonical name, display title, reader and what its images are."""

    name: str
    title: str
    read: Callable[..., list[LabeledImage]]
    kind: str  # "synthetic" (distorted references), "authentic" (in-the-wild) or "aesthetic"

    def __call__(self, root, **kwargs) -> list[LabeledImage]:
        return self.read(root, **kwargs)


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("tid2013", "TID2013", read_tid2013, "synthetic"),
        Dataset("kadid10k", "KADID-10k", read_kadid10k, "synthetic"),
        Dataset("koniq10k", "KonIQ-10k", read_koniq10k, "authentic"),
        Dataset("livec", "LIVE Challenge (LIVEitW)", read_livec, "authentic"),
        Dataset("spaq", "SPAQ", read_spaq, "authentic"),
        Dataset("pieapp", "PieAPP (test)", read_pieapp, "synthetic"),
        Dataset("ava", "AVA", read_ava, "aesthetic"),
        Dataset("aadb", "AADB (test)", read_aadb, "aesthetic"),
        Dataset("tad66k", "TAD66k (test)", read_tad66k, "aesthetic"),
    )
}

_ALIASES = {
    "tid": "tid2013",
    "kadid": "kadid10k",
    "koniq": "koniq10k",
    "liveitw": "livec",
    "livechallenge": "livec",
    "liveinthewild": "livec",
    "clive": "livec",
    "tad": "tad66k",
}

# SRCC from the QUASAR paper's Table 1 (QUASAR vs CLIP-IQA); AVA is not in the table.
PAPER_TABLE1: dict[str, dict[str, float] | None] = {
    "tid2013": {"quasar": 0.627, "clip_iqa": 0.503},
    "kadid10k": {"quasar": 0.670, "clip_iqa": 0.479},
    "koniq10k": {"quasar": 0.688, "clip_iqa": 0.695},
    "livec": {"quasar": 0.637, "clip_iqa": 0.612},
    "spaq": {"quasar": 0.769, "clip_iqa": 0.738},
    "pieapp": {"quasar": 0.375, "clip_iqa": 0.288},
    "aadb": {"quasar": 0.453, "clip_iqa": 0.428},
    "tad66k": {"quasar": 0.375, "clip_iqa": 0.235},
    "ava": None,
}


def canonical_name(name: str) -> str | None:
    """Registry key for a user-typed dataset name (``KonIQ-10k``, ``live_challenge``...), or None."""
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    key = _ALIASES.get(key, key)
    return key if key in DATASETS else None


def load_dataset(name_or_csv: str, root=None) -> tuple[str, list[LabeledImage]]:
    """Items of a registered dataset (``root`` required) or of a plain CSV file.

    Returns ``(canonical name or "csv", items)``. A value that is neither a registered name nor
    an existing file is an error that lists the known names.
    """
    key = canonical_name(name_or_csv)
    if key is not None:
        if root is None:
            raise QuasarError(f"dataset {DATASETS[key].title} needs --root (the unpacked dataset folder)")
        items = DATASETS[key](root)
    elif os.path.isfile(name_or_csv) or name_or_csv.lower().endswith(".csv"):
        key, items = "csv", read_csv(name_or_csv, root)
    else:
        known = ", ".join(sorted(DATASETS))
        raise QuasarError(f"unknown dataset {name_or_csv!r}: use one of {known}, or a CSV file with path,mos")
    if not items:
        raise QuasarError(f"dataset {name_or_csv!r} under {root!r} lists no images")
    return key, items
