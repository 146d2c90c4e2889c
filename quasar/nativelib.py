"""The native library (libquasar, ``native/include/quasar.h``) from Python, through ctypes.

A thin binding of the C API, version :data:`API_VERSION`: what an app embedding libquasar calls,
reachable from Python (``quasar perf --backend native`` measures it). No torch, onnx or ONNX Runtime:
ctypes and numpy only.

    from quasar.nativelib import NativeScorer
    with NativeScorer("model-static.onnx") as s:          # a static graph for the OpenCV backend
        scores, margins = s.score_buffer(open("photo.jpg", "rb").read(), label="photo.jpg")
        images = [s.prepare_buffer(b, label=name) for name, b in files]   # on any thread
        scores, margins, statuses = s.score_images(images)               # [N, K] float32, N statuses
        for im in images:
            im.close()

The library is found by :func:`find_library`: an explicit path, else ``$QUASAR_NATIVE_LIB``, else
``build/native/libquasar.so`` beside this source tree (a dev checkout), else the system's
``libquasar`` (``ctypes.util.find_library``). A library of another API version is refused.
Every failure is a one-line :class:`~quasar.errors.QuasarError`: the file it concerns, the library's
message (``quasar_last_error``) and its status name (``quasar_status_name``).

Calls release the GIL (``ctypes.CDLL``), so ``prepare_buffer`` on several Python threads runs in
parallel, as the C API allows (preparing is thread-safe; inference is serialised per scorer).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import os
import threading
from pathlib import Path

import numpy as np

from quasar import argcheck
from quasar.errors import QuasarError, one_line
from quasar.lifecycle import Closeable

API_VERSION = 1  # QUASAR_API_VERSION in quasar.h (tests/test_native_contract.py keeps them equal)
ENV_LIB = "QUASAR_NATIVE_LIB"
DEV_BUILD = Path(__file__).resolve().parent.parent / "build" / "native" / "libquasar.so"


class Status(enum.IntEnum):
    """``quasar_status`` of quasar.h (same names without ``QUASAR_`` / ``QUASAR_ERR_``, same values)."""

    OK = 0
    INVALID_ARGUMENT = 1
    MODEL = 2
    BACKEND = 3
    IMAGE = 4
    NON_FINITE = 5
    OUT_OF_MEMORY = 6
    INTERNAL = 7


class Options(ctypes.Structure):
    """``quasar_options`` (field for field; initialise it with the library's ``quasar_options_init``)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_char_p),
        ("threads", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("max_pixels", ctypes.c_int64),
        ("reduced_decode", ctypes.c_int32),
        ("max_file_bytes", ctypes.c_int64),
    ]


_P = ctypes.c_void_p
_F = ctypes.POINTER(ctypes.c_float)
_SIGNATURES = {  # name -> (restype, argtypes)
    "quasar_api_version": (ctypes.c_uint32, []),
    "quasar_version": (ctypes.c_char_p, []),
    "quasar_backends": (ctypes.c_char_p, []),
    "quasar_last_error": (ctypes.c_char_p, []),
    "quasar_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "quasar_options_init": (None, [ctypes.POINTER(Options)]),
    "quasar_scorer_create": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(Options), ctypes.POINTER(_P)]),
    "quasar_scorer_destroy": (None, [_P]),
    "quasar_num_heads": (ctypes.c_size_t, [_P]),
    "quasar_head_name": (ctypes.c_char_p, [_P, ctypes.c_size_t]),
    "quasar_head_is_summary": (ctypes.c_int, [_P, ctypes.c_size_t]),
    "quasar_metadata_count": (ctypes.c_size_t, [_P]),
    "quasar_metadata_key": (ctypes.c_char_p, [_P, ctypes.c_size_t]),
    "quasar_metadata_value": (ctypes.c_char_p, [_P, ctypes.c_char_p]),
    "quasar_backend_name": (ctypes.c_char_p, [_P]),
    "quasar_batch_size": (ctypes.c_int, [_P]),
    "quasar_score_buffer": (ctypes.c_int, [_P, _P, ctypes.c_size_t, _F, _F, ctypes.c_size_t]),
    "quasar_prepare_buffer": (ctypes.c_int, [_P, _P, ctypes.c_size_t, ctypes.POINTER(_P)]),
    "quasar_image_warning": (ctypes.c_char_p, [_P]),
    "quasar_image_destroy": (None, [_P]),
    "quasar_score_images": (ctypes.c_int, [_P, ctypes.POINTER(_P), ctypes.c_size_t, _F, _F, ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_int)]),
}


def _text(b: bytes | None) -> str:
    return "" if b is None else b.decode("utf-8", "replace")


def find_library(path: str | os.PathLike | None = None) -> str:
    """The library file to load: ``path``, else ``$QUASAR_NATIVE_LIB``, else the dev checkout's build,
    else the system's; QuasarError (one line) when none is there."""
    if path is None:
        path = os.environ.get(ENV_LIB) or None
        if path is None:
            if DEV_BUILD.is_file():
                return str(DEV_BUILD)
            found = ctypes.util.find_library("quasar")
            if found:
                return found
            raise QuasarError(f"the native library (libquasar) was not found: not built at {DEV_BUILD} "
                              f"(cmake -S . -B build/native && cmake --build build/native), and neither "
                              f"${ENV_LIB} nor the system's library path names one")
        where = f"${ENV_LIB}"
    else:
        where = "the path given"
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise QuasarError(f"{path}: native library not found ({where})")
    return path


class Library:
    """A loaded libquasar of API version :data:`API_VERSION`; use :func:`load`."""

    def __init__(self, path: str) -> None:
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise QuasarError(one_line(f"{path}: cannot load the native library ({e})")) from None
        try:
            lib.quasar_api_version.restype = ctypes.c_uint32
            lib.quasar_api_version.argtypes = []
        except AttributeError:
            raise QuasarError(f"{path}: not the QUASAR native library (no quasar_api_version)") from None
        found = int(lib.quasar_api_version())
        if found != API_VERSION:
            raise QuasarError(f"{path}: native library API version {found}, this quasar speaks version {API_VERSION} "
                              "(rebuild the library from this source tree)")
        for name, (res, args) in _SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise QuasarError(f"{path}: the native library has no {name} (API version {found})") from None
            fn.restype, fn.argtypes = res, args
        self.path, self._lib = path, lib

    @property
    def version(self) -> str:
        return _text(self._lib.quasar_version())

    @property
    def backends(self) -> str:
        return _text(self._lib.quasar_backends())

    def status_name(self, status: int) -> str:
        return _text(self._lib.quasar_status_name(int(status)))

    def error(self, status: int, file: str | None = None) -> QuasarError:
        """The one-line error for a failed call on this thread: the file, the library's message, the status."""
        msg = _text(self._lib.quasar_last_error()) or "no message"
        prefix = f"{file}: " if file and file not in msg else ""
        return QuasarError(one_line(f"{prefix}{msg} (libquasar: {self.status_name(status)})"))

    def check(self, status: int, file: str | None = None) -> None:
        if status != Status.OK:
            raise self.error(status, file)

    def __repr__(self) -> str:
        return f"Library({self.path!r}, version={self.version!r}, backends={self.backends!r})"


_loaded: dict[str, Library] = {}
_load_lock = threading.Lock()


def load(path: str | os.PathLike | None = None) -> Library:
    """The library (:func:`find_library`), loaded once per file."""
    found = find_library(path)
    key = os.path.realpath(found) if os.path.exists(found) else found
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = Library(found)
        return _loaded[key]


class Image(Closeable):
    """A prepared (decoded, preprocessed) image, ``quasar_image``: pass it to :meth:`NativeScorer.score_images`,
    then :meth:`close` it (garbage collection frees it too)."""

    def __init__(self, lib: Library, handle: int, label: str | None) -> None:
        self._lib, self._handle, self.label = lib, handle, label

    @property
    def handle(self) -> int:
        if not self._handle:
            raise QuasarError(f"{self.label or 'image'}: used after close()")
        return self._handle

    @property
    def warning(self) -> str | None:
        w = self._lib._lib.quasar_image_warning(self.handle)
        return None if w is None else _text(w)

    def close(self) -> None:
        h, self._handle = getattr(self, "_handle", None), None
        if h:
            self._lib._lib.quasar_image_destroy(h)


def _fptr(a: np.ndarray):
    return a.ctypes.data_as(_F)


NATIVE_BACKENDS = ("auto", "opencv", "tensorrt", "onnxruntime")  # quasar.h quasar_options.backend


def check_native_scorer_args(*, backend=None, threads=0) -> None:
    """QuasarError (one line naming the argument) for a :class:`NativeScorer` argument the C API cannot
    take, before the library is loaded."""
    argcheck.one_of("NativeScorer", "backend", backend, NATIVE_BACKENDS, allow_none=True)
    argcheck.int_at_least("NativeScorer", "threads", threads, 0, default="the backend's default, as 0")


class NativeScorer(Closeable):
    """``quasar_scorer``: one model loaded by the native library.

    Args:
        model: the model file (for the OpenCV backend a static graph: ``quasar export onnx --static HxW``).
        backend: ``auto`` (None), ``opencv``, ``tensorrt``, ``onnxruntime`` (those built in: :attr:`Library.backends`).
        threads: inference threads (0: the backend's default).
        library: a :class:`Library`, or the library's path (None: :func:`find_library`).
    """

    def __init__(self, model: str | os.PathLike, *, backend: str | None = None, threads: int = 0,
                 library: Library | str | os.PathLike | None = None) -> None:
        check_native_scorer_args(backend=backend, threads=threads)
        self.lib = library if isinstance(library, Library) else load(library)
        self.model_path = os.fspath(model)
        opts = Options()
        self.lib._lib.quasar_options_init(ctypes.byref(opts))
        opts.backend = backend.encode() if backend else None
        opts.threads = int(threads or 0)
        handle = _P()
        st = self.lib._lib.quasar_scorer_create(os.fsencode(self.model_path), ctypes.byref(opts), ctypes.byref(handle))
        self.lib.check(st, self.model_path)
        self._handle = handle.value
        f = self.lib._lib
        k = int(f.quasar_num_heads(self._handle))
        self.heads: tuple[str, ...] = tuple(_text(f.quasar_head_name(self._handle, i)) for i in range(k))
        self.summary: tuple[bool, ...] = tuple(bool(f.quasar_head_is_summary(self._handle, i)) for i in range(k))
        self.batch_size: int = int(f.quasar_batch_size(self._handle))
        self.backend_name: str = _text(f.quasar_backend_name(self._handle))
        keys = [_text(f.quasar_metadata_key(self._handle, i)) for i in range(int(f.quasar_metadata_count(self._handle)))]
        self.metadata: dict[str, str] = {k: _text(f.quasar_metadata_value(self._handle, k.encode())) for k in keys}

    @property
    def handle(self) -> int:
        if not self._handle:
            raise QuasarError(f"{self.model_path}: native scorer used after close()")
        return self._handle

    def prepare_buffer(self, data: bytes, label: str | None = None) -> Image:
        """Decode and preprocess encoded image bytes (thread-safe); QuasarError naming ``label`` if it cannot be."""
        out = _P()
        st = self.lib._lib.quasar_prepare_buffer(self.handle, data, len(data), ctypes.byref(out))
        self.lib.check(st, label)
        return Image(self.lib, out.value, label)

    def score_images(self, images: list[Image]) -> tuple[np.ndarray, np.ndarray, list[Status]]:
        """Score prepared images: scores and margins float32 ``[N, K]``, and a status per image
        (``Status.OK`` or ``Status.NON_FINITE``). QuasarError when the batch could not run at all."""
        n, k = len(images), len(self.heads)
        scores = np.empty((n, k), np.float32)
        margins = np.empty((n, k), np.float32)
        statuses = (ctypes.c_int * max(n, 1))()
        handles = (_P * max(n, 1))(*[im.handle for im in images])
        st = self.lib._lib.quasar_score_images(self.handle, handles, n, _fptr(scores), _fptr(margins), n * k, statuses)
        self.lib.check(st, self.model_path)
        return scores, margins, [Status(statuses[i]) for i in range(n)]

    def score_buffer(self, data: bytes, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and margins (float32 ``[K]``) of one encoded image; QuasarError naming ``label`` if it fails."""
        k = len(self.heads)
        scores, margins = np.empty(k, np.float32), np.empty(k, np.float32)
        st = self.lib._lib.quasar_score_buffer(self.handle, data, len(data), _fptr(scores), _fptr(margins), k)
        self.lib.check(st, label)
        return scores, margins

    def close(self) -> None:
        h, self._handle = getattr(self, "_handle", None), None
        if h:
            self.lib._lib.quasar_scorer_destroy(h)

    def __repr__(self) -> str:
        return (f"NativeScorer({self.model_path!r}, backend={self.backend_name!r}, batch_size={self.batch_size}, "
                f"library={self.lib.path!r})")
