"""Public entry points document Args/Returns/Raises/Examples, cite the QUASAR paper, and their examples run.

The examples are doctests: the torch-free ones (the shipped default model and pack) run in the fast
loop, the ones that build a torch encoder with the slow tests; ``export_onnx``'s example is marked
``+SKIP`` (minutes on a CPU), its result is what ``tests/test_shipped_model.py`` checks.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

CITATION = "Ilyin et al., 2025"
# (module, name, sections the docstring must have, needs torch to run its examples)
ENTRY_POINTS = [
    ("quasar.runtime.scorer", "Scorer", ("Args:", "Returns:", "Raises:", "Examples:"), False),
    ("quasar.centroids.pack", "CentroidPack", ("Args:", "Raises:", "Examples:"), False),
    ("quasar.encoders.registry", "create_encoder", ("Args:", "Returns:", "Raises:", "Examples:"), True),
    ("quasar.centroids.build", "build_head", ("Args:", "Returns:", "Raises:", "Examples:"), True),
    ("quasar.export.onnx_export", "export_onnx", ("Args:", "Returns:", "Raises:", "Examples:"), True),
]


def _obj(module: str, name: str):
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module,name,sections,torch", ENTRY_POINTS, ids=[e[1] for e in ENTRY_POINTS])
def test_docstring_sections_and_citation(module, name, sections, torch):
    if torch:
        pytest.importorskip("torch")
    doc = _obj(module, name).__doc__ or ""
    missing = [s for s in sections if s not in doc]
    assert not missing, f"{name}'s docstring lacks {missing}"
    assert CITATION in doc and "QUASAR: Quality and Aesthetics Scoring" in doc, f"{name} does not cite the paper"
    assert ">>> " in doc.split("Examples:", 1)[1], f"{name}'s Examples section has no example"


def _run_examples(module: str, name: str) -> None:
    obj = _obj(module, name)
    mod = importlib.import_module(module)
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(obj, name, module=mod, globs=vars(mod).copy())
             if t.examples]
    assert tests, f"{name} has no doctest"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"


@pytest.mark.parametrize("module,name", [(m, n) for m, n, _, torch in ENTRY_POINTS if not torch],
                         ids=[n for _, n, _, torch in ENTRY_POINTS if not torch])
def test_examples_run(module, name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # examples write nothing, and must not depend on the working directory
    _run_examples(module, name)


@pytest.mark.slow
@pytest.mark.parametrize("module,name", [(m, n) for m, n, _, torch in ENTRY_POINTS if torch],
                         ids=[n for _, n, _, torch in ENTRY_POINTS if torch])
def test_torch_examples_run(module, name, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    _run_examples(module, name)
