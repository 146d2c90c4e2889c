"""Repeated calls reuse one scorer's decode workers and backend; close() releases them.

Speed is measured in benchmarks/serve_load.py and benchmarks/scale_overhead.py, never here; these
tests check the mechanism: the same worker threads serve every call, concurrent calls share them,
an abandoned call leaves no decode job running, and a closed scorer refuses work in one line.
"""

from __future__ import annotations

import threading
import time

import pytest
from fixtures_images import encode, pattern

from quasar.runtime import Scorer

pytest.importorskip("onnx")
from quasar.testing import write_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


def decode_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("quasar-decode")}


def test_calls_reuse_the_same_decode_workers_and_close_stops_them(tiny):
    before = decode_threads()
    imgs = [encode(pattern(64 + 8 * i, 80, seed=i), ".png") for i in range(12)]
    with Scorer(tiny, batch_size=4, workers=2) as s:
        one = s.score(imgs)
        workers = decode_threads() - before
        assert 1 <= len(workers) <= 2
        per_call = []
        for i in range(0, len(imgs), 3):
            per_call += s.score(imgs[i:i + 3])
            assert decode_threads() - before == workers  # no new pool per call
        assert [r.scores for r in per_call] == [r.scores for r in one]
        assert [r.source for r in per_call[:3]] == ["<bytes 0>", "<bytes 1>", "<bytes 2>"]
    deadline = time.monotonic() + 5
    while decode_threads() & workers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not decode_threads() & workers, "close() left decode workers running"


def test_closed_scorer_refuses_work_in_one_line(tiny):
    s = Scorer(tiny)
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.score(pattern())


def test_concurrent_calls_share_workers_and_match_sequential(tiny):
    imgs = [pattern(48 + 16 * (i % 4), 96, seed=i) for i in range(16)]
    with Scorer(tiny, batch_size=4, workers=2) as s:
        want = [r.scores for r in s.score(imgs)]
        workers = decode_threads()
        out: dict[int, list] = {}

        def work(k: int) -> None:
            out[k] = [r.scores for r in s.score(imgs)]

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert decode_threads() == workers
        assert all(out[k] == want for k in range(3))


def test_abandoned_call_cancels_its_decode_jobs(tiny):
    started = 0
    lock = threading.Lock()
    with Scorer(tiny, batch_size=2, workers=2) as s:
        prepare = s.pipeline.prepare

        def slow(item):
            nonlocal started
            with lock:
                started += 1
            time.sleep(0.01)
            return prepare(item)

        s.pipeline.prepare = slow
        it = s.score_iter(pattern(40, 40) for _ in range(10_000))
        assert next(it).ok
        it.close()  # returns after the run's jobs are cancelled or finished
        after_close = started
        time.sleep(0.1)
        assert started == after_close, "decode jobs kept starting after the call was abandoned"
        assert after_close < 100
        s.pipeline.prepare = prepare
        assert s.score(pattern())[0].ok  # the shared workers still serve new calls
