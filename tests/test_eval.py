"""quasar.eval: metrics, dataset readers on generated fixtures in the published layouts, and
``quasar evaluate`` end to end with a fake scorer (no model, no runtime needed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
import scipy.io
from scipy import stats

from quasar.errors import QuasarError
from quasar.eval import cli as eval_cli
from quasar.eval.datasets import DATASETS, PAPER_TABLE1, LabeledImage, canonical_name, load_dataset, read_csv
from quasar.eval.evaluate import DirectionWarning, evaluate, score_labeled
from quasar.eval.metrics import bootstrap_ci, bootstrap_interval, fit_logistic, krcc, logistic4, plcc, srcc

# ------------------------------------------------------------------------------------------
# metrics


def test_perfect_monotone_and_reversed_keep_direction():
    x = np.linspace(-2, 3, 50)
    y = x**3 + 2  # monotone, far from linear: rank metrics are exactly 1
    for fn in (srcc, krcc):
        assert fn(x, y) == pytest.approx(1.0, abs=1e-12)
        assert fn(-x, y) == pytest.approx(-1.0, abs=1e-12)  # signed: no abs()
    y = 0.5 * x + 3  # PLCC is 1 for an (affine, hence logistic-representable) exact relation
    assert plcc(x, y) == pytest.approx(1.0, abs=1e-6)
    assert plcc(-x, y) == pytest.approx(-1.0, abs=1e-6)


def test_metrics_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    y[:20] = np.round(y[:20])  # some ties
    assert srcc(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert krcc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert plcc(x, y, fit="linear") == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    # the logistic mapping can only help a monotone relation, and never flips the sign
    assert plcc(x, y) >= plcc(x, y, fit="linear") - 1e-3
    assert plcc(-x, y) == pytest.approx(-plcc(x, y), abs=1e-9)


def test_plcc_of_logistic_transformed_score_is_one():
    rng = np.random.default_rng(1)
    x = rng.uniform(-40, 60, size=500)  # arbitrary model scale
    mos = logistic4(x, 4.5, 1.2, 10.0, 8.0)
    assert stats.pearsonr(x, mos).statistic < 0.97
    assert plcc(x, mos) == pytest.approx(1.0, abs=1e-6)
    params = fit_logistic(x, mos)
    assert np.allclose(params, [4.5, 1.2, 10.0, 8.0], rtol=1e-3, atol=1e-3)


def test_plcc_near_linear_data_is_fast_and_close_to_pearson():
    rng = np.random.default_rng(2)
    x = rng.normal(size=2000)
    y = x + 0.1 * rng.normal(size=2000)
    assert plcc(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-3)


def test_degenerate_input_is_nan_and_mismatch_is_error():
    assert np.isnan(srcc([1, 1, 1, 1], [1, 2, 3, 4]))
    assert np.isnan(plcc([1, 2], [2, 1]))
    assert np.isnan(krcc([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError):
        srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        srcc([1, np.nan, 3], [1, 2, 3])


def _noisy(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, x + rng.normal(size=n)


def test_bootstrap_ci_contains_estimate_and_narrows_with_n():
    widths = []
    for n in (60, 2000):
        x, y = _noisy(n)
        low, high = bootstrap_ci(srcc, x, y, n=300, seed=0)
        assert low <= srcc(x, y) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3
    x, y = _noisy(200)
    assert bootstrap_ci(krcc, x, y, n=100, seed=3) == bootstrap_ci(krcc, x, y, n=100, seed=3)
    low, high = bootstrap_ci(plcc, x, y, n=100)
    assert low <= plcc(x, y) <= high


def test_grouped_bootstrap_resamples_groups():
    # 20 photos x 10 distortions; a per-photo offset shared by its images makes images dependent
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(20), 10)
    offset = rng.normal(size=20)[groups] * 2
    x = rng.normal(size=200) + offset
    y = x + rng.normal(size=200) * 1.5 - 2 * offset
    lo_i, hi_i = bootstrap_ci(srcc, x, y, n=300)
    lo_g, hi_g = bootstrap_ci(srcc, x, y, n=300, groups=groups)
    assert lo_g <= srcc(x, y) <= hi_g
    assert hi_g - lo_g > hi_i - lo_i  # dependence ignored -> too narrow
    with pytest.raises(ValueError):
        bootstrap_ci(srcc, x, y, groups=np.zeros(200))
    with pytest.raises(ValueError):
        bootstrap_ci(srcc, x, y, groups=groups[:10])


def test_bootstrap_interval_of_any_statistic_is_the_percentile_bootstrap():
    """The benchmarks' per-photo statistics use the same resampling: units drawn with replacement from a
    generator seeded with ``seed``, the (alpha/2, 1 - alpha/2) percentiles of the resampled values."""
    per_photo = np.random.default_rng(1).normal(0.8, 0.1, size=(30, 4))

    def stat(idx):
        return float(per_photo[idx].mean())

    rng = np.random.default_rng(7)
    manual = [stat(rng.integers(0, 30, 30)) for _ in range(200)]
    assert bootstrap_interval(stat, 30, n=200, seed=7) == pytest.approx(tuple(np.percentile(manual, [2.5, 97.5])))
    x, y = _noisy(100)
    assert bootstrap_ci(srcc, x, y, n=50, seed=2) == bootstrap_interval(lambda i: srcc(x[i], y[i]), 100, n=50, seed=2)
    assert all(np.isnan(bootstrap_interval(lambda i: float("nan"), 10, n=5)))  # undefined resamples dropped


# ------------------------------------------------------------------------------------------
# dataset fixtures in the published layouts


def _img(path, value: int = 128) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.full((8, 12, 3), value, np.uint8)
    assert cv2.imwrite(str(path), img), path


def _write(path, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def make_koniq(root, n=4):
    rows = ['"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"']
    for i in range(n):
        name = f"{1000 + i}.jpg"
        _img(root / "1024x768" / name, (20 * i) % 256)
        rows.append(f'"{name}",0,1,2,3,4,10,{1.5 + 0.5 * i},0.7,{30 + 10 * i}')
    _write(root / "koniq10k_scores_and_distributions.csv", "\n".join(rows) + "\n")


def make_kadid(root):
    rows = ["dist_img,ref_img,dmos,var"]
    for r in (1, 2):
        for level in (1, 2):
            name = f"I{r:02d}_01_{level:02d}.png"
            _img(root / "images" / name)
            rows.append(f"{name},I{r:02d}.png,{5 - level},0.5")
    _write(root / "dmos.csv", "\n".join(rows) + "\n")


def make_tid2013(root):
    lines = []
    for r in (1, 2):
        for level in (1, 2):
            listed = f"i{r:02d}_01_{level}.bmp"
            on_disk = listed.upper() if level == 1 else listed  # the list's case differs from disk
            _img(root / "distorted_images" / on_disk)
            lines.append(f"{6 - level}.{r}1429 {listed}")
    _write(root / "mos_with_names.txt", "\n".join(lines) + "\n")


def make_livec(root):
    names = [f"t{i}.bmp" for i in range(1, 8)] + ["10.bmp", "100.bmp", "1000.JPG"]
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = n
        _img(root / "Images" / ("trainingImages" if i < 7 else "") / n)
    os.makedirs(root / "Data")
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    mos = np.linspace(10, 90, len(names))[None, :]
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    return names, mos.ravel()


def make_spaq(root):
    names, mos = ["00001.jpg", "00002.jpg", "00003.jpg"], [48.86, 62.5, 77.25]
    for n in names:
        _img(root / "TestImage" / n)
    try:
        import openpyxl
    except ImportError:
        rows = ["Image name,MOS,Brightness"] + [f"{n},{m},50" for n, m in zip(names, mos, strict=True)]
        _write(root / "Annotations" / "MOS.csv", "\n".join(rows) + "\n")
    else:
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(["Image name", "MOS", "Brightness"])
        for n, m in zip(names, mos, strict=True):
            ws.append([n, m, 50])
        os.makedirs(root / "Annotations")
        wb.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    return names, mos


def make_pieapp(root):
    for ref in ("ref_A", "ref_B"):
        rows = ["reference image, distorted image, score for distorted image"]
        rows.append(f"{ref}.png, {ref}.png, 0")  # the reference itself, skipped
        for k, score in enumerate((0.5, 2.5)):
            name = f"distort_{ref[4:]}_blur_inter_{k}.png"
            _img(root / "distorted_images" / "test" / ref / name)
            rows.append(f"{ref}.png, {name}, {score}")
        _write(root / "labels" / "test" / f"{ref}_per_image_score.csv", "\n".join(rows) + "\n")
        _write(root / "labels" / "test" / f"{ref}_pairwise_labels.csv", "x\n")


def make_ava(root):
    lines = [
        "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396",
        "2 953958 10 7 15 26 26 21 10 8 1 2 1 1396 0",
        "3 954184 0 0 0 0 0 0 0 0 0 0 0 0 1396",  # no votes: skipped
    ]
    for line in lines:
        _img(root / "images" / f"{line.split()[1]}.jpg")
    _write(root / "AVA.txt", "\n".join(lines) + "\n")


def make_aadb(root):
    for split, names in (("Train", ["a_1_b.jpg"]), ("Test", ["farm1_1_x_b.jpg", "farm1_2_y_b.jpg"])):
        lines = []
        for i, n in enumerate(names):
            _img(root / "datasetImages_originalSize" / n)
            lines.append(f"{n} {0.2 + 0.3 * i}")
        _write(root / "imgListFiles_label" / f"imgList{split}Regression_score.txt", "\n".join(lines) + "\n")


def make_tad66k(root):
    for split, names in (("train", ["1.jpg"]), ("test", ["2.jpg", "3.jpg"])):
        rows = ["image,score"]
        for i, n in enumerate(names):
            _img(root / "images" / n)
            rows.append(f"{n},{5 + i}")
        _write(root / "labels" / "merge" / f"{split}.csv", "\n".join(rows) + "\n")


def _exists(items):
    return all(os.path.isfile(it.path) for it in items)


def test_read_koniq10k(tmp_path):
    make_koniq(tmp_path)
    items = DATASETS["koniq10k"](tmp_path)
    assert [it.mos for it in items] == [1.5, 2.0, 2.5, 3.0]
    assert items[0].path == str(tmp_path / "1024x768" / "1000.jpg") and _exists(items)
    assert all(it.group is None for it in items)
    assert [it.mos for it in DATASETS["koniq10k"].read(tmp_path, score="MOS_zscore")] == [30, 40, 50, 60]


def test_read_kadid10k(tmp_path):
    make_kadid(tmp_path)
    items = DATASETS["kadid10k"](tmp_path)
    assert len(items) == 4 and _exists(items)
    assert [it.group for it in items] == ["I01.png", "I01.png", "I02.png", "I02.png"]
    assert [it.mos for it in items] == [4.0, 3.0, 4.0, 3.0]


def test_read_tid2013_resolves_case(tmp_path):
    make_tid2013(tmp_path)
    items = DATASETS["tid2013"](tmp_path)
    assert len(items) == 4 and _exists(items)
    assert os.path.basename(items[0].path) == "I01_01_1.BMP"
    assert items[0].mos == pytest.approx(5.11429)
    assert [it.group for it in items] == ["i01", "i01", "i02", "i02"]


def test_read_livec_mat_keeps_training_images(tmp_path):
    names, mos = make_livec(tmp_path)
    items = DATASETS["livec"](tmp_path)
    assert len(items) == len(names) and _exists(items)
    assert items[0].path == str(tmp_path / "Images" / "trainingImages" / "t1.bmp")
    assert items[7].path == str(tmp_path / "Images" / "10.bmp")
    assert np.allclose([it.mos for it in items], mos)


def test_read_spaq(tmp_path):
    names, mos = make_spaq(tmp_path)
    items = DATASETS["spaq"](tmp_path)
    assert [os.path.basename(it.path) for it in items] == names and _exists(items)
    assert [it.mos for it in items] == pytest.approx(mos)


def test_spaq_xlsx_without_openpyxl_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # "import openpyxl" now fails
    os.makedirs(tmp_path / "TestImage")
    _write(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx", "not read")
    with pytest.raises(QuasarError, match="openpyxl"):
        DATASETS["spaq"](tmp_path)


def test_read_pieapp_negates_error_scores(tmp_path):
    make_pieapp(tmp_path)
    items = DATASETS["pieapp"](tmp_path)
    assert len(items) == 4 and _exists(items)
    assert [it.mos for it in items] == [-0.5, -2.5, -0.5, -2.5]
    assert [it.group for it in items] == ["ref_A", "ref_A", "ref_B", "ref_B"]
    assert items[0].path == str(tmp_path / "distorted_images" / "test" / "ref_A" / "distort_A_blur_inter_0.png")


def test_read_ava_weighted_mean(tmp_path):
    make_ava(tmp_path)
    items = DATASETS["ava"](tmp_path)
    assert len(items) == 2 and _exists(items)
    counts = np.array([0, 1, 5, 17, 38, 36, 15, 6, 5, 1])
    assert items[0].mos == pytest.approx((np.arange(1, 11) * counts).sum() / counts.sum())
    assert items[0].path == str(tmp_path / "images" / "953619.jpg")


def test_read_aadb_splits(tmp_path):
    make_aadb(tmp_path)
    items = DATASETS["aadb"](tmp_path)
    assert [it.mos for it in items] == pytest.approx([0.2, 0.5]) and _exists(items)
    assert len(DATASETS["aadb"].read(tmp_path, split="all")) == 3
    with pytest.raises(QuasarError):
        DATASETS["aadb"].read(tmp_path, split="bogus")


def test_read_tad66k(tmp_path):
    make_tad66k(tmp_path)
    items = DATASETS["tad66k"](tmp_path)
    assert [it.mos for it in items] == [5.0, 6.0] and _exists(items)
    assert len(DATASETS["tad66k"].read(tmp_path, split="all")) == 3


def test_read_csv_relative_to_csv_or_root(tmp_path):
    _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "b.png")
    _write(tmp_path / "labels.csv", "Path,MOS\nimgs/a.png,3.5\nimgs/b.png,1\n")
    items = read_csv(tmp_path / "labels.csv")
    assert [it.mos for it in items] == [3.5, 1.0] and _exists(items)
    _write(tmp_path / "other" / "labels.csv", "path,mos,group\na.png,2,x\nb.png,1,y\n")
    items = read_csv(tmp_path / "other" / "labels.csv", root=tmp_path / "imgs")
    assert _exists(items) and [it.group for it in items] == ["x", "y"]
    _write(tmp_path / "bad.csv", "file,score\na.png,1\n")
    with pytest.raises(QuasarError, match="'path'"):
        read_csv(tmp_path / "bad.csv")


EXPECTED_FILE = {
    "koniq10k": "koniq10k_scores_and_distributions.csv",
    "kadid10k": "dmos.csv",
    "tid2013": "mos_with_names.txt",
    "livec": "AllImages_release.mat",
    "spaq": "TestImage",
    "pieapp": os.path.join("labels", "test"),
    "ava": "AVA.txt",
    "aadb": "datasetImages_originalSize",
    "tad66k": "images",
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_files_name_root_and_expected_file(tmp_path, name):
    with pytest.raises(QuasarError) as e:
        DATASETS[name](tmp_path)
    assert str(tmp_path) in str(e.value) and EXPECTED_FILE[name] in str(e.value)
    with pytest.raises(QuasarError, match="not a directory"):
        DATASETS[name](tmp_path / "nowhere")


def test_missing_label_file_when_images_exist(tmp_path):
    os.makedirs(tmp_path / "1024x768")
    with pytest.raises(QuasarError, match="koniq10k_scores_and_distributions.csv"):
        DATASETS["koniq10k"](tmp_path)
    os.makedirs(tmp_path / "images")
    with pytest.raises(QuasarError, match=r"labels.merge.test\.csv"):
        DATASETS["tad66k"](tmp_path)


def test_registry_names_and_table1():
    assert canonical_name("KonIQ-10k") == "koniq10k"
    assert canonical_name("LIVE_Challenge") == canonical_name("LIVEitW") == "livec"
    assert canonical_name("nope") is None
    assert set(PAPER_TABLE1) == set(DATASETS)
    assert PAPER_TABLE1["ava"] is None
    assert PAPER_TABLE1["tid2013"] == {"quasar": 0.627, "clip_iqa": 0.503}
    with pytest.raises(QuasarError, match="unknown dataset"):
        load_dataset("imagenet", "/tmp")
    with pytest.raises(QuasarError, match="--root"):
        load_dataset("tid2013", None)


# ------------------------------------------------------------------------------------------
# evaluate with a fake scorer


@dataclass
class Rec:
    source: str
    scores: dict = field(default_factory=dict)
    error: str | None = None


class FakeScorer:
    """Scores = a function of the file's MOS (looked up by path); returns records reversed."""

    def __init__(self, by_path, fail=(), head="quality"):
        self.by_path, self.fail, self.head = by_path, set(fail), head
        self.calls = []

    def score_paths(self, paths):
        self.calls.append(list(paths))
        out = [
            Rec(p, error="cannot decode") if p in self.fail else Rec(p, {self.head: self.by_path[p], "other": 0.0})
            for p in paths
        ]
        return reversed(out)


def _items(n=40, seed=0, groups=False):
    rng = np.random.default_rng(seed)
    mos = rng.uniform(1, 5, n)
    return [LabeledImage(f"/data/{i}.png", float(m), f"g{i % 5}" if groups else None) for i, m in enumerate(mos)]


def test_score_items_matches_by_source_and_counts_failures():
    items = _items(10)
    scorer = FakeScorer({it.path: it.mos * 2 for it in items}, fail={items[3].path})
    pred, failures = score_labeled(scorer, items, "quality")
    assert np.isnan(pred[3]) and np.allclose(np.delete(pred, 3), [it.mos * 2 for i, it in enumerate(items) if i != 3])
    assert failures == [{"path": items[3].path, "error": "cannot decode"}]
    with pytest.raises(QuasarError, match="no head 'aesthetics'"):
        score_labeled(scorer, items, "aesthetics")


def test_evaluate_reports_and_warns_on_reversed_direction():
    items = _items(60, groups=True)
    good = FakeScorer({it.path: it.mos for it in items})
    report = evaluate(good, items, bootstrap=50)
    assert report.metrics["srcc"].value == pytest.approx(1.0) and report.grouped
    assert report.n_scored == 60 and report.n_failed == 0 and report.direction_warning is None
    bad = FakeScorer({it.path: -it.mos for it in items})
    with pytest.warns(DirectionWarning, match="negative"):
        report = evaluate(bad, items, bootstrap=0)
    assert report.metrics["srcc"].value == pytest.approx(-1.0)  # reported as is
    assert report.metrics["plcc"].value < 0 and np.isnan(report.metrics["srcc"].low)
    json.dumps(report.to_dict(), allow_nan=False)  # nan -> null


# ------------------------------------------------------------------------------------------
# quasar evaluate, end to end


def _parser():
    parser = argparse.ArgumentParser(prog="quasar")
    eval_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _fake_factory(monkeypatch, fail=(), transform=lambda mos, i: mos + 0.3 * np.sin(i)):
    seen = {}

    def factory(model, backend="auto", batch_size=None, workers=None):
        seen["model"] = model

        class ByMos(FakeScorer):
            def score_paths(self, paths):
                self.by_path = {p: transform(MOS[p], i) for i, p in enumerate(paths)}
                return super().score_paths(paths)

        return ByMos({}, fail=fail)

    MOS = {}
    monkeypatch.setattr(eval_cli, "make_scorer", factory)
    return seen, MOS


def test_evaluate_command_end_to_end_prints_table1(tmp_path, monkeypatch, capsys):
    root = tmp_path / "koniq"
    make_koniq(root, n=30)
    seen, mos = _fake_factory(monkeypatch, fail={str(root / "1024x768" / "1005.jpg")})
    mos.update({it.path: it.mos for it in DATASETS["koniq10k"](root)})
    out = tmp_path / "report.json"
    args = _parser().parse_args(
        ["evaluate", "--model", "default", "--dataset", "KonIQ-10k", "--root", str(root),
         "--bootstrap", "100", "-o", str(out)]
    )
    assert args.func(args) == 0
    assert seen["model"] is None  # "default" -> the runtime's default model
    text = capsys.readouterr()
    assert "KonIQ-10k: scored 29 of 30 images, 1 failed" in text.out
    assert "Table 1 SRCC (paper): QUASAR 0.688, CLIP-IQA 0.695; measured" in text.out
    for name in ("SRCC", "PLCC", "KRCC"):
        assert name in text.out
    assert "1005.jpg: cannot decode" in text.err
    doc = json.loads(out.read_text())
    assert doc["dataset"] == "koniq10k" and doc["n_scored"] == 29 and doc["n_failed"] == 1
    assert doc["paper_table1_srcc"] == {"quasar": 0.688, "clip_iqa": 0.695}
    srcc_ = doc["metrics"]["srcc"]
    assert srcc_["low"] <= srcc_["value"] <= srcc_["high"] and srcc_["value"] > 0.9


def test_evaluate_command_csv_limit_and_reversed_warning(tmp_path, monkeypatch, capsys):
    rows = ["path,mos"]
    for i in range(20):
        _img(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{i}")
    _write(tmp_path / "set.csv", "\n".join(rows) + "\n")
    seen, mos = _fake_factory(monkeypatch, transform=lambda m, i: -m)
    mos.update({str(tmp_path / f"{i}.png"): float(i) for i in range(20)})
    args = _parser().parse_args(
        ["evaluate", "--model", "m.onnx", "--dataset", str(tmp_path / "set.csv"), "--limit", "8", "--bootstrap", "0"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI prints the direction warning, it does not raise it
        assert args.func(args) == 0
    text = capsys.readouterr()
    assert seen["model"] == "m.onnx"
    assert "scored 8 of 8 images, 0 failed" in text.out and "Table 1" not in text.out
    assert "SRCC   -1.0000" in text.out
    assert "warning: SRCC is negative" in text.err


def test_evaluate_command_errors(tmp_path, monkeypatch, capsys):
    _fake_factory(monkeypatch)
    parser = _parser()
    with pytest.raises(QuasarError, match="unknown dataset"):
        args = parser.parse_args(["evaluate", "--dataset", "imagenet", "--root", str(tmp_path)])
        args.func(args)
    with pytest.raises(QuasarError, match="mos_with_names.txt"):
        args = parser.parse_args(["evaluate", "--dataset", "tid2013", "--root", str(tmp_path)])
        args.func(args)


def test_quasar_main_reports_bad_root_as_one_line(tmp_path, capsys):
    from quasar.cli import main

    rc = main(["evaluate", "--dataset", "kadid10k", "--root", str(tmp_path / "missing")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("quasar: error: KADID-10k: dataset root") and err.count("\n") == 1


def test_runtime_style_scorer_is_adapted():
    items = _items(5)

    class IterScorer:  # quasar.runtime.Scorer's shape: score_iter(inputs), results in input order
        def score_iter(self, inputs):
            return (Rec(p, {"quality": float(i)}) for i, p in enumerate(inputs))

    pred, failures = score_labeled(IterScorer(), items, "quality")
    assert pred.tolist() == [0, 1, 2, 3, 4] and failures == []
    with pytest.raises(TypeError):
        score_labeled(object(), items, "quality")


def test_evaluate_with_the_real_runtime_and_a_tiny_model(tmp_path, capsys):
    pytest.importorskip("onnx")
    testing = pytest.importorskip("quasar.testing")
    root = tmp_path / "tid"
    make_tid2013(root)
    os.remove(root / "distorted_images" / "i02_01_2.bmp")
    model = testing.write_tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "r.json"
    args = _parser().parse_args(
        ["evaluate", "--model", model, "--dataset", "tid2013", "--root", str(root), "--bootstrap", "20",
         "--workers", "1", "-o", str(out)]
    )
    assert args.func(args) == 0
    text = capsys.readouterr()
    assert "TID2013: scored 3 of 4 images, 1 failed" in text.out
    assert "Table 1 SRCC (paper): QUASAR 0.627, CLIP-IQA 0.503" in text.out
    assert "i02_01_2.bmp: " in text.err  # the runtime's reason follows
    assert json.loads(out.read_text())["grouped"] is True


def test_unknown_head_fails_before_scoring():
    scorer = FakeScorer({})
    scorer.heads = ("quality", "aesthetics")
    with pytest.raises(QuasarError, match="no head 'sharpness'"):
        evaluate(scorer, _items(5), head="sharpness")
    assert scorer.calls == []
