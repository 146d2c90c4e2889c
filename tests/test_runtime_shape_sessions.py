"""Shape-specialised ONNX Runtime sessions (issue 24, item 1): quasar/runtime/backends/shapes.py.

The shapes a run keeps feeding get sessions with the graph's free dimensions fixed, at most
``max_sessions``, least recently used dropped; a shape seen fewer than ``promote_after`` times runs
on the dynamic session; the scores are the dynamic session's; ``shape_sessions=False`` (``quasar
score --no-shape-sessions``) keeps the one dynamic session.
"""

from __future__ import annotations

import numpy as np
import pytest

from quasar.io import read_rgb
from quasar.preprocess import preprocess
from quasar.runtime import Scorer
from quasar.runtime.backends import create_backend
from quasar.runtime.backends.shapes import ShapeSessions, free_dims
from quasar.runtime.model import load_model_info
from quasar.testing import write_tiny_model


@pytest.fixture
def tiny_backend(tmp_path):
    info = load_model_info(write_tiny_model(tmp_path / "tiny.onnx"))
    b = create_backend(info, "onnxruntime", "cpu", threads=1)
    yield b
    b.close()


def _batch(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_the_number_of_sessions_is_bounded_least_recently_used_dropped():
    made = []
    s = ShapeSessions(lambda ov: made.append(dict(ov)) or object(), ((0, "batch"), (1, "height"), (2, "width")),
                      max_sessions=2, promote_after=1)
    for shape in [(1, 64, 64, 3), (1, 64, 96, 3), (1, 64, 64, 3), (1, 96, 64, 3), (2, 64, 64, 3)]:
        s.session_for(shape)
    assert len(s.shapes) == 2
    assert s.shapes == [(1, 96, 64, 3), (2, 64, 64, 3)]  # (1, 64, 64) was used after (1, 64, 96), then both aged out
    assert made[0] == {"batch": 1, "height": 64, "width": 64} and s.made == 4


def test_the_backend_never_holds_more_than_its_bound(tiny_backend):
    shapes = tiny_backend._shapes
    assert shapes is not None and shapes.max_sessions == 4
    for k in range(6):
        for _ in range(shapes.promote_after):
            tiny_backend.run(_batch(2, 64, 64 + 16 * k))
    assert len(shapes.shapes) == 4 and shapes.made == 6
    assert shapes.shapes[-1] == (2, 64, 144, 3)


def test_a_rare_shape_runs_on_the_dynamic_session_a_frequent_one_on_its_own(tiny_backend):
    x = _batch(1, 48, 80)
    assert tiny_backend.session_for(x.shape) is tiny_backend.session  # first sighting: dynamic
    special = tiny_backend.session_for(x.shape)
    assert special is not tiny_backend.session
    assert special.get_inputs()[0].shape == [1, 48, 80, 3]  # its free dimensions are fixed
    assert tiny_backend.session_for(_batch(3, 48, 80).shape) is tiny_backend.session  # another batch: rare


def test_all_sessions_share_one_arena_and_plan_no_memory_pattern(tiny_backend):
    """The memory bound: activations come from the one process-wide arena, and no session keeps a
    plan (a block) per shape, the dynamic one included."""
    x = _batch(2, 64, 96)
    tiny_backend.session_for(x.shape)
    special = tiny_backend.session_for(x.shape)
    assert special is not tiny_backend.session
    for s in (tiny_backend.session, special):
        so = s.get_session_options()
        assert so.get_session_config_entry("session.use_env_allocators") == "1"
        assert so.enable_mem_pattern is False


def test_unnamed_free_dimensions_cannot_be_specialised():
    assert free_dims(["batch", "height", "width", 3]) == ((0, "batch"), (1, "height"), (2, "width"))
    assert free_dims([1, 64, 64, 3]) == ()
    assert free_dims(["batch", None, "width", 3]) is None
    assert free_dims(["unk__12", "height", "width", 3]) is None


def test_specialised_sessions_score_real_photos_as_the_dynamic_session(heldout_photos):
    """The shipped default model on real photos: the same scores to 1e-6, batch 1 and batch 4."""
    with Scorer(backend="onnxruntime", device="cpu", threads=1) as s:
        backend, spec = s.backend, s.info.spec
        pix = [preprocess(read_rgb(p.path), spec) for p in heldout_photos[:12]]
        by_shape: dict[tuple, list[np.ndarray]] = {}
        for im in pix:
            by_shape.setdefault(im.shape, []).append(im)
        shape, ims = max(by_shape.items(), key=lambda kv: len(kv[1]))
        assert len(ims) >= 4, f"expected 4 photos of one shape among 12, got {[len(v) for v in by_shape.values()]}"
        for batch in (np.stack(ims[:1]), np.stack(ims[:4])):
            dynamic = backend.session.run(None, {"images": batch})
            for _ in range(backend._shapes.promote_after):
                special = backend.session_for(batch.shape)
            assert special is not backend.session
            got = special.run(None, {"images": batch})
            for a, b in zip(got, dynamic, strict=True):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_the_scorer_uses_them_and_agrees_with_the_switch_off(heldout_photos):
    paths = [p.path for p in heldout_photos[:10]]
    with Scorer(backend="onnxruntime", device="cpu", threads=1, batch_size=1) as on:
        a = on.score(paths)
        assert on.backend._shapes.hits > 0
    with Scorer(backend="onnxruntime", device="cpu", threads=1, batch_size=1, shape_sessions=False) as off:
        b = off.score(paths)
        assert off.backend._shapes is None
        x = _batch(1, 384, 512)
        assert all(off.backend.session_for(x.shape) is off.backend.session for _ in range(4))
    for ra, rb in zip(a, b, strict=True):
        assert ra.ok and rb.ok
        assert max(abs(ra.margins[h] - rb.margins[h]) for h in ra.margins) <= 1e-6


def test_quasar_score_no_shape_sessions_reaches_the_scorer(tmp_path, monkeypatch):
    import quasar.runtime.scorer as scorer_mod
    from quasar.cli import main

    seen = []

    class Spy(scorer_mod.Scorer):
        def __init__(self, *a, **kw):
            seen.append(kw.get("shape_sessions"))
            super().__init__(*a, **kw)

    monkeypatch.setattr(scorer_mod, "Scorer", Spy)
    model = write_tiny_model(tmp_path / "tiny.onnx")
    img = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(img), _batch(1, 80, 120)[0])
    for flags, want in (([], True), (["--no-shape-sessions"], False)):
        assert main(["score", "--model", model, "-q", "-o", str(tmp_path / "out.csv"), *flags, str(img)]) == 0
        assert seen[-1] is want
