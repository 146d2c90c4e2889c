"""``quasar cull``: grouping, ranking, the time window, views, placing files, and the whole command on
bursts made from real held-out photos."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from quasar.cull.capture import capture_time, parse_exif_time
from quasar.cull.group import group, rank
from quasar.cull.run import CullResult, CullRow, place
from quasar.cull.views import LAYOUTS, VIEWS, apply_view, default_threshold, view_columns
from quasar.errors import QuasarError


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_group_links_by_threshold_and_numbers_groups_in_input_order():
    x = _unit([[1, 0, 0], [0, 1, 0], [0.99, 0.1, 0], [0, 0.98, 0.2], [0, 0, 1]])
    assert group(x, 0.95).tolist() == [0, 1, 0, 1, 2]
    assert group(x, 0.9999).tolist() == [0, 1, 2, 3, 4]
    assert group(x, -1.0).tolist() == [0] * 5


def test_group_is_single_linkage():
    """a~b and b~c join a and c although a and c differ: a drifting burst stays one group."""
    a, b, c = _unit([1, 0]), _unit([1, 0.45]), _unit([1, 0.9])
    assert float(a @ c) < 0.9 < min(float(a @ b), float(b @ c))
    assert group(np.stack([a, c, b]), 0.9).tolist() == [0, 0, 0]


def test_window_limits_comparisons_and_untimed_photos_meet_each_other():
    x = _unit([[1, 0], [1, 0.01], [1, 0.02], [1, 0.03], [1, 0.04]])
    times = [0.0, 1.0, 100.0, None, None]
    assert group(x, 0.9).tolist() == [0, 0, 0, 0, 0]
    assert group(x, 0.9, times, window=5.0).tolist() == [0, 0, 1, 2, 2]
    assert group(x, 0.9, times, window=None).tolist() == [0, 0, 0, 0, 0]  # no window: all pairs


def test_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(1)
    centres = _unit(rng.normal(size=(30, 16)))
    x = _unit(np.repeat(centres, 5, axis=0) + rng.normal(0, 0.05, (150, 16)))
    whole = group(x, 0.8)
    import quasar.cull.group as g

    monkeypatch.setattr(g, "BLOCK", 7)
    assert np.array_equal(group(x, 0.8), whole)
    assert len(np.unique(whole)) == 30


def test_rank_best_first_ties_in_input_order_nan_last():
    labels = np.array([0, 0, 1, 0, 1, 1])
    q = np.array([0.5, 0.9, np.nan, 0.9, 0.2, 0.3])
    assert rank(labels, q).tolist() == [2, 0, 2, 1, 1, 0]


def test_parse_exif_time():
    t = parse_exif_time("2024:06:01 09:00:00", "25")
    assert t == pytest.approx(parse_exif_time("2024:06:01 09:00:00") + 0.25)
    assert parse_exif_time("2024:06:01 09:00:01") - parse_exif_time("2024:06:01 09:00:00") == 1
    assert parse_exif_time("    :  :     :  :  ") is None and parse_exif_time(None) is None
    assert capture_time("/nonexistent.jpg") is None


def test_views_and_thresholds():
    dim = LAYOUTS["effnet-lite0+taps"][-1][2]
    assert dim == 4198
    assert view_columns("effnet-lite0+taps", "full", dim) is None
    deep = view_columns("effnet-lite0+taps", "deep", dim)
    assert deep.tolist() == list(range(1638, 2918))
    with pytest.raises(QuasarError, match="block layout"):
        view_columns("dinov2-s14", "deep", 384)
    with pytest.raises(QuasarError, match="--threshold"):
        default_threshold("dinov2-s14", "full")
    x = apply_view(np.ones((2, dim)), deep)
    assert x.shape == (2, 1280) and np.allclose(np.linalg.norm(x, axis=1), 1)
    for view in VIEWS:
        assert 0 < default_threshold("effnet-lite0+taps", view) < 1


@pytest.mark.slow
def test_layout_and_embedding_match_the_torch_encoder(photos):
    """The recorded block layout is TappedBackbone's, and the runtime's embedding is the encoder's unit output."""
    torch = pytest.importorskip("torch")
    from quasar.encoders.pretrained import build_encoder
    from quasar.encoders.taps import TappedBackbone
    from quasar.runtime import Scorer

    enc = build_encoder("effnet-lite0+taps")
    with Scorer(workers=1, embeddings=True) as s:
        rec = s.score([photos[0].path])[0]
        x = s.preprocess(photos[0].path)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(enc(torch.from_numpy(x[None])).float(), dim=-1)[0].numpy()
    backbone = next(m for m in enc.modules() if isinstance(m, TappedBackbone))
    assert tuple(tuple(b) for b in backbone.layout) == LAYOUTS["effnet-lite0+taps"]
    assert np.abs(rec.embedding - ref).max() < 5e-4 and float(rec.embedding @ ref) > 0.99999


def _result(tmp_path, names_keep):
    rows = []
    for i, (name, keep) in enumerate(names_keep):
        sub = tmp_path / f"d{i}"
        sub.mkdir()
        (sub / name).write_bytes(b"x" * (i + 1))
        rows.append(CullRow(str(sub / name), {"quality": 0.5}, group=0, rank=i, keep=keep))
    return CullResult(rows, ("quality",), "deep", 0.7, None)


@pytest.mark.parametrize("how", ["symlink", "hardlink", "copy", "move"])
def test_place_keeps_names_and_avoids_collisions(tmp_path, how):
    result = _result(tmp_path, [("a.jpg", True), ("a.jpg", True), ("b.jpg", False)])
    counts = place(result, str(tmp_path / "keep"), str(tmp_path / "drop"), how)
    assert counts == {"kept": 2, "dropped": 1, "present": 0}
    assert sorted(os.listdir(tmp_path / "keep")) == ["a-1.jpg", "a.jpg"]
    assert os.listdir(tmp_path / "drop") == ["b.jpg"]
    assert (tmp_path / "keep" / "a-1.jpg").read_bytes() == b"xx"
    assert os.path.exists(result.rows[0].path) == (how != "move")
    if how != "move":  # placing again finds every photo already there (issue 21: no a-2.jpg, no b-1.jpg)
        assert place(result, str(tmp_path / "keep"), str(tmp_path / "drop"), how) == {
            "kept": 0, "dropped": 0, "present": 3}
        assert sorted(os.listdir(tmp_path / "keep")) == ["a-1.jpg", "a.jpg"]


@pytest.mark.slow
def test_cull_command_on_bursts_of_real_photos(heldout_photos, tmp_path):
    """Six held-out photos -> bursts with one clean frame each -> quasar cull: groups match the
    bursts, each kept frame is the burst's clean one (blur/noise here, where the quality head is
    reliable), the keepers are linked, and a second run writes the same file."""
    import sys
    from pathlib import Path

    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from burst_sets import make_burst, write_frames

    frames = []
    for p in heldout_photos[:6]:
        img = cv2.cvtColor(cv2.imread(p.path), cv2.COLOR_BGR2RGB)
        burst = make_burst(img, p.name, size=3)
        frames += [f for f in burst]
    paths = write_frames(frames, str(tmp_path / "roll"))
    from quasar.cli import main

    out = tmp_path / "cull.csv"
    args = ["cull", str(tmp_path / "roll"), "-o", str(out), "--window", "10", "--keep-to", str(tmp_path / "keep"),
            "--report", str(tmp_path / "cull.html"), "-q"]
    assert main(args) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(frames)
    truth = {path: f for path, f in zip(paths, frames, strict=True)}
    groups: dict[str, set[str]] = {}
    for r in rows:
        groups.setdefault(r["group"], set()).add(truth[r["path"]].burst)
        assert r["capture_time"]
    assert all(len(b) == 1 for b in groups.values())  # no group mixes two photos
    assert len(groups) == 6  # and each burst is one group
    kept = [r for r in rows if r["keep"] == "1"]
    assert len(kept) == 6 and len(os.listdir(tmp_path / "keep")) == 6
    blur_noise = [r for r in kept if all(
        truth[o["path"]].degradation.split(":")[0] in ("", "gaussian_blur", "lens_blur", "motion_blur", "white_noise")
        for o in rows if o["group"] == r["group"])]
    assert all(truth[r["path"]].keeper for r in blur_noise)
    assert (tmp_path / "cull.html").stat().st_size > 10_000
    first = out.read_text()
    assert main(args[:6] + ["-q"]) == 0 and out.read_text() == first


def test_mild_bursts_degrade_every_other_frame_at_level_one():
    """burst_eval's close-call set: the same bursts as the default ones (same keeper, same kinds of
    defect), every degraded frame at level 1."""
    from burst_sets import make_burst

    img = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    for name in ("a", "b", "c"):
        normal, mild = make_burst(img, name, size=5), make_burst(img, name, size=5, mild=True)
        assert [f.keeper for f in mild] == [f.keeper for f in normal] and sum(f.keeper for f in mild) == 1
        for fn, fm in zip(normal, mild, strict=True):
            assert fn.degradation.split(":")[0] == fm.degradation.split(":")[0]
            assert fm.keeper or fm.degradation.endswith(":1")
