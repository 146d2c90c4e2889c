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


def synthetic_grid(n_photos=12, dim=40, seed=0, shared=0.0) -> AnchorGrid:
    """Embeddings in which each type moves along its own direction with the level, on top of
    photo content that varies far more: the situation the heads must handle. ``shared``: how much
    every type also moves along one common "degraded" direction (unspecific heads then respond to
    every family's defects)."""
    rng = np.random.default_rng(seed)
    types = [t for ts in FAMS.values() for t in ts]
    content = rng.normal(size=(n_photos, dim)) * 3
    dirs = {t: rng.normal(size=dim) for t in types}
    if shared:
        common = rng.normal(size=dim)
        dirs = {t: d * (1 - shared) + shared * common * (1.5 if t.startswith("noise") else 1.0)
                for t, d in dirs.items()}
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


def test_level_median_calibration_keeps_the_scale_for_the_typical_photo_of_each_level():
    """With a wide spread within each level (content), the fit over every anchor flattens the curve:
    the median pristine anchor reads well below 1 - 0/5. :func:`calibrate_medians` puts each level's
    median nearer its target, and ranks the same (a monotone map of the same margin)."""
    rng = np.random.default_rng(1)
    level = np.repeat(np.arange(6), 400)
    margin = -0.02 * level + rng.normal(size=level.size) * 0.02
    target = H.level_target(level)

    def level_medians(scale, bias):
        score = 1 / (1 + np.exp(-scale * (margin + bias)))
        return np.array([np.median(score[level == v]) for v in range(6)])

    every, medians = H.calibrate(margin, target), H.calibrate_medians(margin, target)
    error = {k: np.abs(level_medians(*sb) - (1 - np.arange(6) / 5)).mean() for k, sb in
             (("every", every), ("medians", medians))}
    assert error["medians"] < 0.85 * error["every"]
    assert level_medians(*medians)[0] > level_medians(*every)[0] + 0.04  # the pristine median nearer 1
    assert medians[0] > every[0] > 0  # steeper: the within-level spread no longer flattens it
    with pytest.raises(QuasarError, match="do not rank"):
        H.calibrate_medians(-margin, target)
    with pytest.raises(QuasarError, match="two or more levels"):
        H.calibrate_medians(margin[level == 0], target[level == 0])


def test_quality_head_records_its_calibration():
    g = synthetic_grid()
    cfg = HeadConfig("ridge", 1.0, 1, "mean")
    heads = to_heads(fit_quality(g, cfg, heads=FAMS), cfg, {"photos": 12})
    assert heads[-1].aggregation["calibration"] == "level_medians"
    assert HeadConfig.from_aggregation(heads[-1].aggregation) == cfg  # method and calibration left out


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


def test_close_calls_count_wins_ties_and_steps():
    from quasar.centroids.families import close_calls, pair_wins

    s = np.array([[[1.0, 0.9, 0.95, 0.5, 0.4, 0.3], [0.5, 0.5, 0.4, 0.3, 0.2, 0.1]]])  # [P=1, T=2, 6]
    np.testing.assert_array_equal(pair_wins(s, 0, 1), [[1.0, 0.5]])
    cc = close_calls(s)
    assert cc["pristine_over_L1"] == 0.75 and cc["pristine_over_L2"] == 1.0
    assert cc["steps"] == pytest.approx((0 + 1 + 1 + 1 + 1 + 1 + 1 + 1) / 8)  # level 1 below level 2 once


def test_pairs_index_the_rows_of_one_photo_and_type():
    from quasar.centroids.families import _pairs, _rows

    g = synthetic_grid(n_photos=3)
    photos = np.ones(3, bool)
    tidx = g.type_index(["blur_a", "noise_a"])
    emb, levels, _, _ = _rows(g, photos, tidx)
    better, worse = _pairs(3, 2, 5)
    assert len(better) == 3 * 2 * 15 and np.all(levels[better] < levels[worse])
    # both rows of every pair come from the same photo and type: their content offset is the same
    for b, w in zip(better[::7], worse[::7], strict=True):
        pb = b if b < 3 else (b - 3) // 10
        pw = w if w < 3 else (w - 3) // 10
        assert pb == pw


def test_rank_head_orders_levels_within_each_photo():
    """The pairwise (ranking) head puts pristine above level 1 within a photo more often than chance,
    on photos it was not fitted on, although content varies far more than the defects."""
    from quasar.centroids.families import close_calls

    g = synthetic_grid(n_photos=16)
    a, b = g.photo_halves()
    model = fit_quality(g, HeadConfig("rank", 1e-3, 1, "mean"), a, FAMS)
    s = grid_scores(g, model.quality_logit)[b]
    assert close_calls(s)["pristine_over_L1"] > 0.8 and close_calls(s)["steps"] > 0.8


def test_specificity_keeps_a_family_head_high_on_other_defects():
    """With specificity, the ``noisy`` head scores the other families' defects near pristine, so
    the lowest family head names the cause (what --explain's reason relies on)."""
    g = synthetic_grid(n_photos=16)
    plain = fit_quality(g, HeadConfig("ridge", 1.0, 1, "mean"), heads=FAMS)
    spec = fit_quality(g, HeadConfig("ridge", 1.0, 1, "mean", specificity=1.0), heads=FAMS)
    other = g.distorted[:, g.type_index(["blur_a"]), 4].reshape(-1, g.pristine.shape[1]).astype(np.float64)

    def noisy_drop(model):  # how far the noisy head falls from pristine to a level-5 blur
        h = model.families[list(FAMS).index("noisy")]
        return float(h.logits(g.pristine.astype(np.float64)).mean() - h.logits(other).mean())

    assert abs(noisy_drop(spec)) < abs(noisy_drop(plain))


def test_explanation_heads_name_the_cause_and_quality_does_not_read_them():
    """Explanation heads (chosen on anchor halves) name the true family more often than the heads that
    ``quality`` averages; in the pack they carry the family names and ``explain``, the averaged heads
    are ``quality.<family>``, and ``quality`` is the same function of the embedding as before."""
    from quasar.centroids.families import (
        EXPLAIN_CANDIDATES,
        explain_accuracy,
        explain_config,
        fit_explain,
        select_explain,
    )

    g = synthetic_grid(n_photos=16, shared=0.8)
    cfg = HeadConfig("ridge", 1.0, 1, "mean")
    model = fit_quality(g, cfg, heads=FAMS)
    ecfg, table = select_explain(g, cfg, heads=FAMS)
    assert [(r["alpha"], r["specificity"]) for r in table] == list(EXPLAIN_CANDIDATES)
    best = max(table, key=lambda r: r["explain_accuracy"])
    assert (ecfg.alpha, ecfg.specificity) == (best["alpha"], best["specificity"])
    a, b = g.photo_halves()
    fitted = fit_explain(g, ecfg, a, FAMS)
    plain = fit_quality(g, cfg, a, FAMS).families
    assert explain_accuracy(fitted, g, b, FAMS) > explain_accuracy(plain, g, b, FAMS)
    with pytest.raises(QuasarError, match="positive specificity"):
        fit_explain(g, cfg, heads=FAMS)
    with pytest.raises(QuasarError, match="positive specificity"):
        explain_config(cfg, 1.0, 0.0)

    model.explain, model.explain_cfg = fit_explain(g, ecfg, heads=FAMS), ecfg
    pack = CentroidPack("x", PreprocessSpec(), to_heads(model, cfg, {"kind": "synthetic"}))
    pack.validate()
    assert pack.output_names == ["quality.blurry", "quality.noisy", "quality.dark", "blurry", "noisy", "dark",
                                 "quality"]
    assert pack.explain_plan() == [3, 4, 5] and pack.combine_plan() == [("mean", [0, 1, 2])]
    assert pack.format_version == 3
    e = g.distorted[:3, 1].reshape(-1, g.pristine.shape[1])
    _, margins = pack.score_embeddings(e)
    np.testing.assert_allclose(margins[:, -1] * pack.logit_scales()[-1], model.quality_logit(e), rtol=1e-5, atol=1e-5)
    # round trip through JSON keeps the roles
    again = CentroidPack.from_dict(pack.to_dict())
    assert again.explain_plan() == [3, 4, 5] and again.content_hash == pack.content_hash
