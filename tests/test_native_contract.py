"""The native library (native/, C++) repeats a few facts of the Python runtime; this keeps them equal.

Reads the C++ sources as text (nothing is built): the contract's format and version, the required
metadata keys, the image extensions a folder walk picks up, the bomb limit, the spec bounds, the
tiny-image side, the preprocessing policies and resamplers, and the library version (CMake reads
it from pyproject.toml, so only the reading is checked).
"""

from __future__ import annotations

import re
from pathlib import Path

from quasar import contract, limits, preprocess
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


def test_native_version_comes_from_pyproject():
    cmake = _text("CMakeLists.txt")
    assert 'file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/pyproject.toml"' in cmake
    line = next(ln for ln in _text("pyproject.toml").splitlines() if ln.startswith('version = "'))
    assert re.match(r'^version = "([^"]+)"', line).group(1) == __import__("quasar").__version__
