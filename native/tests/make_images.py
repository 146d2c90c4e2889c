"""Write the parity image set: real photos (the project's photo cache) plus generated variants that
exercise every decode path (JPEG with each EXIF orientation and reduced decoding, PNG eXIf, alpha,
16-bit, grey, WebP, BMP, TIFF, tiny and extreme images) and broken files that must become per-file
error rows. Nothing binary is committed; everything is derived here.

    python3 native/tests/make_images.py OUTDIR [--photos N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import zlib

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from quasar.photos import fetch_photos


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _encode(img: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok, ext
    return buf.tobytes()


def _exif_tiff(orientation: int) -> bytes:
    """A big-endian TIFF structure holding only the EXIF Orientation tag."""
    return (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHI", 0x0112, 3, 1) + struct.pack(">HH", orientation, 0) + struct.pack(">I", 0))


def _jpeg_with_orientation(bgr: np.ndarray, orientation: int, quality: int = 92) -> bytes:
    data = _encode(bgr, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])
    payload = b"Exif\x00\x00" + _exif_tiff(orientation)
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_grey_alpha(grey: np.ndarray, alpha: np.ndarray) -> bytes:
    """A PNG of colour type 4 (grey + alpha), which OpenCV cannot write."""
    h, w = grey.shape
    rows = np.dstack([grey, alpha]).reshape(h, w * 2)
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def _png_with_exif(bgr: np.ndarray, orientation: int) -> bytes:
    data = _encode(bgr, ".png")
    end = 8 + 4 + 4 + 13 + 4  # after IHDR
    return data[:end] + _png_chunk(b"eXIf", _exif_tiff(orientation)) + data[end:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--photos", type=int, default=40, help="real photos copied as they are (default: 40)")
    args = ap.parse_args()
    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    photos_dir, var_dir, bad_dir = (os.path.join(out, d) for d in ("photos", "variants", "bad"))
    for d in (photos_dir, var_dir, bad_dir):
        os.makedirs(d)
    photos = sorted(fetch_photos(), key=lambda p: p.path)
    step = max(1, len(photos) // args.photos)
    chosen = photos[::step][: args.photos]
    for p in chosen:
        shutil.copy(p.path, os.path.join(photos_dir, p.name.replace("/", "__") + ".png"))
    rgbs = [cv2.cvtColor(cv2.imread(p.path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in chosen[:12]]

    def v(name: str, data: bytes) -> None:
        _write(os.path.join(var_dir, name), data)

    for i, rgb in enumerate(rgbs[:4]):  # JPEG at several qualities, and large ones (reduced decoding)
        bgr = _bgr(rgb)
        v(f"q90_{i}.jpg", _encode(bgr, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]))
        v(f"q40_{i}.jpg", _encode(bgr, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 40]))
        big = cv2.resize(bgr, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        v(f"big3x_{i}.jpg", _encode(big, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92]))
    for o in range(1, 9):  # EXIF orientations: the JPEG path (OpenCV applies them) and PNG eXIf (applied here)
        bgr = _bgr(rgbs[4 + o % 4])
        v(f"exif{o}.jpg", _jpeg_with_orientation(bgr, o))
        v(f"exif{o}_big.jpg", _jpeg_with_orientation(cv2.resize(bgr, None, fx=2.5, fy=2.5), o))
        v(f"exif{o}.png", _png_with_exif(bgr, o))
    rgb = rgbs[0]
    h, w = rgb.shape[:2]
    alpha = np.clip(np.linspace(0, 400, w)[None, :] - np.linspace(0, 120, h)[:, None], 0, 255).astype(np.uint8)
    v("alpha.png", _encode(np.dstack([_bgr(rgb), alpha]), ".png"))
    v("alpha.webp", _encode(np.dstack([_bgr(rgb), alpha]), ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]))
    v("grey_alpha.png", _png_grey_alpha(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), alpha))
    v("deep16.png", _encode((_bgr(rgb).astype(np.uint16) * 257 + np.arange(w, dtype=np.uint16)[None, :, None] % 200), ".png"))
    v("grey.png", _encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), ".png"))
    v("grey.jpg", _encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), ".jpg"))
    v("lossy.webp", _encode(_bgr(rgbs[1]), ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]))
    v("lossless.webp", _encode(_bgr(rgbs[2]), ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]))
    v("plain.bmp", _encode(_bgr(rgbs[3]), ".bmp"))
    v("plain.tiff", _encode(_bgr(rgbs[5]), ".tiff"))
    from PIL import Image  # OpenCV cannot write GIF

    Image.fromarray(rgbs[4]).convert("P", palette=Image.Palette.ADAPTIVE).save(os.path.join(var_dir, "palette.gif"))
    v("tiny8x6.png", _encode(_bgr(cv2.resize(rgbs[6], (8, 6), interpolation=cv2.INTER_AREA)), ".png"))
    v("small40.jpg", _encode(_bgr(cv2.resize(rgbs[7], (40, 30), interpolation=cv2.INTER_AREA)), ".jpg"))
    v("wide.png", _encode(_bgr(cv2.resize(rgbs[8], (2000, 100), interpolation=cv2.INTER_AREA)), ".png"))
    v("tall.jpg", _encode(_bgr(cv2.resize(rgbs[9], (90, 1200), interpolation=cv2.INTER_AREA)), ".jpg"))

    def b(name: str, data: bytes) -> None:
        _write(os.path.join(bad_dir, name), data)

    jpg = _encode(_bgr(rgbs[10]), ".jpg")
    png = _encode(_bgr(rgbs[11]), ".png")
    b("empty.jpg", b"")
    b("text.jpg", b"<html>not an image</html>\n")
    b("truncated.png", png[: len(png) // 3])
    b("corrupt_header.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    b("bomb.png", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
      + _png_chunk(b"IEND", b""))
    b("zero.png", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)))
    b("strip.png", _encode(np.zeros((4, 400, 3), np.uint8), ".png"))
    b("noeoi.jpg", jpg[: len(jpg) * 2 // 3])
    os.makedirs(os.path.join(bad_dir, "folder.jpg"))
    os.symlink("does-not-exist.png", os.path.join(bad_dir, "broken_link.png"))
    print(f"{out}: {len(chosen)} photos, {len(os.listdir(var_dir))} variants, {len(os.listdir(bad_dir))} bad files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
