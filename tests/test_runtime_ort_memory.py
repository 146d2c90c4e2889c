"""ONNX Runtime's memory-pattern cache and dynamic sizes (issue 21, item 16).

ORT keeps one memory plan per input shape it has run, for the session's life; a graph that takes
any size sees a new shape per image size, so with the pattern on, memory grew with the number of
distinct sizes scored (benchmarks/ort_memory.py measures it). The runtime turns it off for such
graphs and keeps it for graphs of one shape.
"""

from __future__ import annotations

import dataclasses

from quasar.runtime import Scorer
from quasar.runtime.backends.ort import memory_pattern


def test_a_dynamic_size_session_keeps_no_plan_per_shape():
    with Scorer(backend="onnxruntime", device="cpu") as s:  # the shipped model: any size (native spec)
        assert s.info.dynamic_size
        assert s.backend.session.get_session_options().enable_mem_pattern is False


def test_one_shape_graphs_keep_the_memory_pattern():
    with Scorer(backend="onnxruntime", device="cpu") as s:
        fixed = dataclasses.replace(s.info, dynamic_size=False)
    assert memory_pattern(fixed) is True and memory_pattern(s.info) is False
