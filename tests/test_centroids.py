"""Anchors -> embeddings -> aggregation -> heads, on real photo embeddings (effnet-lite0, small size)."""

import warnings
from dataclasses import replace

import numpy as np
import pytest

from quasar.centroids.aggregate import Aggregation, aggregate, kmeans, l2_normalize
from quasar.centroids.anchors import Anchor, from_mos_csv, subsample, synthetic
from quasar.centroids.build import build_head, head_from_embeddings
from quasar.centroids.calibrate import calibrated_scale, margins, resolve_scale
from quasar.centroids.embed import Embedder


@pytest.fixture(scope="module")
def encoder():
    from quasar.encoders import create_encoder

    enc = create_encoder("effnet-lite0")
    enc.set_spec(replace(enc.spec, size=160))  # small native size keeps the test quick
    return enc


@pytest.fixture(scope="module")
def synth(anchor_photos):
    return synthetic([p.path for p in anchor_photos[:4]], ("gaussian_blur", "white_noise"), (1, 3, 5))


@pytest.fixture(scope="module")
def embedded(encoder, synth, tmp_path_factory):
    emb = Embedder(encoder, batch_size=8, cache_root=tmp_path_factory.mktemp("cache"), progress=False)
    e, used, failed = emb.embed(synth.all())
    assert not failed and len(used) == len(synth.all()) and emb.stats["embedded"] == len(used)
    return e, used, emb


def test_cache_avoids_re_embedding(encoder, synth, embedded):
    e, _, emb = embedded
    again = Embedder(encoder, batch_size=8, cache_root=emb.cache.dir.parent, progress=False)
    e2, _, _ = again.embed(synth.all())
    assert again.stats == {"embedded": 0, "cached": len(e), "failed": 0}
    np.testing.assert_array_equal(e, e2)


def test_batched_equals_single(encoder, synth, embedded, tmp_path):
    e, used, _ = embedded
    single = Embedder(encoder, batch_size=1, use_cache=False, progress=False)
    e1, _, _ = single.embed(used[:5])
    np.testing.assert_allclose(e1, e[:5], rtol=1e-4, atol=1e-4)


def test_unreadable_anchor_files_are_skipped_and_listed(encoder, synth, tmp_path):
    bad_text = tmp_path / "notes.jpg"
    bad_text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    items = [synth.good[0], Anchor(str(bad_text), "good"), Anchor(str(empty), "bad"),
             Anchor(str(tmp_path / "gone.png"), "bad")]
    emb = Embedder(encoder, use_cache=False, progress=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        e, used, failed = emb.embed(items)
    assert len(e) == 1 and used == [synth.good[0]]
    assert {p for p, _ in failed} == {str(bad_text), str(empty), str(tmp_path / "gone.png")}
    msg = str(w[-1].message)
    assert "skipped 3 unreadable" in msg and "notes.jpg" in msg and "empty file" in msg


def _sets(embedded):
    e, used, _ = embedded
    good = np.array([a.label == "good" for a in used])
    scores = np.array([a.score for a in used])
    return e[good], e[~good], scores[good], scores[~good]


def test_mean_centroid_is_mean_of_normalised_embeddings(embedded):
    g, _, _, _ = _sets(embedded)
    c, n = aggregate(g, Aggregation("mean"))
    np.testing.assert_allclose(c, l2_normalize(g).mean(0))
    assert n == len(g)
    # Normalising first matters: the raw mean points elsewhere when norms differ.
    assert not np.allclose(c / np.linalg.norm(c), l2_normalize(g.mean(0)), atol=1e-6) or np.ptp(np.linalg.norm(g, axis=1)) < 1e-6


def test_offset_drops_anchors_nearest_the_split(embedded):
    _, b, _, sb = _sets(embedded)
    c, n = aggregate(b, Aggregation("offset", offset_ratio=1 / 3), sb, 0.9, "bad")
    assert n == len(b) - len(b) // 3
    kept = sb <= 1 - 3 / 5 + 1e-9  # level-1 anchors (score 0.8) are nearest the split 0.9
    np.testing.assert_allclose(c, l2_normalize(b[kept]).mean(0))
    with pytest.raises(ValueError, match="needs per-anchor scores"):
        aggregate(b, Aggregation("offset", offset_ratio=0.2))


def test_kmeans_centroid_is_unweighted_mean_of_cluster_centres(embedded):
    _, b, _, _ = _sets(embedded)
    centres = kmeans(b, 3, seed=1)
    c, _ = aggregate(b, Aggregation("kmeans", k=3, seed=1))
    np.testing.assert_allclose(c, centres.mean(0))
    np.testing.assert_allclose(kmeans(b, 3, seed=1), centres)  # deterministic
    c1, _ = aggregate(b, Aggregation("kmeans", k=1))
    np.testing.assert_allclose(c1, l2_normalize(b).mean(0), atol=1e-9)
    with pytest.raises(ValueError, match="exceeds"):
        kmeans(b[:2], 3)


@pytest.mark.parametrize("agg", [Aggregation("mean"), Aggregation("offset", offset_ratio=0.3), Aggregation("kmeans", k=2)])
def test_each_aggregation_separates_pristine_from_distorted(embedded, agg):
    g, b, sg, sb = _sets(embedded)
    head = head_from_embeddings("q", g, b, agg, sg, sb, 0.9)
    m = margins(np.concatenate([g, b]), head.good, head.bad)
    assert m[: len(g)].mean() > m[len(g):].mean()
    assert head.aggregation["method"] == agg.method


def test_calibrated_scale_uses_the_range(embedded):
    g, b, sg, sb = _sets(embedded)
    head = head_from_embeddings("q", g, b, Aggregation("mean"), sg, sb, 0.9)
    m = margins(np.concatenate([g, b]), head.good, head.bad)
    p = 1 / (1 + np.exp(-head.logit_scale * m))
    assert np.quantile(p, 0.95) - np.quantile(p, 0.05) == pytest.approx(0.9, abs=0.02)
    assert p.min() < 0.1 and p.max() > 0.8
    assert head.logit_scale == pytest.approx(calibrated_scale(m), rel=1e-4)
    assert resolve_scale("paper", m) == (1.0, "paper")
    assert resolve_scale("official", m)[0] == pytest.approx(1 / 0.07)
    assert resolve_scale("42", m) == (42.0, "fixed")


def test_build_head_records_provenance(encoder, synth, embedded):
    emb = embedded[2]
    head = build_head("quality", synth, emb, Aggregation("mean"))
    assert head.anchors["good"] == 4 and head.anchors["bad"] == 24 and head.anchors["kind"] == "synthetic"
    assert head.anchors["provenance"]["distortions"] == ["gaussian_blur", "white_noise"]


def test_subsample_is_seeded(synth):
    a, b = subsample(synth, 0.5, seed=3), subsample(synth, 0.5, seed=3)
    assert a.good == b.good and a.bad == b.bad and len(a.bad) == len(synth.bad) // 2
    assert subsample(synth, 0.5, seed=4).bad != a.bad


def test_mos_csv_splits_at_median(tmp_path, anchor_photos):
    rows = ["path,MOS"] + [f"{p.path},{i}" for i, p in enumerate(anchor_photos[:5])]
    f = tmp_path / "ava.csv"
    f.write_text("\n".join(rows))
    s = from_mos_csv(str(f))
    assert [a.score for a in s.good] == [3.0, 4.0] and [a.score for a in s.bad] == [0.0, 1.0] and s.split == 2.0
