"""Scorer and pipeline: input kinds, bad inputs in a batch, batching invariance, threads, laziness, no torch."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from fixtures_images import (
    awkward_files,
    broken_files,
    encode,
    jpeg,
    jpeg_with_orientation,
    pattern,
)

from quasar.io import files as io_files
from quasar.runtime import Scorer, ScoreRecord
from quasar.runtime.sources import iter_items

pytest.importorskip("onnx")
from quasar.testing import TINY_CROP_SPEC, write_tiny_model


@pytest.fixture(scope="module")
def tiny_crop(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("m") / "crop.onnx", spec=TINY_CROP_SPEC)


@pytest.fixture(scope="module")
def scorer(tiny):
    with Scorer(tiny, batch_size=4, workers=2) as s:
        yield s


def shapes_images(n: int = 12) -> list[np.ndarray]:
    """Images of several sizes/aspects, so a native-resolution model sees several buckets."""
    sizes = [(120, 160), (160, 120), (100, 100), (90, 200), (300, 400), (48, 48)]
    return [pattern(*sizes[i % len(sizes)], seed=i) for i in range(n)]


def assert_same(a: list[ScoreRecord], b: list[ScoreRecord], tol: float = 1e-5) -> None:
    assert [r.source for r in a] == [r.source for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.error == y.error
        for h in x.scores:
            assert abs(x.scores[h] - y.scores[h]) <= tol and abs(x.margins[h] - y.margins[h]) <= tol


# ---------------------------------------------------------------- input kinds


def test_paths_bytes_arrays_lists(scorer, tmp_path):
    img = pattern()
    p = tmp_path / "a.png"
    p.write_bytes(encode(img, ".png"))
    by_path = scorer.score(str(p))
    assert len(by_path) == 1 and by_path[0].ok and by_path[0].source == str(p)
    assert set(by_path[0].scores) == {"quality", "aesthetics"} and set(by_path[0].margins) == set(by_path[0].scores)
    (by_bytes,) = scorer.score(p.read_bytes())
    (by_array,) = scorer.score(img)
    assert by_bytes.source == "<bytes 0>" and by_array.source == "<array 0>"
    assert by_bytes.scores == pytest.approx(by_path[0].scores, abs=1e-6)
    assert by_array.scores == pytest.approx(by_path[0].scores, abs=1e-6)  # PNG is lossless
    batch = scorer.score(np.stack([img, img[::-1]]))
    assert [r.source for r in batch] == ["<array 0>", "<array 1>"]
    mixed = scorer.score([p, img, p.read_bytes()])
    assert [r.ok for r in mixed] == [True] * 3
    assert 0.0 <= mixed[0].scores["quality"] <= 1.0


def test_folders_recursive_or_not(scorer, tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.png", "sub/c.webp"):
        (tmp_path / name).write_bytes(encode(pattern(), os.path.splitext(name)[1]))
    (tmp_path / "notes.txt").write_text("not an image")
    flat = scorer.score(tmp_path)
    assert [os.path.basename(r.source) for r in flat] == ["a.png", "b.jpg"]
    deep = scorer.score(tmp_path, recursive=True)
    assert [os.path.relpath(r.source, tmp_path) for r in deep] == ["a.png", "b.jpg", os.path.join("sub", "c.webp")]
    assert all(r.ok for r in deep)


def test_unsupported_input_type(scorer):
    with pytest.raises(TypeError, match="cannot score a dict"):
        scorer.score({"a": 1})


# ---------------------------------------------------------------- bad inputs within one run


def write_zoo(d) -> dict[str, str | None]:
    """Files that must fail (value: expected reason) or must score (value: None)."""
    files = {**broken_files(), **{name: (data, None) for name, data in awkward_files().items()}}
    for name, (data, _) in files.items():
        (d / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}


def test_bad_inputs_fail_alone_and_the_rest_is_scored(scorer, tmp_path):
    expected = write_zoo(tmp_path)
    recs = scorer.score(tmp_path)
    assert sorted(os.path.basename(r.source) for r in recs) == sorted(expected)
    for r in recs:
        name = os.path.basename(r.source)
        if expected[name] is None:
            assert r.ok, (name, r.error)
            assert all(np.isfinite(v) for v in r.scores.values())
        else:
            assert not r.ok and expected[name] in r.error, (name, r.error)
            assert r.scores == {} and r.margins == {}


def test_rotated_jpeg_scores_like_its_upright_version(scorer, tmp_path):
    img = pattern(120, 160)
    upright = np.ascontiguousarray(np.rot90(img, -1))
    (a,) = scorer.score(jpeg_with_orientation(img, 6, quality=100))
    (b,) = scorer.score(jpeg(upright, quality=100))
    (c,) = scorer.score(jpeg(img, quality=100))
    assert a.scores == pytest.approx(b.scores, abs=0.02)
    assert abs(a.margins["quality"] - c.margins["quality"]) > abs(a.margins["quality"] - b.margins["quality"])


def test_decompression_bomb_limit_is_configurable(tiny, tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(jpeg(pattern(400, 500)))
    with Scorer(tiny, max_pixels=100_000) as s:
        (r,) = s.score(p)
    assert "200000" not in (r.error or "") and "over the 0.1 MP limit" in r.error


def test_permission_denied(scorer, tmp_path, monkeypatch):
    good, locked = tmp_path / "good.png", tmp_path / "locked.png"
    for p in (good, locked):
        p.write_bytes(encode(pattern(), ".png"))
    real_open = open

    def fake_open(path, *a, **k):  # root reads chmod-000 files, so simulate the OS refusing
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(io_files, "open", fake_open, raising=False)
    recs = scorer.score([good, locked])
    assert recs[0].ok and recs[1].error == "permission denied" and recs[1].source == str(locked)


def test_permission_denied_for_real(scorer, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 files stay readable (see test_permission_denied)")
    p = tmp_path / "locked.png"
    p.write_bytes(encode(pattern(), ".png"))
    p.chmod(0)
    try:
        (r,) = scorer.score(p)
        assert r.error == "permission denied"
    finally:
        p.chmod(0o644)


def test_directory_symlink_loop(scorer, tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "x.png").write_bytes(encode(pattern(), ".png"))
    (root / "a" / "b" / "y.png").write_bytes(encode(pattern(seed=1), ".png"))
    os.symlink(root, root / "a" / "b" / "loop")  # b/loop -> root: an ancestor
    os.symlink(root / "a", root / "again")  # a second route to a/ (not a loop): listed once
    recs = scorer.score(root, recursive=True)
    scored = sorted(os.path.relpath(r.source, root) for r in recs if r.ok)
    errors = [r for r in recs if not r.ok]
    assert scored == [os.path.join("a", "b", "y.png"), "x.png"]
    assert len(errors) == 1 and "symlink loop" in errors[0].error and errors[0].source.endswith("loop")


def test_path_vanishes_between_listing_and_decoding(scorer, tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(encode(pattern(seed=i), ".png"))
    listed = list(iter_items(tmp_path))
    os.remove(tmp_path / "3.png")
    recs = scorer.score(listed)
    assert [r.ok for r in recs] == [True, True, True, False, True, True]
    assert recs[3].error == "file not found" and recs[3].source.endswith("3.png")


def test_every_named_path_gets_a_row(scorer, tmp_path):
    """A missing file, an empty folder and a folder named like an image each get an error row."""
    (tmp_path / "d").mkdir()
    (tmp_path / "photos.jpg" / "sub").mkdir(parents=True)
    (tmp_path / "photos.jpg" / "sub" / "a.png").write_bytes(encode(pattern(), ".png"))
    recs = scorer.score([tmp_path / "nope.jpg", str(tmp_path / "d") + "/", tmp_path / "photos.jpg"])
    assert [r.error.split(";")[0] for r in recs] == ["file not found"] + ["is a directory with no image files in it"] * 2
    assert recs[2].source == str(tmp_path / "photos.jpg") and "use -r" in recs[2].error
    (deep,) = scorer.score(tmp_path / "photos.jpg", recursive=True)  # with -r its images are scored
    assert deep.ok and deep.source.endswith("a.png")


# ---------------------------------------------------------------- batching


@pytest.mark.parametrize("which", ["tiny", "tiny_crop"])
def test_scores_do_not_depend_on_batch_composition(which, request):
    model = request.getfixturevalue(which)
    imgs = shapes_images(12)
    with Scorer(model, batch_size=1, workers=1) as s1, Scorer(model, batch_size=8, workers=2) as s8:
        alone = [s1.score(im)[0] for im in imgs]
        together = s8.score(imgs)
        reversed_ = s8.score(imgs[::-1])[::-1]
    relabel = [ScoreRecord(f"<array {i}>", r.scores, r.margins, r.error) for i, r in enumerate(alone)]
    assert_same(relabel, together)
    assert_same(together, [ScoreRecord(f"<array {i}>", r.scores, r.margins, r.error) for i, r in enumerate(reversed_)])


def test_buckets_hold_one_shape_and_results_keep_input_order(tiny):
    with Scorer(tiny, batch_size=4, workers=2, window=6) as s:
        seen = []
        real_submit = s.backend.submit

        def spy(batch):
            seen.append(batch.shape)
            return real_submit(batch)

        s.backend.submit = spy
        imgs = shapes_images(30)
        recs = s.score(imgs)
    assert [r.source for r in recs] == [f"<array {i}>" for i in range(30)]
    assert all(n <= 4 for n, *_ in seen)
    assert sum(n for n, *_ in seen) == 30
    assert len({shape[1:] for shape in seen}) > 1  # several buckets


def test_threads_sharing_one_scorer_match_sequential(scorer):
    imgs = shapes_images(16)
    want = scorer.score(imgs)
    results: dict[int, list[ScoreRecord]] = {}

    def work(k: int) -> None:
        results[k] = scorer.score(imgs)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for got in results.values():
        assert_same(want, got, tol=1e-6)


def test_input_stream_is_consumed_lazily_and_threads_stop(scorer):
    pulled = 0

    def gen():
        nonlocal pulled
        img = pattern(40, 40)
        for _ in range(100_000):
            pulled += 1
            yield img

    scorer.score(pattern(40, 40))  # the decode workers are started once and kept (test_runtime_reuse.py)
    before = threading.active_count()
    it = scorer.score_iter(gen())
    first = [next(it) for _ in range(3)]
    assert all(r.ok for r in first)
    assert pulled < 200  # bounded read-ahead, not the whole stream
    it.close()
    assert threading.active_count() <= before + 1


def test_failing_input_iterator_raises(scorer):
    def gen():
        yield pattern()
        raise RuntimeError("listing failed")

    with pytest.raises(RuntimeError, match="listing failed"):
        scorer.score(gen())


def test_preprocess_matches_what_is_fed(scorer):
    img = pattern(300, 400)
    x = scorer.preprocess(img)
    assert x.shape == (96, 128, 3) and x.dtype == np.uint8  # native 128, multiple of 16
    direct, _ = scorer.backend.run(x[None])
    (rec,) = scorer.score(img)
    assert rec.scores["quality"] == pytest.approx(float(direct[0, 0]), abs=1e-6)


# ---------------------------------------------------------------- no torch


def test_runtime_never_imports_torch(tiny, tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(jpeg(pattern()))
    code = (
        "import sys\n"
        "import quasar.runtime\n"
        "from quasar.runtime import Scorer\n"
        f"recs = Scorer({tiny!r}, backend='onnxruntime').score([{str(p)!r}])\n"
        "assert recs[0].ok, recs\n"
        "from quasar.cli import main\n"
        f"assert main(['score', {str(p)!r}, '--model', {tiny!r}, '-q', '-o', {str(p) + '.csv'!r}]) == 0\n"
        "bad = [m for m in ('torch', 'torchvision', 'timm', 'tensorrt') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    import quasar

    root = os.path.dirname(os.path.dirname(os.path.abspath(quasar.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr



def test_bench_smoke(tiny, tmp_path):
    from quasar_bench.runtime_bench import bench

    files = []
    for i in range(6):
        files.append(str(tmp_path / f"{i}.jpg"))
        (tmp_path / f"{i}.jpg").write_bytes(jpeg(pattern(300 + 40 * (i % 2), 400, seed=i)))
    r = bench(tiny, files, batch_size=2, workers=2)
    assert r["end_to_end"] > 0 and r["model_only"] > 0 and r["preprocess_only"] > 0


def test_an_image_the_backend_refuses_fails_alone(tiny):
    with Scorer(tiny, batch_size=4) as s:
        s.backend.accepts = lambda shape: "too wide for this engine" if shape[1] >= 2 * shape[0] else None
        recs = s.score([pattern(100, 100), pattern(100, 300), pattern(120, 100)])
    assert [r.error for r in recs] == [None, "too wide for this engine", None]
