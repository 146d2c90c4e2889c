"""Property/fuzz tests: mutated images, packs and model files must only ever give per-file QuasarErrors.

Each target gets valid seed files (generated here), mutated by hypothesis (bit flips, interesting
bytes and integers at header offsets, truncation, insertion, deletion, duplication), and must either
work or raise its one documented error type: ``ImageError`` from the decoder (what becomes a row's
``error``), ``PackError`` from the pack loader, ``QuasarError`` from the model reader; never another
exception, a crash or a hang. The number of examples per target is fixed so that the whole file
takes about 40 s on a 2-core CI machine (a time budget inside the test would make hypothesis's
replay of a failure pass, i.e. flaky); set ``QUASAR_FUZZ_SCALE=10`` to run ten times as many locally.
"""

from __future__ import annotations

import io
import json
import os
import struct

import cv2
import numpy as np
import pytest
from fixtures_images import animated_gif, encode, jpeg_with_orientation, pattern, pil_encode, png_with_exif
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quasar.centroids.pack import CentroidPack, Head, PackError
from quasar.errors import QuasarError
from quasar.integrity import model_sha256
from quasar.io.decode import ImageError
from quasar.onnx_meta import NotOnnx, read_initializers
from quasar.preprocess import PreprocessSpec, max_resized_side
from quasar.runtime.prepare import Preparer
from quasar.runtime.sources import Item

pytest.importorskip("onnx")
from quasar.runtime.model import load_model_info
from quasar.testing import TINY_CROP_SPEC, tiny_model_bytes

SCALE = float(os.environ.get("QUASAR_FUZZ_SCALE", "1"))
FUZZ = dict(deadline=None, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


INTERESTING = [0, 1, 0x7F, 0x80, 0xFF]
INTERESTING_INTS = [0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 20000, 65500]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        n = len(data)
        i = draw(st.one_of(st.integers(0, min(n - 1, 96)), st.integers(0, n - 1)))  # headers sit near the start
        kind = draw(st.sampled_from(["flip", "byte", "int", "truncate", "insert", "delete", "dup"]))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[i] = draw(st.sampled_from(INTERESTING))
        elif kind == "int":
            fmt = draw(st.sampled_from([">H", "<H", ">I", "<I"]))
            v = draw(st.sampled_from(INTERESTING_INTS)) & (0xFFFF if fmt[1] == "H" else 0xFFFFFFFF)
            data[i : i + struct.calcsize(fmt)] = struct.pack(fmt, v)
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "delete":
            del data[i : i + draw(st.integers(1, 32))]
        else:
            j = draw(st.integers(0, n - 1))
            data[i:i] = data[j : j + draw(st.integers(1, 64))]
    return bytes(data)


# ---------------------------------------------------------------- decoder


def image_seeds() -> list[bytes]:
    img = pattern(24, 32)
    rgba = np.dstack([img, np.linspace(0, 255, 24 * 32).reshape(24, 32).astype(np.uint8)])
    ok, hdr = cv2.imencode(".hdr", img.astype(np.float32) / 255)
    seeds = [
        jpeg_with_orientation(img, 6),
        pil_encode(img, "JPEG", progressive=True, quality=80),
        encode(img, ".png"),
        encode((rgba.astype(np.uint16) * 257), ".png"),
        png_with_exif(img[:, :, 1], 8),
        animated_gif([img, img[::-1]]),
        encode(img, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
        pil_encode(rgba, "WEBP", lossless=True),
        encode(img, ".bmp"),
        pil_encode(img, "TIFF"),
        pil_encode(img, "TIFF", compression="tiff_deflate"),
        encode(img, ".ppm"),
        hdr.tobytes() if ok else b"#?RADIANCE\n\n-Y 2 +X 2\n",
    ]
    try:
        seeds.append(pil_encode(img, "TIFF", big_tiff=True))
    except (TypeError, ValueError, OSError):
        pass
    return seeds


IMAGE_SEEDS = image_seeds()
PREPARE = Preparer(PreprocessSpec(policy="native", size=64, min_size=16, size_multiple=8), max_pixels=1 << 21)


def test_image_seeds_decode():
    for data in IMAGE_SEEDS:
        assert PREPARE(Item("<seed>", data=data)).ndim == 3


@pytest.mark.slow
@settings(max_examples=int(3000 * SCALE), **FUZZ)
@given(mutated(IMAGE_SEEDS))
def test_decoder_only_raises_image_errors(data):
    try:
        out = PREPARE(Item("<fuzz>", data=data))
    except ImageError as e:
        assert str(e) and "\n" not in str(e).strip()
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert max(out.shape[:2]) <= max_resized_side(PREPARE.spec)


# ---------------------------------------------------------------- pack loader


def pack_seed() -> bytes:
    rng = np.random.default_rng(1)
    heads = [Head(n, rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32), 25.0,
                  aggregation={"method": "mean"}, anchors={"good": 3, "bad": 4}) for n in ("quality", "x")]
    pack = CentroidPack("effnet-lite0", PreprocessSpec(policy="native", size=512, size_multiple=32), heads)
    return json.dumps(pack.to_dict(), indent=1).encode()


PACK_SEEDS = [pack_seed()]
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=6)


@st.composite
def mutated_pack(draw) -> bytes:
    if draw(st.booleans()):
        return draw(mutated(PACK_SEEDS))
    d = json.loads(PACK_SEEDS[0])  # structural: one field anywhere gets an arbitrary JSON value
    node, path = d, []
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append((node, key))
        node = node[key]
    if path:
        parent, key = path[-1]
        parent[key] = draw(JSON_VALUES)
    return json.dumps(d).encode()


@pytest.mark.slow
@settings(max_examples=int(1500 * SCALE), **FUZZ)
@given(mutated_pack(), st.booleans())
def test_pack_loader_only_raises_pack_errors(tmp_path_factory, data, allow_unhashed):
    f = tmp_path_factory.getbasetemp() / "fuzz.qpack.json"
    f.write_bytes(data)
    try:
        pack = CentroidPack.load(f, allow_unhashed=allow_unhashed)
    except PackError as e:
        assert str(f) in str(e)
        return
    for h in pack.heads:  # whatever loads is usable
        assert 0 < h.logit_scale <= 1000 and np.linalg.norm(h.good) > 0 and np.linalg.norm(h.bad) > 0
    assert np.all(np.isfinite(pack.centroid_matrix()))


# ---------------------------------------------------------------- model metadata reader


MODEL_SEEDS = [tiny_model_bytes(), tiny_model_bytes(heads=("q",), spec=TINY_CROP_SPEC, dim=8)]


@pytest.mark.slow
@settings(max_examples=int(1500 * SCALE), **FUZZ)
@given(mutated(MODEL_SEEDS))
def test_model_reader_only_raises_quasar_errors(tmp_path_factory, data):
    f = tmp_path_factory.getbasetemp() / "fuzz.onnx"
    f.write_bytes(data)
    try:
        read_initializers(f)
    except NotOnnx:
        pass
    try:
        info = load_model_info(f)
    except QuasarError as e:
        assert str(e).startswith(str(f)) and "\n" not in str(e)
        return
    assert info.heads


SEALED = tiny_model_bytes()


@pytest.mark.slow
@settings(max_examples=int(800 * SCALE), **FUZZ)
@given(st.integers(0, len(SEALED) - 1), st.integers(0, 7))
def test_every_flipped_bit_of_a_sealed_model_is_refused(tmp_path_factory, pos, bit):
    """The model digest: one bit changed anywhere (graph, weights, metadata, the digest itself, the
    protobuf framing) and the model is refused, with one line naming the file."""
    f = tmp_path_factory.getbasetemp() / "flipped.onnx"
    data = bytearray(SEALED)
    data[pos] ^= 1 << bit
    f.write_bytes(bytes(data))
    with pytest.raises(QuasarError) as e:
        load_model_info(f)
    assert str(e.value).startswith(str(f)) and "\n" not in str(e.value)


@pytest.mark.slow
@settings(max_examples=int(300 * SCALE), **FUZZ)
@given(mutated(MODEL_SEEDS))
def test_a_mutated_model_that_loads_has_the_seeds_digest(tmp_path_factory, data):
    """Whatever mutation still loads changed nothing the digest covers."""
    f = tmp_path_factory.getbasetemp() / "mutated.onnx"
    f.write_bytes(data)
    try:
        load_model_info(f)
    except QuasarError:
        return
    assert model_sha256(data)[0] in {model_sha256(seed)[0] for seed in MODEL_SEEDS}


KEYS = ["quasar.heads", "quasar.preprocess", "quasar.logit_scales", "quasar.dynamic_size", "quasar.precision",
        "quasar.pack_hash", "quasar.encoder", "quasar.format_version", "quasar.head_sha256", "quasar.model_sha256"]


@pytest.mark.slow
@settings(max_examples=int(600 * SCALE), **FUZZ)
@given(st.sampled_from(KEYS), st.one_of(st.text(max_size=30), JSON_VALUES.map(json.dumps)))
def test_metadata_values_only_give_quasar_errors(tmp_path_factory, key, value):
    f = tmp_path_factory.getbasetemp() / "meta.onnx"
    try:
        f.write_bytes(tiny_model_bytes(metadata={key: value}))
    except Exception:
        return
    try:
        load_model_info(f)
    except QuasarError as e:
        assert "\n" not in str(e)


def test_deeply_nested_json_is_a_quasar_error(tmp_path):
    f = tmp_path / "deep.onnx"
    deep = "[" * 30_000 + "]" * 30_000  # deeper than any JSON parser recurses, within the metadata bound
    f.write_bytes(tiny_model_bytes(metadata={"quasar.heads": deep}))
    with pytest.raises(QuasarError, match="quasar.heads is not valid JSON"):
        load_model_info(f)
    p = tmp_path / "deep.json"
    p.write_bytes(io.BytesIO(b"[" * 100_000 + b"]" * 100_000).getvalue())
    with pytest.raises(PackError, match="not a JSON centroid pack"):
        CentroidPack.load(p)
