"""What ``quasar perf`` measures: one model file, in one precision, on one backend.

Everything is resolved and checked before any measurement starts, so a wrong model, precision or
backend is one line (a :class:`~quasar.errors.QuasarError`) and not a failure minutes into a run.

Backends (``--backend``), each mapped onto the runtime's :func:`~quasar.runtime.backends.create_backend`:

=======================  =============================================================================
``onnxruntime``          ONNX Runtime on CPU (the default)
``onnxruntime-cuda``     ONNX Runtime's CUDA execution provider (``onnxruntime-gpu``)
``onnxruntime-tensorrt`` ONNX Runtime's TensorRT execution provider
``tensorrt``             a TensorRT engine file (``quasar export tensorrt``), run by TensorRT itself
``torch``                the fused graph rebuilt in PyTorch (needs the ``export`` extra)
``native``               the project's C++ library, once it is built and registered (see below)
``auto``                 the runtime's own choice (CUDA when present, else CPU)
=======================  =============================================================================

**The native slot.** ``quasar perf`` drives backends only through the runtime's backend registry
(:data:`quasar.runtime.backends.BACKENDS`): a backend there is measured end to end (the runtime's
decode + its inference) and model only, like any other. The native library is not part of this
build; until it registers a backend called ``native`` there, ``--backend native`` is refused with
one line saying so (:func:`native_status`).
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


def native_status() -> str | None:
    """None when the runtime has a ``native`` backend, else why ``--backend native`` cannot run."""
    from quasar.runtime.backends import BACKENDS as RUNTIME_BACKENDS

    if "native" in RUNTIME_BACKENDS:
        return None
    return (f"backend native is not available: the native library (libquasar / quasar-score) is not built or "
            f"not registered with quasar.runtime.backends in this installation (see {NATIVE_DOC})")


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


def resolve_targets(models: list[str], backends: list[str], precisions: list[str] | None) -> list[Target]:
    """Every (model, precision) on every backend; refuses unknown or unavailable backends in one line."""
    names = [backend_name(b) for b in backends]
    if "native" in names and (reason := native_status()):
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
