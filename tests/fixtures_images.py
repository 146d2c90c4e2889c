"""Generators for awkward and broken image files (nothing binary is committed).

Plain functions returning bytes, so tests can write them wherever they need. JPEG EXIF orientation is
written by hand (an APP1 segment with a one-entry IFD) so the test does not depend on PIL's writer.
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np


def pattern(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """An RGB test image with a distinct top-left quadrant, a gradient and some texture (not symmetric)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(1, w - 1)), (y * 255 // max(1, h - 1)), np.full_like(x, 128)], -1)
    img = img.astype(np.int16) + rng.integers(-8, 8, (h, w, 3))
    img[: h // 3, : w // 3] = (250, 20, 20)  # red block marks the top-left corner
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, ext: str = ".png", params: list[int] | None = None) -> bytes:
    """OpenCV encode of an RGB(A)/grey/16-bit array (channel order converted for OpenCV)."""
    img = rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return buf.tobytes()


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    return encode(rgb, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])


def exif_app1(orientation: int, big_endian: bool = True) -> bytes:
    """A JPEG APP1 segment holding EXIF with only the Orientation tag (0x0112, SHORT)."""
    e = ">" if big_endian else "<"
    tiff = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    tiff += struct.pack(e + "H", 1)  # one IFD entry
    tiff += struct.pack(e + "HHI", 0x0112, 3, 1) + struct.pack(e + "HH", orientation, 0)
    tiff += struct.pack(e + "I", 0)  # no next IFD
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_orientation(rgb: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """``rgb`` stored as-is, tagged so that a viewer shows it transformed per EXIF ``orientation``."""
    data = jpeg(rgb, quality)
    assert data[:2] == b"\xff\xd8"
    return data[:2] + exif_app1(orientation) + data[2:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_exif(rgba_or_rgb: np.ndarray, orientation: int) -> bytes:
    """A PNG with an ``eXIf`` chunk (inserted after IHDR) carrying the Orientation tag."""
    data = encode(rgba_or_rgb, ".png")
    tiff = exif_app1(orientation)[4 + 6 :]  # strip marker, length and "Exif\0\0"
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return data[:ihdr_end] + _png_chunk(b"eXIf", tiff) + data[ihdr_end:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` RGB pixels but holds no pixel data (a bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def corrupt_png(rgb: np.ndarray) -> bytes:
    """Damage the IDAT payload (CRC mismatch and broken zlib stream)."""
    data = bytearray(encode(rgb, ".png"))
    i = data.find(b"IDAT") + 4
    data[i + 10 : i + 60] = bytes(50)
    return bytes(data)


def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def animated_gif(frames: list[np.ndarray]) -> bytes:
    from PIL import Image

    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, "GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)
    return buf.getvalue()


def pil_encode(rgb: np.ndarray, fmt: str, mode: str | None = None, **kw) -> bytes:
    from PIL import Image

    im = Image.fromarray(rgb)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def oriented_view(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows for stored pixels ``rgb`` with EXIF ``orientation`` (numpy, independent of cv2)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](rgb))


def broken_files() -> dict[str, tuple[bytes, str]]:
    """Files no decoder accepts, by file name, each with (part of) the one-line reason the runtime gives."""
    small = pattern(64, 64)
    return {
        "zero.jpg": (b"", "empty file"),
        "truncated.jpg": (truncated(jpeg(pattern(300, 400))), "truncated JPEG"),
        "text.jpg": (b"Hello, I am a text file with a .jpg name.\n" * 5, "not an image"),
        "corrupt.png": (corrupt_png(small), "corrupt or truncated PNG"),
        "truncated.png": (truncated(encode(small, ".png")), "corrupt or truncated PNG"),
        "no_pixels.png": (png_header_only(0, 10), "no pixels"),
        "bomb.png": (png_header_only(100_000, 100_000), "decompression-bomb"),
    }


def awkward_files() -> dict[str, bytes]:
    """Unusual but valid files that must decode: one pixel, grey, RGBA, 16-bit, CMYK, EXIF-rotated, a GIF."""
    img = pattern(120, 160)
    return {
        "one_pixel.png": encode(np.array([[[1, 2, 3]]], np.uint8), ".png"),
        "grey.png": encode(img[:, :, 1], ".png"),
        "rgba.png": encode(np.dstack([img, np.full(img.shape[:2], 100, np.uint8)]), ".png"),
        "deep16.png": encode(img.astype(np.uint16) * 257, ".png"),
        "cmyk.jpg": cmyk_jpeg(img),
        "rotated.jpg": jpeg_with_orientation(img, 6),
        "animated.gif": animated_gif([img, img[::-1]]),
        "good.jpg": jpeg(img),
    }
