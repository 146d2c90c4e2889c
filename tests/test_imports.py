"""Import boundaries: data flows anchors -> pack -> fused graph -> runtime, and no import runs against it.

Static: every ``import`` in ``quasar/`` (module level or lazy) is checked against the layers below.
Dynamic, one fresh interpreter per check (``sys.modules``): importing every module of a layer loads
no quasar module that the layer may not import; scoring an image with the runtime (and building the
CLI parser) imports neither torch, onnx, ray nor any earlier stage.
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
         "quasar.contract", "quasar.model_file")
STAGES = ("quasar.photos", "quasar.encoders", "quasar.centroids", "quasar.export", "quasar.runtime", "quasar.eval",
          "quasar.scale")
# What each part may not import (prefix match).
FORBIDDEN = {
    **{m: STAGES + ("quasar.cli", "quasar.testing") for m in FLOOR},
    "quasar.encoders": ("quasar.centroids", "quasar.export", "quasar.runtime", "quasar.eval", "quasar.photos"),
    "quasar.centroids": ("quasar.export", "quasar.runtime", "quasar.eval"),
    "quasar.export": ("quasar.runtime", "quasar.eval"),
    "quasar.runtime": ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.photos", "quasar.eval",
                       "quasar.testing", "quasar.scale"),
    # Photo-app features on top of the runtime: torch-free like it.
    **{m: ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.photos", "quasar.eval", "quasar.testing")
       for m in ("quasar.cull", "quasar.report")},
    "quasar.photos": ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.runtime", "quasar.eval",
                      "quasar.testing"),
    "quasar.eval": ("quasar.photos", "quasar.encoders", "quasar.centroids", "quasar.export", "quasar.testing"),
    "quasar.testing": STAGES,  # the tiny model and the reference pipeline: the floor only
    # Ray on top of the runtime: scoring as it is, distributed; never the build stages.
    "quasar.scale": ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.photos", "quasar.eval",
                     "quasar.testing"),
    # The native library's ctypes binding: beside the runtime, as torch-free as it.
    "quasar.nativelib": STAGES + ("quasar.cli", "quasar.testing", "torch", "onnx", "onnxruntime"),
    # `quasar perf` measures the runtime as users run it: torch-free, default models via a subprocess.
    "quasar.perf": ("quasar.encoders", "quasar.centroids", "quasar.export", "quasar.photos", "quasar.eval",
                    "quasar.testing", "torch"),
}
# The optional torch backend rebuilds the fused torch module from a graph: it needs the exporter's
# module and the encoders by design (imported lazily, only when that backend is created).
ALLOWED = {("quasar.runtime.backends.torch_backend", "quasar.export.fused"),
           ("quasar.runtime.backends.torch_backend", "quasar.encoders"),
           ("quasar.runtime.cli", "quasar.scale")}  # `quasar score --ray` hands the scoring to Ray, lazily


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
        rules = [v for k, v in FORBIDDEN.items() if _under(mod, k)]
        for imported in _imports(path):
            if any(_under(imported, a) for m, a in ALLOWED if _under(mod, m)):
                continue
            if _under(imported, "quasar_bench") or any(_under(imported, f) for r in rules for f in r):
                bad.append(f"{mod} imports {imported}")
    assert not bad, "\n".join(bad)


def _all_modules() -> list[str]:
    return sorted(_module_name(p) for p in QUASAR.rglob("*.py"))


# Layers checked by importing all their modules in a fresh interpreter; the two that import torch at
# module level (a few seconds each) run with the slow tests, the static scan covers them in the fast loop.
LAYERS = ["floor", "quasar.testing", "quasar.photos", "quasar.centroids", "quasar.runtime", "quasar.nativelib",
          "quasar.eval"]
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
