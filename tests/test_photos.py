"""Photo sources, split and installation (offline: tiny packages built here, no apt)."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import zlib

import cv2
import numpy as np
import pytest

from quasar import photos
from quasar.photos import DEBIAN_SOURCES, PHOTO_SET_V1, Photo, Source, split_of

# Reserved for independent evaluation: never a source (spelled out here, not taken from the module).
RESERVED = ("plasma-workspace-wallpapers", "lomiri-wallpapers-20.04", "libjxl-testdata", "opencv-doc")


def test_no_reserved_sources():
    for package, source in DEBIAN_SOURCES.items():
        assert package not in RESERVED
        assert not any(r in pat for r in RESERVED for pat in source.patterns)
    assert photos.RESERVED_SOURCES.isdisjoint(DEBIAN_SOURCES)
    for name in photos.SKIMAGE_PHOTOS:  # scikit-image's own files, not scikit-learn's or matplotlib's samples
        assert name not in ("china.jpg", "flower.jpg", "grace_hopper.jpg", "grace_hopper.png")


def test_split_is_deterministic_with_two_thirds_anchors():
    names = [f"pkg{i % 7}/photo_{i}" for i in range(3000)]
    first = [split_of(n) for n in names]
    assert first == [split_of(n) for n in names] == [Photo("x", "s", n).split for n in names]
    frac = first.count("anchor") / len(names)
    assert 0.63 < frac < 0.70, frac
    assert set(first) == {"anchor", "heldout"}
    halves = [split_of(n, "halves") for n in names]
    assert 0.47 < halves.count("anchor") / len(names) < 0.53
    # the rule itself, so that a photo never changes sides between versions
    n = "lomiri-wallpapers-16.04/Wine_by_Jakkub_Mede"
    b = hashlib.sha1(n.encode()).digest()[0]
    assert split_of(n) == ("anchor" if b % 3 else "heldout")
    with pytest.raises(ValueError, match="split scheme"):
        split_of(n, "quarters")


def test_shipped_default_pack_anchors_are_anchor_split():
    """The shipped pack's anchors come from the anchor third of every source (held-out never used)."""
    from quasar.centroids.pack import default_pack_path

    with open(default_pack_path()) as f:
        shipped = json.load(f)["heads"][0]["anchors"]["provenance"]["photos"]
    assert shipped and all(split_of(n) == "anchor" for n in shipped)
    assert len({n.split("/")[0] for n in shipped}) > len(PHOTO_SET_V1)  # beyond photo set v1's packages


def _rcc(files: dict[str, bytes], compress: bool) -> bytes:
    """A format-1 Qt resource file: root -> dir "res" -> files (the layout rcc writes)."""
    names = b""
    offsets = {}
    for n in ["res", *files]:
        offsets[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    payload = b""
    data_off = {}
    for n, raw in files.items():
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw) if compress else raw
        data_off[n] = len(payload)
        payload += struct.pack(">I", len(blob)) + blob
    tree = struct.pack(">IHII", 0, 2, 1, 1)  # root: one child at index 1
    tree += struct.pack(">IHII", offsets["res"], 2, len(files), 2)
    for n in files:
        tree += struct.pack(">IHHHI", offsets[n], 1 if compress else 0, 0, 0, data_off[n])
    head = 20
    return b"qres" + struct.pack(">IIII", 1, head, head + len(tree), head + len(tree) + len(payload)) + tree + payload + names


@pytest.mark.parametrize("compress", [False, True])
def test_rcc_members(compress):
    files = {"a.webp": b"first", "b.png": b"second" * 50}
    got = dict(photos._rcc_members(_rcc(files, compress)))
    assert got == {f"/res/{k}": v for k, v in files.items()}


def _photo(seed: int, h: int = 400, w: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)


def test_pzl_photo_is_the_image_rectangle_of_the_atlas():
    atlas = np.zeros((1024, 1024, 3), np.uint8)
    atlas[:482, :642] = 200
    thumb = cv2.imencode(".jpg", np.zeros((20, 30, 3), np.uint8))[1].tobytes()
    big = cv2.imencode(".jpg", atlas, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    data = b"PzlF\n0.1\nx\n#texture map data\ncrop000 1 2 3 4\nimage 0 0 642 482 1 1\nx.jpg\n" + thumb + big
    img = photos._pzl_photo(data)
    assert img.shape == (478, 638, 3) and abs(float(img.mean()) - 200) < 2


def _deb(tmp_path, package: str, files: dict[str, bytes]):
    root = tmp_path / f"build-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\n"
                                             "Maintainer: QUASAR tests <t@example.org>\nDescription: test photos\n")
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    debs = tmp_path / "photos" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(debs / f"{package}_1.0-1_all.deb")],
                   check=True, capture_output=True)


def test_install_dedupe_exclude_and_inventory(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    if subprocess.run(["which", "dpkg-deb"], capture_output=True).returncode != 0:
        pytest.skip("no dpkg-deb")
    jpg = {i: cv2.imencode(".jpg", _photo(i, 900, 1200), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for i in range(4)}
    _deb(tmp_path, "quasar-test-a", {"usr/share/a/one.jpg": jpg[0], "usr/share/a/two.jpg": jpg[1],
                                     "usr/share/a/logo.jpg": jpg[2],
                                     "usr/share/a/tiny.jpg": cv2.imencode(".jpg", _photo(9, 100, 100))[1].tobytes()})
    rcc = _rcc({"dup.webp": cv2.imencode(".webp", _photo(5))[1].tobytes()}, compress=True)
    _deb(tmp_path, "quasar-test-b", {"usr/share/b/one.jpg": jpg[0], "usr/share/b/three.jpg": jpg[3],
                                     "usr/share/b/x/one.jpg": jpg[2], "usr/share/b/r.rcc": rcc})
    sources = {"quasar-test-a": Source((("usr/share/a/*.jpg", "cat-a"),), exclude=("logo.*",)),
               "quasar-test-b": Source((("usr/share/b/**/*.jpg", "cat-b"), ("usr/share/b/*.rcc::*.webp", "cat-r")))}
    monkeypatch.setattr(photos, "DEBIAN_SOURCES", sources)
    monkeypatch.setattr(photos, "SKIMAGE_PHOTOS", ())
    root = tmp_path / "photos"
    got = photos.fetch_photos(root)
    # a/one and b/one are the same photo: listed once, under the first source
    # (stems that repeat in a package get their folder's name; logo.jpg is excluded there, not here)
    assert [p.name for p in got] == ["quasar-test-a/one", "quasar-test-a/two", "quasar-test-b/r-dup",
                                     "quasar-test-b/three", "quasar-test-b/x-one"]
    assert [p.category for p in got] == ["cat-a", "cat-a", "cat-r", "cat-b", "cat-b"]
    assert got[4].source == "quasar-test-b" and got[4].origin == "usr/share/b/x/one.jpg"
    assert got[4].path.endswith("quasar-test-b/x-one.png") and got[2].origin == "usr/share/b/r.rcc::/res/dup.webp"
    for p in got:
        img = cv2.imread(p.path)
        assert img is not None and max(img.shape[:2]) <= photos.WORK_SIDE
    assert not (root / "quasar-test-a" / "logo.png").exists() and not (root / "quasar-test-a" / "tiny.png").exists()
    assert photos.provenance(root) == {"quasar-test-a": "quasar-test-a_1.0-1_all.deb",
                                       "quasar-test-b": "quasar-test-b_1.0-1_all.deb",
                                       "scikit-image": pytest.importorskip("skimage").__version__}
    assert photos.fetch_photos(root) == got  # second call: from the manifests
    text = photos.photo_inventory(got)
    n_anchor = sum(p.split == "anchor" for p in got)
    assert text.splitlines()[-2].split() == ["total", str(len(got)), str(n_anchor), str(len(got) - n_anchor)]
    assert "quasar-test-b" in text


def test_download_failure_is_one_line_naming_the_package(tmp_path, monkeypatch, capsys):
    def fake_run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 100, "", "Reading package lists...\nE: Unable to locate package x\n")

    monkeypatch.setattr(photos.subprocess, "run", fake_run)
    monkeypatch.setattr(photos, "DEBIAN_SOURCES", {"quasar-missing-pkg": Source((("*.jpg", "x"),))})
    monkeypatch.setattr(photos, "SKIMAGE_PHOTOS", ())
    with pytest.raises(photos.PhotoSourceError) as e:
        photos.fetch_photos(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "quasar-missing-pkg" in msg and "Unable to locate package" in msg
    assert photos.fetch_photos(tmp_path, on_error="skip") == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quasar-missing-pkg" in err[0]
    assert photos.main(["--root", str(tmp_path), "--list"]) == 1


def test_help_does_not_install(monkeypatch, capsys):
    monkeypatch.setattr(photos, "fetch_photos", lambda *a, **k: pytest.fail("--help must not install"))
    with pytest.raises(SystemExit) as e:
        photos.main(["--help"])
    assert e.value.code == 0 and "--list" in capsys.readouterr().out


def test_int8_default_calibration_never_downloads(tmp_path, monkeypatch):
    """Without cached photos, default int8 calibration is a one-line error naming --calib-dir, not apt-get."""
    pytest.importorskip("onnx")
    from quasar.errors import QuasarError
    from quasar.export.int8 import default_calibration_images

    monkeypatch.setenv("QUASAR_CACHE", str(tmp_path))
    monkeypatch.setattr(photos, "_apt_download", lambda *a, **k: pytest.fail("calibration must not download"))
    assert photos.cached_photos(sources=list(photos.DEBIAN_SOURCES)) == []
    with pytest.raises(QuasarError, match="pass --calib-dir DIR") as e:
        default_calibration_images()
    assert "\n" not in str(e.value)
