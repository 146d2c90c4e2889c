"""Per-family quality heads, the overall ``quality`` head that combines them, and how both are chosen.

Synthetic anchors form a regular grid: every pristine photo, and every distortion type at every
level of it. :class:`AnchorGrid` holds their embeddings in that shape, so that fitting a head on
some photos and some types, and measuring it (Spearman within each photo and type, pooled over
everything), are array operations.

The default pack has one head per distortion *family* (what an app can tell its user: "blurry",
"noisy", ...), each fitted on the pristine photos and that family's types only, plus ``quality``:
a combination of the family heads' logits (``min``, ``mean`` or ``softmin``) computed inside the
graph, and calibrated like every head so that pristine anchors score near 1 and the strongest level
near 0 (:func:`quasar.centroids.heads.calibrate`).

How a head is fitted (centroid difference or ridge regression, its regularisation) and how
``quality`` combines the families are chosen by :func:`select_config` **on anchors only**: the
anchor photos are split in two halves by name (fit on one, measure on the other, and back), and each
family is left out in turn (fit without it, measure on it). Held-out photos are never looked at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from quasar.centroids import heads as H
from quasar.centroids.distortions import FAMILIES, LEVELS
from quasar.centroids.pack import Head
from quasar.errors import QuasarError

# Heads of the default quality pack -> the distortion types each is fitted on. KADID's own families, with
# over-sharpening moved to sharpness and contrast change to exposure (what a user would call them), white
# balance with colour, and the lens defects (vignetting, colour fringes, haze) as ``optics``.
QUALITY_HEADS: dict[str, tuple[str, ...]] = {
    "sharpness": (*FAMILIES["blur"], "high_sharpen"),
    "noise": FAMILIES["noise"],
    "compression": FAMILIES["compression"],
    "exposure": (*FAMILIES["brightness"], "contrast_change"),
    "color": (*FAMILIES["color"], *FAMILIES["white_balance"]),
    "spatial": FAMILIES["spatial"],
    "optics": FAMILIES["optics"],
}
# Mixtures of two or three defects: no family head of their own (their cause is several); ``quality``
# is calibrated on them too, and the benchmarks score them.
MIXTURE_TYPES: tuple[str, ...] = FAMILIES["mixture"]
OVERALL_HEAD = "quality"


def part_name(family: str) -> str:
    """The pack name of the head ``quality`` averages for ``family`` when the family's own name is its
    explanation head (:func:`to_heads`)."""
    return f"{OVERALL_HEAD}.{family}"

RULES = H.COMBINE_RULES
MARGIN_SPREAD = 0.1  # weighted std of a family head's anchor margins (its direction's length is free)


@dataclass(frozen=True)
class HeadConfig:
    """How the family heads are fitted and combined."""

    kind: str = "ridge"  # "centroid" | "ridge" | "rank"
    alpha: float = 1.0  # ridge: regularisation relative to the mean variance per dimension; rank: lam
    min_bad_level: int = 1  # centroid heads: the lowest level that counts as "bad"
    rule: str = "softmin"  # how ``quality`` combines the family logits
    specificity: float = 0.0  # weight of the other heads' distorted anchors as "not this head's defect"

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "alpha": self.alpha, "min_bad_level": self.min_bad_level, "rule": self.rule}
        if self.specificity:
            out["specificity"] = self.specificity
        return out

    @classmethod
    def from_aggregation(cls, aggregation: dict) -> HeadConfig:
        """The config a pack head records in its ``aggregation`` (which also names the ``method`` and
        the ``calibration``)."""
        from dataclasses import fields

        return cls(**{f.name: aggregation[f.name] for f in fields(cls) if f.name in aggregation})


DEFAULT_CANDIDATES: tuple[HeadConfig, ...] = tuple(
    HeadConfig(kind, alpha, lvl, rule)
    for kind, alpha, lvl in (("centroid", 0.0, 1), ("ridge", 0.3, 1), ("ridge", 1.0, 1), ("ridge", 3.0, 1),
                             ("ridge", 10.0, 1))
    for rule in RULES
)


@dataclass
class AnchorGrid:
    """Unit embeddings of pristine photos [P, D] and of their distortions [P, T, L, D]."""

    photos: list[str]
    types: list[str]
    pristine: np.ndarray
    distorted: np.ndarray
    levels: tuple[int, ...] = LEVELS
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_rows(cls, emb: np.ndarray, photo: Sequence[str], dtype: Sequence[str | None],
                  level: Sequence[int]) -> AnchorGrid:
        """Arrange embedding rows (pristine: type None or "", level 0) into the grid; every photo
        must have every (type, level), as :func:`quasar.centroids.anchors.synthetic` makes them."""
        e = H.unit_rows(np.asarray(emb)).astype(np.float32)
        photos = sorted(set(photo))
        types = sorted({t for t in dtype if t})
        levels = tuple(sorted({int(v) for v in level if v}))
        pi = {p: i for i, p in enumerate(photos)}
        ti = {t: i for i, t in enumerate(types)}
        li = {v: i for i, v in enumerate(levels)}
        pristine = np.full((len(photos), e.shape[1]), np.nan, np.float32)
        distorted = np.full((len(photos), len(types), len(levels), e.shape[1]), np.nan, np.float32)
        for row, p, t, v in zip(e, photo, dtype, level, strict=True):
            if t:
                distorted[pi[p], ti[t], li[int(v)]] = row
            else:
                pristine[pi[p]] = row
        if np.isnan(pristine).any() or np.isnan(distorted).any():
            raise QuasarError("anchor grid is incomplete: every photo needs its pristine version and every "
                              "distortion type at every level (a photo failed to decode?)")
        return cls(photos, types, pristine, distorted, levels)

    def type_index(self, types: Sequence[str]) -> np.ndarray:
        missing = [t for t in types if t not in self.types]
        if missing:
            raise QuasarError(f"the anchor grid has no distortion type(s) {missing}")
        return np.array([self.types.index(t) for t in types], dtype=int)

    def photo_halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Two halves of the photos by a hash of their names (for choosing configs on anchors)."""
        a = np.array([hashlib.sha1(p.encode()).digest()[1] % 2 == 0 for p in self.photos])
        if a.all() or (~a).all():
            a = np.arange(len(self.photos)) % 2 == 0
        return a, ~a


# --------------------------------------------------------------------------- fitting


@dataclass
class FittedHead:
    name: str
    weight: np.ndarray  # direction over the unit embedding
    scale: float
    bias: float

    def logits(self, e: np.ndarray) -> np.ndarray:
        return self.scale * (e @ self.weight + self.bias)


def _rows(grid: AnchorGrid, photos: np.ndarray, tidx: np.ndarray):
    """Training rows of a head: embeddings, targets and weights (the pristine photos weigh as much as
    one level of the head's types, so each point of the quality scale counts the same)."""
    pr = grid.pristine[photos]
    ds = grid.distorted[photos][:, tidx]  # [p, t, L, D]
    n_p, n_t, n_l = ds.shape[:3]
    emb = np.concatenate([pr, ds.reshape(-1, ds.shape[-1])])
    levels = np.concatenate([np.zeros(n_p), np.tile(np.asarray(grid.levels, float), n_p * n_t)])
    target = H.level_target(levels, max(grid.levels))
    weight = np.concatenate([np.full(n_p, float(n_t)), np.ones(n_p * n_t * n_l)])
    return emb, levels, target, weight


def _pairs(n_p: int, n_t: int, n_l: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into :func:`_rows`' rows) of every pair of one photo and type, the better first:
    pristine above each level, and each level above every stronger one."""
    photo, typ = np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij")
    photo, typ = photo.reshape(-1), typ.reshape(-1)

    def row(level: int) -> np.ndarray:
        return photo if level == 0 else n_p + (photo * n_t + typ) * n_l + (level - 1)

    better, worse = [], []
    for a in range(n_l + 1):
        for b in range(a + 1, n_l + 1):
            better.append(row(a))
            worse.append(row(b))
    return np.concatenate(better), np.concatenate(worse)


def fit_head(grid: AnchorGrid, name: str, types: Sequence[str], photos: np.ndarray, cfg: HeadConfig,
             others: Sequence[str] = ()) -> FittedHead:
    """One calibrated head from the pristine photos and the given types of the selected photos.

    With ``cfg.specificity`` > 0, the ``others`` types (the other heads' defects) join the fit as
    anchors that are *not* this head's defect (target 1, that weight per image), so that the lowest
    family head names the cause. Memoised per grid: candidates that differ only in the combination
    rule share their family heads.
    """
    others = tuple(others) if cfg.specificity else ()
    key = (name, tuple(types), others, photos.tobytes(), cfg.kind, cfg.alpha, cfg.min_bad_level, cfg.specificity)
    memo = grid.meta.setdefault("_fitted", {})
    if key not in memo:
        memo[key] = _fit_head(grid, name, types, photos, cfg, others)
    return memo[key]


def _fit_head(grid: AnchorGrid, name: str, types: Sequence[str], photos: np.ndarray, cfg: HeadConfig,
              others: Sequence[str] = ()) -> FittedHead:
    emb, levels, target, weight = _rows(grid, photos, grid.type_index(types))
    fit_emb, fit_target, fit_weight = emb, target, weight
    if others:
        o = grid.distorted[photos][:, grid.type_index(others)].reshape(-1, emb.shape[1])
        fit_emb = np.concatenate([emb, o])
        fit_target = np.concatenate([target, np.ones(len(o))])
        fit_weight = np.concatenate([weight, np.full(len(o), cfg.specificity * len(types) / len(others))])
    if cfg.kind == "centroid":
        good = emb[levels == 0].mean(0)
        bad = emb[levels >= cfg.min_bad_level].mean(0)
        w = H.centroid_direction(good, bad)
    elif cfg.kind == "ridge":
        w = H.ridge_direction(fit_emb, fit_target, cfg.alpha, fit_weight)
    elif cfg.kind == "rank":
        better, worse = _pairs(int(photos.sum()), len(types), len(grid.levels))
        w = H.rank_direction(fit_emb, fit_target, fit_weight, better, worse, np.ones(len(better)), cfg.alpha)
    else:
        raise QuasarError(f"unknown head kind {cfg.kind!r}")
    # A direction's length is arbitrary: fix it so that anchor margins spread by MARGIN_SPREAD, which
    # keeps calibrated logit scales in the usual range (tens) whatever the fitting method.
    sd = float(np.sqrt(np.cov(emb @ w, aweights=weight)))
    if not sd > 0:
        raise QuasarError(f"head {name!r}: the anchors' margins do not vary; cannot calibrate")
    w = w * (MARGIN_SPREAD / sd)
    scale, bias = H.calibrate(emb @ w, target, weight)
    return FittedHead(name, w.astype(np.float64), scale, bias)


@dataclass
class QualityModel:
    """Fitted family heads plus the calibrated combination: scores any unit embeddings. ``explain``:
    optional explanation heads, one per family (:func:`fit_explain`), which ``quality`` does not read."""

    families: list[FittedHead]
    rule: str
    scale: float
    bias: float
    explain: list[FittedHead] = field(default_factory=list)
    explain_cfg: HeadConfig | None = None  # how the explanation heads were fitted (:func:`select_explain`)

    def family_logits(self, e: np.ndarray) -> np.ndarray:
        return np.stack([h.logits(e) for h in self.families], axis=-1)

    def quality_logit(self, e: np.ndarray) -> np.ndarray:
        return self.scale * (H.combine_logits(self.family_logits(e), self.rule) + self.bias)


# How ``quality``'s scale is fitted: the median anchor of each level reads 1 - level/5
# (:func:`heads.calibrate_medians`); the family heads keep the fit over every anchor (:func:`heads.calibrate`).
QUALITY_CALIBRATION = "level_medians"


def fit_quality(grid: AnchorGrid, cfg: HeadConfig, photos: np.ndarray | None = None,
                heads: dict[str, tuple[str, ...]] | None = None) -> QualityModel:
    """Fit each family head on its types, then calibrate their combination on all of those types."""
    heads = QUALITY_HEADS if heads is None else heads
    photos = np.ones(len(grid.photos), bool) if photos is None else photos
    all_types = [t for types in heads.values() for t in types]
    fams = [fit_head(grid, name, types, photos, cfg, [t for t in all_types if t not in types])
            for name, types in heads.items()]
    if heads is QUALITY_HEADS:
        all_types += [t for t in MIXTURE_TYPES if t in grid.types]
    emb, _, target, _ = _rows(grid, photos, grid.type_index(all_types))
    c = H.combine_logits(np.stack([h.logits(emb) for h in fams], -1), cfg.rule)
    scale, bias = H.calibrate_medians(c, target)  # the combination's scale: see QUALITY_CALIBRATION
    return QualityModel(fams, cfg.rule, scale, bias)


# Explanation heads: one per family, fitted with the other families' defects as "not this defect"
# (``specificity``), so that the lowest of them names the cause. They are separate from the heads that
# ``quality`` averages: specific heads give the right reason but a worse overall ranking (on anchor
# halves, pristine > level 1 fell from about 0.8 to 0.6 when ``quality`` read them).
# (ridge alpha, specificity), chosen on anchor halves: a head that must tell one family from the others
# may want less regularisation than one that only ranks its own family's levels
EXPLAIN_CANDIDATES: tuple[tuple[float, float], ...] = ((3.0, 0.3), (3.0, 1.0), (3.0, 3.0), (1.0, 1.0),
                                                       (1.0, 3.0))
EXPLAIN_LEVELS: tuple[int, ...] = (3, 4, 5)  # where "name the cause" is measured (clearly visible defects)


def explain_config(cfg: HeadConfig, alpha: float, specificity: float) -> HeadConfig:
    """``cfg`` (the quality heads' fit) with the explanation heads' ``alpha`` and ``specificity`` (> 0)."""
    if not specificity > 0:
        raise QuasarError(f"explanation heads need a positive specificity, not {specificity!r}")
    return replace(cfg, alpha=float(alpha), specificity=float(specificity))


def fit_explain(grid: AnchorGrid, spec_cfg: HeadConfig, photos: np.ndarray | None = None,
                heads: dict[str, tuple[str, ...]] | None = None) -> list[FittedHead]:
    """One explanation head per family, fitted with ``spec_cfg`` (:func:`explain_config`; :func:`fit_head`)."""
    if not spec_cfg.specificity > 0:
        raise QuasarError(f"explanation heads need a positive specificity, not {spec_cfg.specificity!r}")
    heads = QUALITY_HEADS if heads is None else heads
    photos = np.ones(len(grid.photos), bool) if photos is None else photos
    all_types = [t for types in heads.values() for t in types]
    return [fit_head(grid, name, types, photos, spec_cfg, [t for t in all_types if t not in types])
            for name, types in heads.items()]


def explain_accuracy(explain: Sequence[FittedHead], grid: AnchorGrid, photos: np.ndarray | None = None,
                     heads: dict[str, tuple[str, ...]] | None = None,
                     levels: Sequence[int] = EXPLAIN_LEVELS) -> float:
    """How often the lowest explanation head is the true family, over every single-family distortion
    at ``levels`` of the selected photos (``quasar score --explain``'s ``reason``, without its bound)."""
    heads = QUALITY_HEADS if heads is None else heads
    photos = np.ones(len(grid.photos), bool) if photos is None else photos
    names = [h.name for h in explain]
    types = [t for ts in heads.values() for t in ts]
    truth = np.array([names.index(f) for f, ts in heads.items() for _ in ts])
    li = [grid.levels.index(v) for v in levels]
    e = grid.distorted[photos][:, grid.type_index(types)][:, :, li].astype(np.float64)
    logits = np.stack([h.logits(e.reshape(-1, e.shape[-1])) for h in explain], -1)
    pred = logits.argmin(-1).reshape(e.shape[:3])
    return float((pred == truth[None, :, None]).mean())


def select_explain(grid: AnchorGrid, cfg: HeadConfig,
                   candidates: Sequence[tuple[float, float]] = EXPLAIN_CANDIDATES,
                   heads: dict[str, tuple[str, ...]] | None = None) -> tuple[HeadConfig, list[dict]]:
    """The (alpha, specificity) whose explanation heads name the true family most often on the other half
    of the anchor photos (fit on one half, measure on the other, and back); returns the explanation
    heads' config (:func:`explain_config` of ``cfg``) and the table."""
    a, b = grid.photo_halves()
    table, configs = [], [explain_config(cfg, al, sp) for al, sp in candidates]
    for c in configs:
        acc = [explain_accuracy(fit_explain(grid, c, fit_on, heads), grid, test_on, heads)
               for fit_on, test_on in ((a, b), (b, a))]
        table.append({"alpha": c.alpha, "specificity": c.specificity, "explain_accuracy": float(np.mean(acc))})
    best = max(range(len(table)), key=lambda i: (round(table[i]["explain_accuracy"], 6), -i))
    return configs[best], table


# --------------------------------------------------------------------------- measuring


def grid_scores(grid: AnchorGrid, score_fn) -> np.ndarray:
    """``score_fn(unit embeddings [n, D]) -> [n]`` over the grid, as [P, T, 1 + L] (column 0: pristine)."""
    p, t, n_l, d = grid.distorted.shape
    s_pr = score_fn(grid.pristine.astype(np.float64))
    s_ds = score_fn(grid.distorted.reshape(-1, d).astype(np.float64)).reshape(p, t, n_l)
    return np.concatenate([np.broadcast_to(s_pr[:, None, None], (p, t, 1)), s_ds], axis=2)


def within_srcc(scores: np.ndarray) -> np.ndarray:
    """Spearman of score vs quality (pristine best, level 5 worst) for each photo and type: [P, T]."""
    n = scores.shape[-1]
    truth = np.arange(n, 0, -1, dtype=np.float64) - 1.0  # pristine highest
    from scipy.stats import rankdata

    r = rankdata(scores, axis=-1)
    rc = r - r.mean(-1, keepdims=True)
    tc = truth - truth.mean()
    den = np.sqrt((rc * rc).sum(-1) * (tc * tc).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (rc * tc).sum(-1) / den
    return np.nan_to_num(out)


def pair_wins(scores: np.ndarray, better: int, worse: int) -> np.ndarray:
    """Close calls: 1 where column ``better`` (0 = pristine, k = level k) of ``scores`` [P, T, 1 + L]
    scores above column ``worse`` of the same photo and type, 0 below, 0.5 for a tie: [P, T]."""
    a, b = scores[..., better], scores[..., worse]
    return (a > b).astype(np.float64) + 0.5 * (a == b)


def close_call_wins(scores: np.ndarray) -> dict[str, np.ndarray]:
    """The close calls of a grid's scores [P, T, 1 + L], per photo and type [P, T]: pristine above level 1,
    pristine above level 2, and each level above the next (``steps``, the mean over k of level k above
    level k + 1)."""
    n = scores.shape[-1]
    return {"pristine_over_L1": pair_wins(scores, 0, 1), "pristine_over_L2": pair_wins(scores, 0, 2),
            "steps": np.mean([pair_wins(scores, k, k + 1) for k in range(1, n - 1)], axis=0)}


def close_calls(scores: np.ndarray) -> dict[str, float]:
    """:func:`close_call_wins` averaged over every photo and type."""
    return {name: float(w.mean()) for name, w in close_call_wins(scores).items()}


def pooled_srcc(scores: np.ndarray, levels: Sequence[int] = LEVELS) -> float:
    """Spearman over every image of the grid (each pristine once) against ``1 - level/5``."""
    from scipy.stats import spearmanr

    p, t, _ = scores.shape
    s = np.concatenate([scores[:, 0, 0], scores[:, :, 1:].reshape(-1)])
    lv = np.concatenate([np.zeros(p), np.tile(np.asarray(levels, float), p * t)])
    return float(spearmanr(s, H.level_target(lv, max(levels)))[0])


def summarise(grid: AnchorGrid, scores: np.ndarray, photos: np.ndarray | None = None,
              types: Sequence[str] | None = None) -> dict:
    """Mean per-type SRCC (within photo), per-type values and pooled SRCC over the selected cells."""
    photos = np.ones(len(grid.photos), bool) if photos is None else photos
    tidx = grid.type_index(types) if types is not None else np.arange(len(grid.types))
    sub = scores[photos][:, tidx]
    per = within_srcc(sub).mean(0)
    return {"per_type": {grid.types[i]: float(v) for i, v in zip(tidx, per, strict=True)},
            "mean": float(per.mean()), "min": float(per.min()), "pooled": pooled_srcc(sub, grid.levels)}


# --------------------------------------------------------------------------- choosing on anchors


# What select_config maximises (the mean of these anchors-only estimates): ranking over all levels
# (within a photo and pooled), unseen families, and the close calls a photo app makes most.
OBJECTIVE = ("seen_mean", "seen_pooled", "lofo_mean", "close_l1", "close_l2")


def cross_validate(grid: AnchorGrid, cfg: HeadConfig, heads: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Anchors-only estimate of a config: photo halves (seen types) and leave-one-family-out."""
    heads = QUALITY_HEADS if heads is None else heads
    a, b = grid.photo_halves()
    seen_mean, seen_pooled, close = [], [], []
    seen = [t for ts in heads.values() for t in ts]
    for fit_on, test_on in ((a, b), (b, a)):
        model = fit_quality(grid, cfg, fit_on, heads)
        s = grid_scores(grid, model.quality_logit)
        r = summarise(grid, s, test_on, seen)
        seen_mean.append(r["mean"])
        seen_pooled.append(r["pooled"])
        close.append(close_calls(s[test_on][:, grid.type_index(seen)]))
    lofo = []
    for fam, types in heads.items():
        rest = {k: v for k, v in heads.items() if k != fam}
        model = fit_quality(grid, cfg, None, rest)
        s = grid_scores(grid, model.quality_logit)
        lofo += list(summarise(grid, s, None, types)["per_type"].values())
    out = {"seen_mean": float(np.mean(seen_mean)), "seen_pooled": float(np.mean(seen_pooled)),
           "lofo_mean": float(np.mean(lofo)), "lofo_min": float(np.min(lofo)),
           "close_l1": float(np.mean([c["pristine_over_L1"] for c in close])),
           "close_l2": float(np.mean([c["pristine_over_L2"] for c in close]))}
    out["objective"] = float(np.mean([out[k] for k in OBJECTIVE]))
    return out


def select_config(grid: AnchorGrid, candidates: Sequence[HeadConfig] = DEFAULT_CANDIDATES,
                  heads: dict[str, tuple[str, ...]] | None = None) -> tuple[HeadConfig, list[dict]]:
    """The candidate with the best anchors-only objective (the mean of :data:`OBJECTIVE`: seen per-type
    SRCC, seen pooled SRCC, leave-one-family-out per-type SRCC, and the close calls pristine > level 1
    and pristine > level 2 on the other half of the photos); returns it and the whole table."""
    table = []
    for cfg in candidates:
        table.append({**cfg.to_dict(), **cross_validate(grid, cfg, heads)})
    best = max(range(len(table)), key=lambda i: (round(table[i]["objective"], 6), -i))
    return candidates[best], table


def to_heads(model: QualityModel, cfg: HeadConfig, anchors_meta: dict) -> list[Head]:
    """Pack heads: one linear head per family, then the ``quality`` combine head.

    With explanation heads, those take the family names (what ``--explain`` shows and names the
    ``reason`` from) and the heads ``quality`` averages are named ``quality.<family>``.
    """
    def named(h: FittedHead) -> str:
        return part_name(h.name) if model.explain else h.name

    out = []
    for h in model.families:
        out.append(Head(named(h), None, None, h.scale, "levels", {"method": cfg.kind, **cfg.to_dict()},
                        {**anchors_meta, "types": list(QUALITY_HEADS.get(h.name, ()))}, kind="linear",
                        bias=h.bias, weight=h.weight.astype(np.float32)))
    explain_cfg = {"method": model.explain_cfg.kind, **model.explain_cfg.to_dict()} if model.explain else {}
    for h in model.explain:
        out.append(Head(h.name, None, None, h.scale, "levels", explain_cfg,
                        {**anchors_meta, "types": list(QUALITY_HEADS.get(h.name, ()))}, kind="linear",
                        bias=h.bias, weight=h.weight.astype(np.float32), explain=True))
    combine_cfg = {"method": "combine", **cfg.to_dict(), "calibration": QUALITY_CALIBRATION}
    out.append(Head(OVERALL_HEAD, None, None, model.scale, "levels", combine_cfg, dict(anchors_meta),
                    kind="combine", bias=model.bias, combine={"rule": model.rule, "of": [named(h) for h in model.families]}))
    return out
