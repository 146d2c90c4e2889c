"""Per-family heads, their calibration and the anchors-only choice of how to fit and combine them."""

import numpy as np
import pytest

from quasar.centroids import heads as H
from quasar.centroids.families import (
    AnchorGrid,
    HeadConfig,
    fit_quality,
    grid_scores,
    select_config,
    summarise,
    to_heads,
    within_srcc,
)
from quasar.centroids.pack import CentroidPack
from quasar.errors import QuasarError
from quasar.preprocess import PreprocessSpec

FAMS = {"blurry": ("blur_a", "blur_b"), "noisy": ("noise_a",), "dark": ("dark_a", "dark_b")}


def synthetic_grid(n_photos=12, dim=40, seed=0) -> AnchorGrid:
    """Embeddings in which each type moves along its own direction with the level, on top of
    photo content that varies far more: the situation the heads must handle."""
    rng = np.random.default_rng(seed)
    types = [t for ts in FAMS.values() for t in ts]
    content = rng.normal(size=(n_photos, dim)) * 3
    dirs = {t: rng.normal(size=dim) for t in types}
    rows, photo, typ, level = [], [], [], []
    for p in range(n_photos):
        rows.append(content[p] + 10)
        photo.append(f"p{p}"), typ.append(""), level.append(0)
        for t in types:
            for lv in range(1, 6):
                rows.append(content[p] + 10 + lv * dirs[t] + rng.normal(size=dim) * 0.3)
                photo.append(f"p{p}"), typ.append(t), level.append(lv)
    return AnchorGrid.from_rows(np.array(rows), photo, typ, level)


def test_calibrate_maps_levels_to_the_documented_scale():
    rng = np.random.default_rng(0)
    level = np.repeat(np.arange(6), 50)
    margin = -0.02 * level + rng.normal(size=level.size) * 0.003
    scale, bias = H.calibrate(margin, H.level_target(level))
    score = 1 / (1 + np.exp(-scale * (margin + bias)))
    assert scale > 0
    assert score[level == 0].mean() > 0.9 and score[level == 5].mean() < 0.1
    assert np.all(np.diff([score[level == v].mean() for v in range(6)]) < 0)
    with pytest.raises(QuasarError, match="does not rank"):
        H.calibrate(-margin, H.level_target(level))


def test_ridge_and_lda_find_the_distortion_direction():
    g = synthetic_grid()
    e = np.concatenate([g.pristine, g.distorted[:, 0].reshape(-1, g.pristine.shape[1])])
    lv = np.concatenate([np.zeros(len(g.pristine)), np.tile(np.arange(1, 6), len(g.pristine))])
    for w in (H.ridge_direction(e, H.level_target(lv), 1.0), H.lda_direction(e, lv == 0, 1.0)):
        m = H.unit_rows(e) @ w
        assert m[lv == 0].mean() > m[lv == 5].mean()
    # the dual (n < D) and primal solutions agree
    x = np.random.default_rng(1).normal(size=(20, 50))
    rhs = np.random.default_rng(2).normal(size=50)
    dual = H._whitened_solve(x, rhs, 0.5)
    big = np.concatenate([x, np.zeros((40, 50))]) * np.sqrt(60 / 20)  # same X^T X / n with n > D
    np.testing.assert_allclose(dual, H._whitened_solve(big, rhs, 0.5 * (x * x).sum() / (20 * 50) /
                                                       ((big * big).sum() / (60 * 50))), rtol=1e-6)


def test_within_srcc_matches_scipy():
    from scipy.stats import spearmanr

    s = np.random.default_rng(3).normal(size=(4, 3, 6))
    want = np.array([[spearmanr(s[i, j], -np.arange(6))[0] for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(within_srcc(s), want, atol=1e-12)


@pytest.mark.parametrize("cfg", [HeadConfig("ridge", 1.0, 1, "softmin"), HeadConfig("centroid", 0.0, 1, "min"),
                                 HeadConfig("ridge", 1.0, 1, "mean")])
def test_quality_model_ranks_and_exports(cfg):
    g = synthetic_grid()
    model = fit_quality(g, cfg, heads=FAMS)
    r = summarise(g, grid_scores(g, model.quality_logit))
    assert r["mean"] > 0.9 and r["pooled"] > 0.5
    # the pack heads compute exactly the model's numbers
    heads = to_heads(model, cfg, {"kind": "synthetic"})
    pack = CentroidPack("x", PreprocessSpec(), heads)
    pack.validate()
    e = g.distorted[:3, 1].reshape(-1, g.pristine.shape[1])
    scores, margins = pack.score_embeddings(e)
    np.testing.assert_allclose(margins[:, -1] * pack.logit_scales()[-1], model.quality_logit(e), rtol=1e-5, atol=1e-5)
    fam = model.family_logits(e)
    np.testing.assert_allclose(margins[:, :-1] * pack.logit_scales()[:-1], fam, rtol=1e-5, atol=1e-5)


def test_select_config_uses_anchors_only_and_records_its_table():
    g = synthetic_grid()
    cands = (HeadConfig("centroid", 0.0, 1, "min"), HeadConfig("ridge", 1.0, 1, "softmin"))
    best, table = select_config(g, cands, heads=FAMS)
    assert best in cands and len(table) == 2
    assert {"seen_mean", "seen_pooled", "lofo_mean", "objective"} <= set(table[0])
    assert table[cands.index(best)]["objective"] == max(r["objective"] for r in table)


def test_incomplete_grid_is_refused():
    with pytest.raises(QuasarError, match="incomplete"):
        AnchorGrid.from_rows(np.ones((3, 4)), ["a", "a", "b"], ["", "t", ""], [0, 1, 0])
