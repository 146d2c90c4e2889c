"""Import boundaries: data flows floor -> stages -> features -> app, and no import runs against it.

The flow, bottom to top (each layer may import the layers below it, never one above):

* the floor (errors, limits, paths, preprocess, io, contract, constants, machine...): no stage;
* the stages, in the order data flows: photos, encoders -> centroids (anchors -> pack) -> export (the fused
  graph) -> runtime -> eval; ``quasar.testing`` sits on the floor;
* the features built on the runtime: report, cull, perf, scale, nativelib, client (of ``quasar serve``); none imports a build
  stage, and none imports another feature except as listed in ``FEATURE_USES``;
* the application layer: ``quasar.app`` (the commands that compose the features: ``score`` with
  ``--report``/``--ray``, cull, report, serve, perf, list, bench), ``quasar.cli`` and ``__main__``.

Static: every ``import`` in ``quasar/`` (module level or lazy) is checked against the layers below, and
every module must belong to a layer. Dynamic, one fresh interpreter per check (``sys.modules``): importing
every module of a layer loads no quasar module that the layer may not import; scoring an image with the
runtime (and building the CLI parser) imports neither torch, onnx, ray nor any earlier stage.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

QUASAR = Path(__file__).resolve().parents[1] / "quasar"

# Shared floor: below every stage, imports no stage.
FLOOR = ("quasar.errors", "quasar.limits", "quasar.paths", "quasar.preprocess", "quasar.io", "quasar.onnx_meta",
         "quasar.contract", "quasar.integrity", "quasar.sidecars", "quasar.shipped", "quasar.model_file", "quasar.constants", "quasar.argcheck", "quasar.lifecycle",
         "quasar.helpfmt", "quasar.extras", "quasar.machine")  # machine: what this machine is (docs: floor)
STAGES = ("quasar.photos", "quasar.encoders", "quasar.centroids", "quasar.export", "quasar.runtime", "quasar.eval")
BUILD = ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.photos", "quasar.eval")  # not the runtime
# Features on top of the runtime (nativelib: the native library's ctypes binding, beside the runtime).
FEATURES = ("quasar.nativelib", "quasar.report", "quasar.cull", "quasar.perf", "quasar.scale", "quasar.client")
FEATURE_USES = {"quasar.perf": ("quasar.nativelib",)}  # `quasar perf --backend native`
APP = ("quasar.app", "quasar.cli", "quasar.__main__")
ABOVE_STAGES = FEATURES + APP


def _other_features(feature: str) -> tuple[str, ...]:
    return tuple(f for f in FEATURES if f != feature and f not in FEATURE_USES.get(feature, ()))


# What each part may not import (prefix match).
FORBIDDEN = {
    **{m: STAGES + ABOVE_STAGES + ("quasar.testing",) for m in FLOOR},
    "quasar.encoders": ("quasar.centroids", "quasar.export", "quasar.runtime", "quasar.eval", "quasar.photos",
                        *ABOVE_STAGES),
    "quasar.centroids": ("quasar.export", "quasar.runtime", "quasar.eval", *ABOVE_STAGES),
    "quasar.export": ("quasar.runtime", "quasar.eval", *ABOVE_STAGES),
    "quasar.runtime": ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.photos", "quasar.eval",
                       "quasar.testing", *ABOVE_STAGES),
    "quasar.photos": ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.runtime", "quasar.eval",
                      "quasar.testing", *ABOVE_STAGES),
    "quasar.eval": ("quasar.photos", "quasar.encoders", "quasar.centroids", "quasar.export", "quasar.testing",
                    *ABOVE_STAGES),
    "quasar.testing": STAGES + ABOVE_STAGES,  # the tiny model and the reference pipeline: the floor only
    # Features: scoring as the runtime does it (torch-free like it), never the build stages, never the app,
    # and no other feature unless FEATURE_USES says so (a composition of features is an app command).
    **{f: BUILD + ("quasar.testing",) + APP + _other_features(f) for f in FEATURES},
    "quasar.nativelib": STAGES + ("quasar.testing", "torch", "onnx", "onnxruntime") + APP + _other_features(
        "quasar.nativelib"),  # ctypes binding: beside the runtime, as torch-free as it
    # `quasar perf` measures the runtime as users run it: torch-free, default models via a subprocess.
    "quasar.perf": BUILD + ("quasar.testing", "torch") + APP + _other_features("quasar.perf"),
    **{m: ("quasar.testing",) for m in APP},
}
# The optional torch backend rebuilds the fused torch module from a graph: it needs the exporter's
# module and the encoders by design (imported lazily, only when that backend is created).
ALLOWED = {("quasar.runtime.backends.torch_backend", "quasar.export.fused"),
           ("quasar.runtime.backends.torch_backend", "quasar.encoders")}


def _layer(mod: str) -> str | None:
    """The FORBIDDEN key a module belongs to (the longest prefix); ``quasar`` itself is on the floor."""
    if mod == "quasar":
        return "quasar.errors"
    keys = [k for k in FORBIDDEN if _under(mod, k)]
    return max(keys, key=len) if keys else None


def _module_name(path: Path) -> str:
    parts = path.relative_to(QUASAR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_no_import_runs_against_the_flow():
    bad = []
    for path in sorted(QUASAR.rglob("*.py")):
        mod = _module_name(path)
        rules = FORBIDDEN.get(_layer(mod) or "", ())
        for imported in _imports(path):
            if any(_under(imported, a) for m, a in ALLOWED if _under(mod, m)):
                continue
            if _under(imported, "quasar_bench") or any(_under(imported, f) for f in rules):
                bad.append(f"{mod} imports {imported}")
    assert not bad, "\n".join(bad)


def test_no_module_imports_a_private_name_of_another():
    """What one module shares with another is public (``quiet_opencv``, not ``_quiet_opencv``)."""
    bad = []
    for path in sorted(QUASAR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quasar"):
                bad += [f"{_module_name(path)} imports {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_every_module_has_a_layer():
    """A new top-level module or package must be placed in the flow before the test above can check it."""
    lost = [m for m in _all_modules() if _layer(m) is None]
    assert not lost, f"not in any layer of tests/test_imports.py: {lost}"


def _all_modules() -> list[str]:
    return sorted(_module_name(p) for p in QUASAR.rglob("*.py"))


# Layers checked by importing all their modules in a fresh interpreter; the two that import torch at
# module level (a few seconds each) run with the slow tests, the static scan covers them in the fast loop.
LAYERS = ["floor", "quasar.testing", "quasar.photos", "quasar.centroids", "quasar.runtime", "quasar.nativelib",
          "quasar.eval", "quasar.report", "quasar.cull", "quasar.client"]
TORCH_LAYERS = ["quasar.encoders", "quasar.export"]


@pytest.mark.parametrize("layer", [*LAYERS, *[pytest.param(x, marks=pytest.mark.slow) for x in TORCH_LAYERS]])
def test_importing_a_layer_loads_nothing_it_may_not_import(layer):
    prefixes = FLOOR if layer == "floor" else (layer,)
    modules = [m for m in _all_modules() if any(_under(m, x) for x in prefixes)]
    if layer in TORCH_LAYERS:
        pytest.importorskip("torch")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "print('\\n'.join(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=QUASAR.parent, timeout=300)
    assert r.returncode == 0, r.stderr
    forbidden = {f for k, v in FORBIDDEN.items() if any(_under(k, x) or _under(x, k) for x in prefixes) for f in v}
    allowed = {a for m, a in ALLOWED if any(_under(m, x) for x in prefixes)}
    bad = [x for x in r.stdout.split() if any(_under(x, f) for f in forbidden) and not any(_under(x, a) for a in allowed)]
    assert not bad, f"importing every module of {layer} loaded {bad}"


def test_runtime_import_set(tmp_path):
    pytest.importorskip("onnx")  # only to write the tiny model below; the child never imports it
    from quasar.testing import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.onnx")
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from quasar.runtime import Scorer\n"
        f"with Scorer({str(model)!r}) as s:\n"
        "    assert s.score(np.zeros((64, 80, 3), np.uint8))[0].ok\n"
        "def found(bad):\n"
        "    return sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in bad))\n"
        "print(found(('torch', 'onnx', 'quasar.export', 'quasar.encoders', 'quasar.centroids', 'quasar.photos',\n"
        "             'quasar.eval', 'quasar.testing', 'quasar_bench', 'tensorrt', 'ray', 'scipy', 'quasar.scale')))\n"
        "from quasar.cli import build_parser\n"
        "build_parser()  # every stage's parser: still no torch, onnx or benchmark code\n"
        "print(found(('torch', 'onnx', 'quasar_bench', 'tensorrt', 'ray', 'starlette')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=QUASAR.parent, timeout=120)
    assert r.returncode == 0, r.stderr
    runtime, parser = r.stdout.strip().splitlines()
    assert runtime == "[]", f"scoring with the runtime imported {runtime}"
    assert parser == "[]", f"building the CLI parser imported {parser}"
