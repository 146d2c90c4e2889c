"""What ``quasar perf`` measures: one model file, in one precision, on one backend.

Everything is resolved and checked before any measurement starts, so a wrong model, precision or
backend is one line (a :class:`~quasar.errors.QuasarError`) and not a failure minutes into a run.

Backends (``--backend``), each mapped onto the runtime's :func:`~quasar.runtime.backends.create_backend`
(``native`` excepted: the C++ library runs it all):

=======================  =============================================================================
``onnxruntime``          ONNX Runtime on CPU (the default)
``onnxruntime-cuda``     ONNX Runtime's CUDA execution provider (``onnxruntime-gpu``)
``onnxruntime-tensorrt`` ONNX Runtime's TensorRT execution provider
``tensorrt``             a TensorRT engine file (``quasar export tensorrt``), run by TensorRT itself
``torch``                the fused graph rebuilt in PyTorch (needs the ``export`` extra)
``native``               the project's C++ library, libquasar (see below)
``auto``                 the runtime's own choice (CUDA when present, else CPU)
=======================  =============================================================================

**Native.** ``--backend native`` runs the native library (``native/``, C API ``quasar.h``) through
its ctypes binding :mod:`quasar.nativelib`, not the runtime's backend registry: end to end is the
library's own pipeline (``quasar_prepare_buffer`` on worker threads, ``quasar_score_images`` in
batches), model only its ``quasar_score_images`` on images it prepared before the test
(:mod:`quasar.perf.native`). The library is ``--native-lib PATH``, else ``$QUASAR_NATIVE_LIB``, else
``build/native/libquasar.so`` of this source tree, else the system's; :func:`native_status` says in
one line why it cannot run (not found, not loadable, another API version). Its OpenCV backend loads
static graphs only (``quasar export onnx --static HxW``): another model is refused, naming the file and
the library's reason, when the targets are loaded, before any measurement.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from quasar.errors import QuasarError

BACKENDS = {  # perf name -> (runtime backend, device)
    "onnxruntime": ("onnxruntime", "cpu"),
    "onnxruntime-cuda": ("onnxruntime", "cuda"),
    "onnxruntime-tensorrt": ("onnxruntime", "tensorrt"),
    "tensorrt": ("tensorrt", "cuda"),
    "torch": ("torch", None),
    "native": ("native", None),
    "auto": ("auto", None),
}
ALIASES = {"ort": "onnxruntime", "ort-cpu": "onnxruntime", "ort-cuda": "onnxruntime-cuda",
           "ort-tensorrt": "onnxruntime-tensorrt", "trt": "tensorrt"}
DEFAULT_MODEL = "default"
NATIVE_DOC = "docs/perf.md#the-native-backend"


@dataclass(frozen=True)
class Target:
    """One model file in one precision on one backend."""

    model: str  # as the user named it ("default" or a path)
    name: str  # short: "default-fp32", the file's name (its path if two files share a name)
    path: str
    precision: str
    backend: str  # a key of BACKENDS
    runtime_backend: str
    device: str | None

    @property
    def label(self) -> str:
        return f"{self.name} @ {self.backend}"


def backend_name(name: str) -> str:
    """A ``--backend`` value, aliases resolved; QuasarError for an unknown one."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in BACKENDS:
        raise QuasarError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return key


def native_status(library: str | None = None) -> str | None:
    """None when the native library (``library``, or where :func:`quasar.nativelib.find_library` looks)
    loads and speaks this API version, else why ``--backend native`` cannot run (one line)."""
    from quasar.nativelib import load

    try:
        load(library)
    except QuasarError as e:
        return f"backend native cannot run: {e} (see {NATIVE_DOC})"
    return None


def default_model_for(precision: str) -> str:
    """The default model in ``precision``: the shipped fp32 file, or ``python -m quasar.export.default``
    (cached export; a first int8/fp16 export needs the ``export`` extra) run in a subprocess, so this
    process never imports torch."""
    from quasar.runtime.model import default_model_path, run_forwarding_notes

    if precision == "fp32" and not os.environ.get("QUASAR_MODEL"):
        return default_model_path()
    cmd = [sys.executable, "-m", "quasar.export.default", "--precision", precision]
    r = run_forwarding_notes(cmd)
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if r.returncode != 0 or not lines or not os.path.exists(lines[-1]):
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise QuasarError(f"no default {precision} model: `python -m quasar.export.default --precision {precision}` "
                          f"failed ({tail}); export one with `quasar export onnx --precision {precision}` and pass it "
                          "with --model FILE")
    return lines[-1]


def resolve_models(models: list[str], precisions: list[str] | None) -> list[tuple[str, str, str]]:
    """(name as given, path, precision) for every model; ``default`` expands to each precision asked
    (fp32 when none is); a file must be in one of ``precisions`` when they are given."""
    from quasar.contract import PRECISIONS
    from quasar.runtime.model import load_model_info

    for p in precisions or ():
        if p not in PRECISIONS:
            raise QuasarError(f"unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}")
    out = []
    for m in models:
        if m == DEFAULT_MODEL:
            for p in precisions or ["fp32"]:
                out.append((m, default_model_for(p), p))
            continue
        info = load_model_info(m)  # QuasarError names the file and the reason
        prec = info.precision or "fp32"
        if precisions and prec not in precisions:
            raise QuasarError(f"{m}: this model is {prec}, but --precision asks for {', '.join(precisions)} "
                              f"(export that precision with `quasar export onnx --precision ...`)")
        out.append((m, m, prec))
    return out


def resolve_targets(models: list[str], backends: list[str], precisions: list[str] | None,
                    native_lib: str | None = None) -> list[Target]:
    """Every (model, precision) on every backend; refuses unknown or unavailable backends in one line
    (``native_lib``: the native library's path, for ``native``)."""
    names = [backend_name(b) for b in backends]
    if "native" in names and (reason := native_status(native_lib)):
        raise QuasarError(reason)
    resolved = list(dict.fromkeys(resolve_models(models, precisions)))
    bases = [os.path.basename(path) for _, path, _ in resolved]
    out = []
    for (model, path, prec), base in zip(resolved, bases, strict=True):
        if model == DEFAULT_MODEL:
            name = f"default-{prec}"
        else:
            name = base if bases.count(base) == 1 else path
        for b in dict.fromkeys(names):
            rb, dev = BACKENDS[b]
            out.append(Target(model, name, path, prec, b, rb, dev))
    return out
