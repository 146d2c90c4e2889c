"""``Scorer``: the Python API. Open a fused model once, score any number of images with it.

    from quasar.runtime import Scorer
    scorer = Scorer()                       # the default model ($QUASAR_MODEL overrides)
    for rec in scorer.score_iter("photos/", recursive=True):
        print(rec.source, rec.scores, rec.error)

A ``Scorer`` is safe to share between threads: every ``score*`` call runs its own feeder and
queue; the backend (thread-safe) and the decode workers are shared. Both live as long as the
scorer, so calling it once per small batch (32 paths from Ray Data, a server's requests) costs no
thread pool or session start-up per call; ``close()`` (or leaving a ``with`` block) releases them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from quasar import argcheck
from quasar.constants import SCORE_RANGE
from quasar.errors import QuasarError
from quasar.io import IMAGE_EXTENSIONS
from quasar.io.decode import DEFAULT_MAX_PIXELS
from quasar.lifecycle import Closeable
from quasar.runtime.backends import BACKENDS, create_backend
from quasar.runtime.backends.ort import OPT_LEVELS
from quasar.runtime.backends.torch_options import TorchOptions
from quasar.runtime.model import ModelInfo, default_model_path, load_model_info
from quasar.runtime.pipeline import Pipeline, Result
from quasar.runtime.prepare import Preparer
from quasar.runtime.sources import iter_items


@dataclass(frozen=True)
class ScoreRecord:
    """One input's result. ``scores``: P(good) per head, ``sigmoid(logit_scale * margin)``;
    ``margins``: each head's margin (a ``linear`` head: the unit embedding's projection on its weight
    plus bias; a ``centroid`` head: cos_good - cos_bad; a ``combine`` head: its rule over the other
    heads' scaled margins; see :class:`quasar.centroids.pack.Head`).

    On failure ``scores`` and ``margins`` are empty and ``error`` says why (``source`` names the input).
    ``warning``: scored, with a one-line caveat (e.g. a tiny image), else None.
    """

    source: str
    scores: dict[str, float] = field(default_factory=dict)
    margins: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    warning: str | None = None
    # The unit embedding the heads read (float32 [D]), with Scorer(embeddings=True); else None.
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def check_scorer_args(*, backend="auto", batch_size=None, workers=None, threads=None, max_pixels=DEFAULT_MAX_PIXELS,
                      reduced_decode=True, window=None, optimization="all", device_id=0, embeddings=False,
                      shape_sessions=True) -> None:
    """QuasarError (one line naming the argument) for a :class:`Scorer` argument it cannot take, before
    the model is read or a thread started. None means the documented default; 0 is not a default."""
    a = "Scorer"
    argcheck.one_of(a, "backend", backend, BACKENDS)
    argcheck.int_at_least(a, "batch_size", batch_size, 1, default="4 on CPU, 32 on CUDA")
    argcheck.int_at_least(a, "workers", workers, 1, default="CPU cores, at most 8")
    argcheck.int_at_least(a, "threads", threads, 1, default="the library's")
    argcheck.int_at_least(a, "max_pixels", max_pixels, 1, default="no limit")
    argcheck.int_at_least(a, "window", window, 1, default="4 * batch_size")
    argcheck.one_of(a, "optimization", optimization, OPT_LEVELS)
    argcheck.int_at_least(a, "device_id", device_id, 0)
    argcheck.boolean(a, "reduced_decode", reduced_decode)
    argcheck.boolean(a, "embeddings", embeddings)
    argcheck.boolean(a, "shape_sessions", shape_sessions)


class Scorer(Closeable):
    """Score images with a QUASAR fused model.

    Args:
        model: ONNX file or TensorRT engine (with its ``.json`` sidecar); None: the default model.
        backend: ``auto``, ``onnxruntime``, ``tensorrt`` or ``torch`` (see :mod:`quasar.runtime.backends`).
        device: ``cpu``/``cuda`` (``tensorrt`` selects ORT's TensorRT EP); None: the backend's best.
        batch_size: images per inference call (default 4 on CPU, 32 on CUDA; capped by an engine's profile).
        workers: decode/preprocess threads (default: CPU cores, at most 8).
        threads: ONNX Runtime / torch intra-op threads (default: the library's).
        max_pixels: decompression-bomb limit per image (None: no limit).
        reduced_decode: decode big JPEGs at 1/2..1/8 scale when the result still covers the resize target.
        window: bucket flush window for dynamic-size models (see :mod:`quasar.runtime.pipeline`).
        optimization: ONNX Runtime graph optimisation level (disable, basic, extended, all).
        embeddings: also give each record the unit embedding the heads read (``ScoreRecord.embedding``,
            from the same forward pass; ONNX models on the onnxruntime backend, see
            :mod:`quasar.runtime.embedding`).
        shape_sessions: ONNX Runtime on CPU: run the input shapes a run keeps feeding (the default
            model's 384x512, 512x384...) on sessions with the graph's free dimensions fixed, at most 4,
            made lazily (:mod:`quasar.runtime.backends.shapes`); same scores. False: one dynamic session.
        torch_options: precision, channels-last, compile / CUDA graphs and device decoding of the torch
            backend (:class:`~quasar.runtime.backends.torch_options.TorchOptions`; CUDA: not yet run).

    Scores are P(good) per head: within ``score_range`` (0..1), higher is better (``lower_better``
    is False), as pyiqa's metrics state it.

    The fused graph embeds the image once (a frozen encoder, L2-normalised) and runs every head of
    its pack on that embedding. The shipped default model has family heads (``sharpness``, ``noise``,
    ``compression``, ``exposure``, ``color``, ``spatial``: ``linear`` heads fitted on embeddings of
    its anchor photos, pristine and distorted) and ``quality``, a ``combine`` head over them (see
    ``quasar centroids info default`` for the rule and fit). Plain QUASAR heads (Ilyin et al., 2025,
    "QUASAR: Quality and Aesthetics Scoring with Advanced Representations": the two-way softmax of
    scaled cosines to a good and a bad anchor centroid) are what
    ``quasar centroids build --aggregation mean|offset|kmeans`` builds, from good/bad folders, a
    MOS CSV or text prompts; models exported from such packs score the same way through this class.
    This class decodes, resizes, batches and runs that graph.

    Returns:
        :meth:`score` returns one :class:`ScoreRecord` per image, in input order, with ``scores``
        and ``margins`` by head name, or an ``error`` (one line: the reason) for an image that could
        not be scored; :meth:`score_iter` yields them lazily.

    Raises:
        QuasarError: an argument out of its range (:func:`check_scorer_args`: ``workers=0`` or ``-1``,
            an unknown backend...), checked before anything loads; the model is missing, not a QUASAR fused model, fails its integrity checks
            (head hash, metadata), or the backend cannot run it. Bad images never raise: they
            become records with an ``error``.
        TypeError: :meth:`score` got something that is not a path, bytes, an image or a list of those.

    Examples:
        The shipped default model (no torch needed) on an in-memory image:

        >>> import numpy as np
        >>> with Scorer() as scorer:
        ...     (record,) = scorer.score(np.full((240, 320, 3), 128, np.uint8))
        >>> record.ok, scorer.info.summary_heads, scorer.info.explain_heads
        (True, ('quality',), ('sharpness', 'noise', 'compression', 'exposure', 'color', 'spatial', 'optics'))
        >>> 0.0 <= record.scores["quality"] <= 1.0 and set(record.scores) == set(scorer.heads)
        True

        Paths and folders (``recursive=True`` for sub-folders); a file that fails is a record:

        >>> with Scorer() as scorer:
        ...     scorer.score(["no/such/photo.jpg"])[0].error
        'file not found'
    """

    lower_better: bool = False
    score_range: tuple[float, float] = SCORE_RANGE

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "auto", *, device: str | None = None,
                 batch_size: int | None = None, workers: int | None = None, threads: int | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, reduced_decode: bool = True, window: int | None = None,
                 optimization: str = "all", device_id: int = 0, embeddings: bool = False,
                 shape_sessions: bool = True, torch_options: TorchOptions | None = None) -> None:
        check_scorer_args(backend=backend, batch_size=batch_size, workers=workers, threads=threads,
                          max_pixels=max_pixels, reduced_decode=reduced_decode, window=window,
                          optimization=optimization, device_id=device_id, embeddings=embeddings,
                          shape_sessions=shape_sessions)
        if torch_options is not None and not isinstance(torch_options, TorchOptions):
            raise QuasarError(f"Scorer: torch_options must be a TorchOptions, not {type(torch_options).__name__}")
        path = os.fspath(model) if model is not None else default_model_path()
        self.info: ModelInfo = load_model_info(path)
        self.backend = create_backend(self.info, backend, device, threads=threads, optimization=optimization,
                                      device_id=device_id, batch_size=batch_size, embeddings=embeddings,
                                      shape_sessions=shape_sessions, torch_options=torch_options)
        # On CPU a larger batch buys nothing (measured: effnet-lite0 costs the same CPU time per image
        # at batch 1..16) and only makes native-size buckets wait longer; GPUs want big batches.
        bs = batch_size or (32 if self.backend.device == "cuda" else 4)
        if self.backend.max_batch:
            bs = min(bs, self.backend.max_batch)
        self.batch_size = bs
        self.workers = workers or default_workers()
        self.preparer = Preparer(self.info.spec, max_pixels=max_pixels, reduced_decode=reduced_decode)
        # A backend that decodes on its device (the torch backend on CUDA) brings its own pipeline.
        make = getattr(self.backend, "make_pipeline", None)
        device_pipeline = make(self.preparer, batch_size=bs, workers=self.workers, window=window) if make else None
        self.pipeline = device_pipeline or Pipeline(self.preparer.with_warning, self.backend, batch_size=bs,
                                                    workers=self.workers, window=window)

    @property
    def heads(self) -> tuple[str, ...]:
        return self.info.heads

    @property
    def spec(self):
        return self.info.spec

    @property
    def model_path(self) -> str:
        return self.info.path

    def _record(self, r: Result) -> ScoreRecord:
        if r.error is not None:
            return ScoreRecord(r.label, error=r.error)
        return ScoreRecord(r.label, dict(zip(self.heads, map(float, r.scores), strict=True)),
                           dict(zip(self.heads, map(float, r.margins), strict=True)), warning=r.warning,
                           embedding=r.embedding)

    def score_iter(self, inputs, recursive: bool = False,
                   extensions: frozenset[str] = IMAGE_EXTENSIONS) -> Iterator[ScoreRecord]:
        """Lazily score paths, folders, bytes, numpy images, PIL images, torch tensors or an iterable
        of them, in input order.

        Folders are listed (``recursive``: with sub-folders) and their image files scored in sorted
        order. Numpy arrays are RGB (or greyscale/RGBA) HxWxC, uint8 or float in 0..1; a 4-D array
        is a batch of images. Tensors follow pyiqa: RGB, CHW or an NCHW batch, float in 0..1; torch
        is imported only by whoever made the tensor.
        """
        for r in self.pipeline.run(iter_items(inputs, recursive, extensions)):
            yield self._record(r)

    def score(self, inputs, recursive: bool = False) -> list[ScoreRecord]:
        """Like :meth:`score_iter`, collected into a list."""
        return list(self.score_iter(inputs, recursive))

    def score_items(self, items) -> Iterator[ScoreRecord]:
        """Score an iterable of prepared :class:`~quasar.runtime.sources.Item` (the CLI's entry point)."""
        for r in self.pipeline.run(items):
            yield self._record(r)

    def preprocess(self, x) -> np.ndarray:
        """The exact uint8 HxWx3 tensor this scorer feeds the model for one input (for debugging and parity)."""
        (item,) = list(iter_items([x]))
        return self.preparer(item)

    def close(self) -> None:
        """Stop the decode workers and free the backend; the scorer is unusable afterwards (idempotent;
        a ``with`` block and garbage collection call it too)."""
        for part in ("pipeline", "backend"):  # either may be missing when __init__ raised
            if getattr(self, part, None) is not None:
                getattr(self, part).close()

    def __repr__(self) -> str:
        return (f"Scorer(model={self.info.path!r}, backend={self.backend.name!r}, heads={list(self.heads)}, "
                f"batch_size={self.batch_size}, workers={self.workers})")
