"""The native library's ctypes binding (quasar.nativelib) and ``quasar perf``'s native runners, where no
built libquasar is needed: where the library is looked for, what is refused (a file that is no library,
another API version, a missing entry point; small stand-in libraries compiled here when a C compiler
is there), and how the runners batch, order, answer failures and free images.

Against the real library: native/tests/perf_native.py (ctest ``perf_native``, after the native build).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from quasar import nativelib
from quasar.errors import QuasarError
from quasar.perf.native import NativeEndToEnd, NativeModelOnly, NativeTarget
from quasar.perf.sut import SUT
from quasar.perf.workload import Workload

CC = shutil.which("cc") or shutil.which("gcc")


# ------------------------------------------------------------------ where the library is looked for


def test_explicit_path_and_env_win_and_never_fall_back(monkeypatch, tmp_path):
    monkeypatch.setattr(nativelib, "DEV_BUILD", tmp_path / "dev" / "libquasar.so")
    lib = tmp_path / "libquasar.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(nativelib.ENV_LIB, str(lib))
    assert nativelib.find_library() == str(lib)
    assert nativelib.find_library(tmp_path / "libquasar.so") == str(lib)
    with pytest.raises(QuasarError, match=r"/nope\.so: native library not found \(the path given\)"):
        nativelib.find_library(tmp_path / "nope.so")
    monkeypatch.setenv(nativelib.ENV_LIB, str(tmp_path / "gone.so"))
    with pytest.raises(QuasarError, match=r"gone\.so: native library not found \(\$QUASAR_NATIVE_LIB\)"):
        nativelib.find_library()


def test_dev_build_then_system_library(monkeypatch, tmp_path):
    monkeypatch.delenv(nativelib.ENV_LIB, raising=False)
    dev = tmp_path / "build" / "native" / "libquasar.so"
    monkeypatch.setattr(nativelib, "DEV_BUILD", dev)
    monkeypatch.setattr(nativelib.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(QuasarError) as e:
        nativelib.find_library()
    assert "not found" in str(e.value) and str(dev) in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(nativelib.ctypes.util, "find_library", lambda name: f"lib{name}.so.1")
    assert nativelib.find_library() == "libquasar.so.1"
    dev.parent.mkdir(parents=True)
    dev.write_bytes(b"")
    assert nativelib.find_library() == str(dev)


def test_a_file_that_is_no_library_is_one_line(tmp_path):
    bad = tmp_path / "libquasar.so"
    bad.write_text("not a shared object")
    with pytest.raises(QuasarError) as e:
        nativelib.load(bad)
    assert str(e.value).startswith(f"{bad}: cannot load the native library") and "\n" not in str(e.value)


def _compile(tmp_path, name: str, source: str) -> str:
    if CC is None:
        pytest.skip("no C compiler to build a stand-in library")
    src, out = tmp_path / f"{name}.c", tmp_path / f"lib{name}.so"
    src.write_text(source)
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(out), str(src)], check=True, capture_output=True)
    return str(out)


def test_other_api_version_and_missing_entry_points_are_refused(tmp_path):
    v2 = _compile(tmp_path, "quasar_v2", "unsigned quasar_api_version(void) { return 2; }\n")
    with pytest.raises(QuasarError, match=r"libquasar_v2\.so: native library API version 2, this quasar speaks "
                                          r"version 1 \(rebuild"):
        nativelib.load(v2)
    v1 = _compile(tmp_path, "quasar_v1", "unsigned quasar_api_version(void) { return 1; }\n")
    with pytest.raises(QuasarError, match=r"libquasar_v1\.so: the native library has no quasar_version"):
        nativelib.load(v1)
    other = _compile(tmp_path, "other", "int something_else(void) { return 0; }\n")
    with pytest.raises(QuasarError, match=r"libother\.so: not the QUASAR native library \(no quasar_api_version\)"):
        nativelib.load(other)


# ------------------------------------------------------------------ the perf runners (a stand-in library)


class FakeImage:
    def __init__(self, label: str) -> None:
        self.label, self.closed = label, False

    def close(self) -> None:
        self.closed = True


class FakeScorer:
    """score_images as the library answers it: one status per image; records the batches it got."""

    def __init__(self, non_finite: set[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.non_finite = non_finite
        self.lock = threading.Lock()

    def score_images(self, images):
        assert not any(im.closed for im in images), "an image was freed before it was scored"
        with self.lock:
            self.batches.append([im.label for im in images])
        st = [nativelib.Status.NON_FINITE if im.label in self.non_finite else nativelib.Status.OK for im in images]
        return None, None, st


class FakeTarget:
    """What the runners use of a NativeTarget: prepare (thread-safe), the graph's batch, the pool, the scorer."""

    runner_note = NativeTarget.runner_note
    refused = NativeTarget.refused
    prepared = NativeTarget.prepared

    def __init__(self, batch_size: int, **scorer) -> None:
        self.batch_size, self.workers = batch_size, 3
        self.pool = ThreadPoolExecutor(self.workers)
        self.scorer = FakeScorer(**scorer)
        self.made: list[FakeImage] = []
        self._images = {}

    def prepare(self, data: bytes, label: str):
        if data == b"bad":
            raise QuasarError(f"{label}: not an image (libquasar: image error)")
        im = FakeImage(label)
        self.made.append(im)
        return im


def _workload(bad=()) -> Workload:
    labels = [f"img{i}.jpg" for i in range(7)]
    return Workload("test", labels, [b"bad" if i in bad else b"ok" for i in range(7)])


def test_end_to_end_batches_in_order_answers_failures_and_frees_every_image():
    t = FakeTarget(batch_size=2)
    runner = NativeEndToEnd(t, _workload(bad={3}), batch=4)
    assert runner.batch == 2 and "batch 4 ran as batches of 2" in runner.note
    with SUT(runner) as sut:
        sut.run_direct([0, 1, 2, 3, 4, 5, 6, 0, 1])
    got = [label for b in t.scorer.batches for label in b]
    assert got == [f"img{i}.jpg" for i in (0, 1, 2, 4, 5, 6, 0, 1)]  # input order, the bad one left out
    assert all(len(b) <= 2 for b in t.scorer.batches)
    assert sut.failed == 1 and sut.first_error.startswith("img3.jpg: not an image")
    assert len(t.made) == 8 and all(im.closed for im in t.made)
    t.pool.shutdown()


def test_end_to_end_counts_non_finite_and_pads_note():
    t = FakeTarget(batch_size=4, non_finite={"img2.jpg"})
    runner = NativeEndToEnd(t, _workload(), batch=1)
    assert runner.batch == 1 and "padded each batch of 1 to 4" in runner.note
    with SUT(runner) as sut:
        sut.run_direct([0, 1, 2, 3])
    assert t.scorer.batches == [["img0.jpg"], ["img1.jpg"], ["img2.jpg"], ["img3.jpg"]]
    assert sut.failed == 1 and "non-finite" in sut.first_error
    t.pool.shutdown()


def test_model_only_uses_images_prepared_once_before_the_test():
    t = FakeTarget(batch_size=3)
    wl = _workload(bad={5})
    refused = t.refused(wl)
    assert list(refused) == ["img5.jpg"] and "not an image" in refused["img5.jpg"]
    wl = wl.without({k: f"{v} [backend native]" for k, v in refused.items()})
    assert len(wl) == 6 and wl.skipped[-1].endswith("[backend native]")
    runner = NativeModelOnly(t, wl, batch=8)
    made = len(t.made)
    assert made == 6 and runner.batch == 3
    with SUT(runner) as sut:
        sut.run_direct([0, 1, 2, 3, 4, 5, 0])
    assert len(t.made) == made  # nothing prepared while measuring
    assert t.scorer.batches == [["img0.jpg", "img1.jpg", "img2.jpg"], ["img3.jpg", "img4.jpg", "img6.jpg"],
                                ["img0.jpg"]]
    assert sut.failed == 0 and not any(im.closed for im in t.made)
    t.pool.shutdown()


def test_a_workload_with_nothing_left_is_one_line():
    wl = Workload("folder x", ["a.gif"], [b"GIF89a"])
    with pytest.raises(QuasarError, match=r"folder x: no image left that every backend can score \(1 refused; "
                                          r"first: a.gif: no GIF\)"):
        wl.without({"a.gif": "a.gif: no GIF"})
