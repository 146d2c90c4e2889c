"""The exporter end to end in seconds, for the fast loop: timm's tiny ``test_efficientnet`` (random
weights, 256-d) with a hand-made two-head pack, exported to fp32 and int8 and loaded by the runtime.

``tests/test_export.py`` (slow) does the same with real encoders and packs and checks accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("timm")

from quasar.centroids.pack import CentroidPack, Head  # noqa: E402
from quasar.runtime import Scorer  # noqa: E402

ENCODER = "timm:test_efficientnet@random"


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from quasar.encoders import create_encoder
    from quasar.export.onnx_export import export_onnx

    enc = create_encoder(ENCODER)  # @random: seeded, so the exporter's own encoder is the same network
    rng = np.random.default_rng(0)
    heads = [Head(name, rng.normal(size=enc.embed_dim).astype(np.float32),
                  rng.normal(size=enc.embed_dim).astype(np.float32), logit_scale=20.0, bias=0.05 * i)
             for i, name in enumerate(("sharp", "clean"))]
    pack = CentroidPack(enc.encoder_id, enc.spec, heads)
    images = [rng.integers(0, 256, (120 + 20 * i, 160, 3), dtype=np.uint8) for i in range(3)]
    d = tmp_path_factory.mktemp("export")
    fp32 = export_onnx(None, pack, d / "tiny-fp32.onnx")
    int8 = export_onnx(None, pack, d / "tiny-int8.onnx", precision="int8", calibration_images=images)
    return enc, pack, images, fp32, int8


def test_fp32_graph_computes_the_encoder_and_the_packs_heads(tiny_export):
    enc, pack, images, fp32, _ = tiny_export
    with Scorer(fp32) as scorer:  # loading runs the contract's checks (metadata, head hash, I/O)
        assert scorer.heads == ("sharp", "clean") and scorer.info.precision == "fp32"
        x = np.stack([scorer.preprocess(img) for img in images])
        scores, margins = scorer.backend.run(x)
    with torch.no_grad():
        emb = enc(torch.from_numpy(x)).numpy()
    ref_scores, ref_margins = pack.score_embeddings(emb)  # the head in float64 numpy
    np.testing.assert_allclose(margins, ref_margins, atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)


def test_int8_graph_loads_and_scores(tiny_export):
    _, _, images, _, int8 = tiny_export
    with Scorer(int8) as scorer:
        assert scorer.info.precision == "int8"
        records = scorer.score(images)
    assert all(r.ok and all(0.0 <= v <= 1.0 for v in r.scores.values()) for r in records)
