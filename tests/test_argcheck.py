"""Constructor arguments are checked apart from construction (quasar.argcheck), one line naming the
class and the argument, before a model is read or a thread started; and the scorers share one lifecycle
(quasar.lifecycle.Closeable: close, with, garbage collection)."""

from __future__ import annotations

import gc

import pytest

from quasar.errors import QuasarError
from quasar.lifecycle import Closeable
from quasar.runtime.scorer import Scorer, check_scorer_args


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"workers": 0}, "workers"), ({"workers": -1}, "workers"), ({"batch_size": 0}, "batch_size"),
    ({"threads": 0}, "threads"), ({"max_pixels": 0}, "max_pixels"), ({"window": 0}, "window"),
    ({"device_id": -1}, "device_id"), ({"optimization": "fast"}, "optimization"), ({"backend": "gpu"}, "backend"),
    ({"workers": 2.0}, "workers"), ({"workers": True}, "workers"), ({"embeddings": "yes"}, "embeddings")])
def test_scorer_refuses_bad_arguments_before_loading(kwargs, named, tmp_path):
    """workers=0 used to mean "default" silently, workers=-1 a bare ValueError after the model loaded."""
    missing = tmp_path / "no-model.onnx"  # never read: the arguments are checked first
    with pytest.raises(QuasarError) as e:
        Scorer(missing, **kwargs)
    msg = str(e.value)
    assert msg.startswith(f"Scorer: {named} must be ") and "\n" not in msg and repr(next(iter(kwargs.values()))) in msg
    with pytest.raises(QuasarError, match=f"^Scorer: {named} "):
        check_scorer_args(**kwargs)


def test_workers_minus_one_is_a_quasar_error_with_a_real_model(tiny):
    with pytest.raises(QuasarError, match=r"^Scorer: workers must be an integer of at least 1 \(or None: CPU cores"):
        Scorer(tiny, workers=-1)


def test_defaults_and_none_pass_the_check():
    check_scorer_args()
    check_scorer_args(batch_size=None, workers=None, threads=None, max_pixels=None, window=None)
    check_scorer_args(batch_size=1, workers=1, threads=1, max_pixels=1, window=1, device_id=0, optimization="basic")


def test_native_scorer_refuses_bad_arguments_before_loading_the_library(tmp_path):
    from quasar.nativelib import NativeScorer

    nowhere = str(tmp_path / "libquasar.so")  # never loaded: the arguments are checked first
    with pytest.raises(QuasarError, match=r"^NativeScorer: threads must be an integer of at least 0"):
        NativeScorer(tmp_path / "m.onnx", threads=-1, library=nowhere)
    with pytest.raises(QuasarError, match=r"^NativeScorer: backend must be one of auto, opencv, tensorrt, onnxruntime"):
        NativeScorer(tmp_path / "m.onnx", backend="cuda", library=nowhere)


def test_one_lifecycle_for_every_scorer():
    from quasar.nativelib import Image, NativeScorer
    from quasar.perf.sut import SUT

    for cls in (Scorer, NativeScorer, Image, SUT):
        assert issubclass(cls, Closeable)
        for name in ("__enter__", "__exit__", "__del__"):
            assert name not in vars(cls), f"{cls.__name__} repeats {name}"


def test_a_dropped_scorer_stops_its_workers(tiny):
    s = Scorer(tiny, workers=2)
    s.score([__import__("numpy").zeros((32, 32, 3), "uint8")])
    pipeline = s.pipeline
    assert pipeline._decode.pool is not None
    del s
    gc.collect()
    assert pipeline._decode.closed and pipeline._decode.pool is None


def test_with_block_closes_and_close_is_idempotent(tiny):
    with Scorer(tiny) as s:
        pass
    assert s.pipeline._decode.closed
    s.close()
