"""The native library (native/, C++) repeats a few facts of the Python runtime; this keeps them equal.

Reads the C++ sources as text (nothing is built): the contract's format and version, the required
metadata keys, the image extensions a folder walk picks up, the bomb limit, the spec bounds, the
tiny-image side, the preprocessing policies and resamplers, and the library version (CMake reads
it from pyproject.toml, so only the reading is checked).
"""

from __future__ import annotations

import re
from pathlib import Path

from quasar import constants, contract, limits, nativelib, preprocess
from quasar.io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from quasar.runtime import prepare

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "native" / "src"


def _text(*parts: str) -> str:
    return (ROOT.joinpath(*parts)).read_text(encoding="utf-8")


def _strings(block: str) -> list[str]:
    return re.findall(r'"([^"]*)"', block)


def test_contract_constants_match():
    c = _text("native", "src", "contract.cpp") + _text("native", "src", "contract.hpp")
    assert f'kFormat = "{contract.FORMAT}"' in c
    assert f"kFormatVersion = {contract.FORMAT_VERSION};" in c
    assert f'kInputLayout = "{contract.INPUT_LAYOUT}"' in c
    assert f"kMaxLogitScale = {limits.MAX_LOGIT_SCALE}" in c
    required = re.search(r"kRequired = \{(.*?)\};", c, re.S).group(1)
    assert tuple(_strings(required)) == contract.REQUIRED_KEYS
    assert tuple(_strings(re.search(r"kPrecisions = \{(.*?)\};", c, re.S).group(1))) == contract.PRECISIONS
    assert tuple(_strings(re.search(r"kCombineRules = \{(.*?)\};", c, re.S).group(1))) == contract.COMBINE_RULES


def test_io_and_spec_constants_match():
    walk = _text("native", "cli", "walk.cpp")
    exts = _strings(re.search(r"kExtensions\[\] = \{(.*?)\};", walk, re.S).group(1))
    assert sorted(exts) == sorted(IMAGE_EXTENSIONS)
    assert f"kDefaultMaxPixels = {DEFAULT_MAX_PIXELS};" in (SRC / "decode.hpp").read_text()
    spec = (SRC / "spec.hpp").read_text() + (SRC / "spec.cpp").read_text()
    assert f"kMinSpecSize = {limits.MIN_SPEC_SIZE};" in spec
    assert f"kMaxSpecSize = {limits.MAX_SPEC_SIZE};" in spec
    assert f"kMaxAspectRatio = {preprocess.MAX_ASPECT_RATIO};" in spec
    assert f"kSpecVersion = {preprocess.SPEC_VERSION};" in spec
    assert tuple(_strings(re.search(r"kPolicies = \{(.*?)\};", spec, re.S).group(1))) == preprocess.POLICIES
    assert tuple(_strings(re.search(r"kResamplers = \{(.*?)\};", spec, re.S).group(1))) == preprocess.RESAMPLERS
    assert tuple(_strings(re.search(r"kFits = \{(.*?)\};", spec, re.S).group(1))) == preprocess.FITS
    interps = _strings(re.search(r"kInterpolations = \{(.*?)\};", spec, re.S).group(1))
    assert tuple(interps) == tuple(preprocess.INTERPOLATIONS)
    assert f"kTinySide = {prepare.TINY_SIDE};" in (SRC / "prepare.cpp").read_text()


def _cpp_doubles(text: str, name: str) -> tuple[float, ...]:
    m = re.search(name + r"\s*\{([^}]*)\}", text)
    assert m, f"{name} is not in the header"
    return tuple(float(v) for v in m.group(1).split(","))


def test_normalisation_constants_match():
    """spec.hpp's default mean/std are quasar.constants' CLIP ones, and the Spec default uses them."""
    spec = (SRC / "spec.hpp").read_text()
    assert _cpp_doubles(spec, "kClipMean") == constants.CLIP_MEAN
    assert _cpp_doubles(spec, "kClipStd") == constants.CLIP_STD
    assert "mean = kClipMean;" in spec and "std = kClipStd;" in spec
    default = preprocess.PreprocessSpec()
    assert (default.mean, default.std) == (constants.CLIP_MEAN, constants.CLIP_STD)


def _cpp_number(text: str, name: str) -> float:
    """The value of ``constexpr ... name = N;`` / ``= Nu << S;`` in C++ source text."""
    m = re.search(rf"\b{name} = (\d+(?:\.\d+)?)u?(?: << (\d+))?;", text)
    assert m, f"{name} not found"
    return float(m.group(1)) * 2 ** int(m.group(2) or 0)


def test_input_size_caps_match():
    """The cap on what an input file may hold beyond its image (quasar.io.files.read_file; the native
    read_file in prepare.cpp): the same head size, bytes per pixel and slack in both runtimes."""
    text = (SRC / "prepare.cpp").read_text()
    assert _cpp_number(text, "kInputHeadBytes") == limits.INPUT_HEAD_BYTES
    assert _cpp_number(text, "kMaxBytesPerPixel") == limits.MAX_BYTES_PER_PIXEL
    assert _cpp_number(text, "kInputSlackBytes") == limits.INPUT_SLACK_BYTES


def test_python_binding_matches_the_c_api():
    """quasar.nativelib (ctypes) repeats quasar.h's API version, status codes, options struct and signatures."""
    import ctypes

    h = _text("native", "include", "quasar.h")
    assert int(re.search(r"#define QUASAR_API_VERSION (\d+)", h).group(1)) == nativelib.API_VERSION
    enum = re.search(r"typedef enum quasar_status \{(.*?)\} quasar_status;", h, re.S).group(1)
    codes = {re.sub(r"^QUASAR_(ERR_)?", "", n): int(v) for n, v in re.findall(r"(QUASAR_\w+) = (\d+)", enum)}
    assert codes == {s.name: s.value for s in nativelib.Status}
    ctype = {"uint32_t": ctypes.c_uint32, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64,
             "const char*": ctypes.c_char_p}
    struct = re.search(r"typedef struct quasar_options \{(.*?)\} quasar_options;", h, re.S).group(1)
    fields = [(n, ctype[t.strip()]) for t, n in re.findall(r"^\s*([\w ]+\*?)\s+(\w+);", struct, re.M)]
    assert fields == list(nativelib.Options._fields_)
    decls = {n: a for n, a in re.findall(r"QUASAR_API [^;(]*?\b(quasar_\w+)\(([^)]*)\);", h, re.S)}
    for name, (_, argtypes) in nativelib._SIGNATURES.items():
        assert name in decls, f"{name} is not in quasar.h"
        params = [] if decls[name].strip() in ("", "void") else decls[name].split(",")
        assert len(params) == len(argtypes), f"{name}: {len(params)} parameters in quasar.h, {len(argtypes)} bound"


def test_native_version_comes_from_pyproject():
    cmake = _text("CMakeLists.txt")
    assert 'file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/pyproject.toml"' in cmake
    line = next(ln for ln in _text("pyproject.toml").splitlines() if ln.startswith('version = "'))
    assert re.match(r'^version = "([^"]+)"', line).group(1) == __import__("quasar").__version__
