"""The embedding output: found in graphs that lack it (the shipped model stays as it is), exported on
request, returned by the runtime from the same forward pass as the scores."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from quasar.contract import EMBEDDING_OUTPUT
from quasar.runtime.embedding import (
    NoEmbedding,
    embedding_session_source,
    graph_outputs,
    head_input,
    with_output,
)
from quasar.shipped import shipped_model_path

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from quasar.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def _images(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (64 + 16 * i, 80, 3), dtype=np.uint8) for i in range(n)]


def test_head_input_is_the_unit_embedding_of_the_tiny_graph(tiny):
    data = open(tiny, "rb").read()
    assert head_input(data) == "u"  # Gemm(u, quasar.centroids)
    patched = with_output(data, "u")
    assert graph_outputs(patched) == ["scores", "margins", "u"]
    m = onnx.load_from_string(patched)
    onnx.checker.check_model(m)
    assert {p.key: p.value for p in m.metadata_props} == {p.key: p.value for p in onnx.load(tiny).metadata_props}


def test_scorer_embeddings_same_pass_same_scores(tiny):
    from quasar.runtime import Scorer

    imgs = _images()
    with Scorer(tiny, workers=1) as plain, Scorer(tiny, workers=1, embeddings=True) as emb:
        a, b = plain.score(imgs), emb.score(imgs)
    for ra, rb in zip(a, b, strict=True):
        assert ra.embedding is None and rb.embedding is not None
        assert ra.scores == rb.scores
        assert rb.embedding.dtype == np.float32 and abs(float(np.linalg.norm(rb.embedding)) - 1) < 1e-5
    assert not np.allclose(b[0].embedding, b[1].embedding)


def test_shipped_model_untouched_and_gives_embeddings():
    from quasar.runtime import Scorer

    path = shipped_model_path()
    before = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert EMBEDDING_OUTPUT not in graph_outputs(open(path, "rb").read())
    source, name = embedding_session_source(path)
    assert isinstance(source, bytes) and name != EMBEDDING_OUTPUT
    with Scorer(path, workers=1, embeddings=True) as s:
        rec = s.score(_images(1))[0]
    assert rec.ok and rec.embedding.shape == (4198,)
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == before


def test_graph_without_a_head_is_refused(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(g), path)
    with pytest.raises(NoEmbedding, match="plain.onnx: no embedding output"):
        embedding_session_source(str(path))


def test_embeddings_need_onnx_runtime(tiny):
    from quasar.errors import QuasarError
    from quasar.runtime.backends import create_backend
    from quasar.runtime.model import load_model_info

    pytest.importorskip("torch")
    with pytest.raises(QuasarError, match="onnxruntime backend"):
        create_backend(load_model_info(tiny), "torch", "cpu", embeddings=True)


def test_exported_embedding_output(tiny, tmp_path):
    """--embedding at export: a named output, read as it is by the runtime (here added to the tiny graph
    with the exporter's own function, which needs no torch)."""
    import shutil

    from quasar.export.embedding import add_embedding_output
    from quasar.export.metadata import seal_model
    from quasar.runtime import Scorer

    path = str(tmp_path / "with_embedding.onnx")
    shutil.copy(tiny, path)
    add_embedding_output(path)
    seal_model(path)  # the exporter's last step, after --embedding
    assert graph_outputs(open(path, "rb").read()) == ["scores", "margins", EMBEDDING_OUTPUT]
    assert embedding_session_source(path) == (path, EMBEDDING_OUTPUT)
    with Scorer(path, workers=1, embeddings=True) as a, Scorer(tiny, workers=1, embeddings=True) as b:
        ra, rb = a.score(_images(2)), b.score(_images(2))
    for x, y in zip(ra, rb, strict=True):
        assert x.scores == y.scores
        np.testing.assert_array_equal(x.embedding, y.embedding)


def test_score_cli_writes_embeddings(tiny, tmp_path):
    import json

    from PIL import Image

    from quasar.cli import main

    for i, img in enumerate(_images(2)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "s.jsonl"
    assert main(["score", str(tmp_path), "--model", tiny, "-o", str(out), "--embeddings", "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["embedding"] is None for r in rows] == [False, False, True]
    assert abs(np.linalg.norm(rows[0]["embedding"]) - 1) < 1e-4
    csv_out = tmp_path / "s.csv"
    assert main(["score", str(tmp_path), "--model", tiny, "-o", str(csv_out), "--embeddings", "-q"]) == 0
    arr = np.load(str(csv_out) + ".embeddings.npy")
    assert arr.shape[0] == 3 and np.isnan(arr[2]).all() and np.allclose(arr[0], rows[0]["embedding"], atol=1e-5)
    assert main(["score", str(tmp_path), "--model", tiny, "-o", str(csv_out), "--embeddings", "--resume", "-q"]) == 2
    assert os.path.exists(csv_out)
