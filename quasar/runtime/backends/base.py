"""The inference backend contract: uint8 NHWC batch in, (scores, margins) float32 [N, K] out.

``submit`` starts a batch and returns a handle whose ``result()`` waits for it. CPU backends finish
inside ``submit``; CUDA backends only enqueue the host->device copy there, so the pipeline can
submit batch i+1 (its copy overlapping batch i's compute) before it collects batch i.
``batch_buffer`` lets a backend hand out the host memory a batch is assembled in (pinned memory
for CUDA), so a batch is written once and copied straight to the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from quasar.contract import ModelInfo
from quasar.errors import QuasarError


class Pending(ABC):
    @abstractmethod
    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Wait for the batch; (scores, margins) as float32 [N, K]."""


class Done(Pending):
    """A batch that finished synchronously."""

    def __init__(self, scores: np.ndarray, margins: np.ndarray) -> None:
        self._out = (scores, margins)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self._out


def run_in_fixed_batches(run, batch: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Run a graph whose batch is fixed at ``n`` on any number of images: chunks of ``n``, the last
    one padded by repeating its last image; the padded rows are dropped. A graph runs each image
    independently, so padding changes no score."""
    scores, margins = [], []
    for start in range(0, batch.shape[0], n):
        chunk = batch[start : start + n]
        k = chunk.shape[0]
        if k < n:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], n - k, axis=0)])
        s, m = run(chunk)
        scores.append(s[:k])
        margins.append(m[:k])
    return np.concatenate(scores), np.concatenate(margins)


# What :class:`quasar.runtime.pipeline.Pipeline` calls on a backend (checked when a Pipeline is built).
PIPELINE_METHODS = ("accepts", "batch_buffer", "submit", "run", "release", "close")


def check_backend(backend: object) -> None:
    """Raise a one-line TypeError unless ``backend`` is a :class:`Backend` with every pipeline method."""
    if not isinstance(backend, Backend):
        raise TypeError(f"{type(backend).__name__} is not a quasar.runtime.backends.base.Backend")
    missing = [m for m in PIPELINE_METHODS if not callable(getattr(backend, m, None))]
    if missing:
        raise TypeError(f"backend {type(backend).__name__} lacks {', '.join(missing)}")
    if getattr(backend, "device", None) is None:
        raise TypeError(f"backend {type(backend).__name__} says no device")


class Backend(ABC):
    """One loaded model on one device. ``submit``/``result`` must be safe to call from several threads.

    Every backend implements :meth:`submit` and :meth:`accepts` (abstract); the others have defaults
    (synchronous ``run``, plain numpy ``batch_buffer``, no-op ``release``/``close``).
    """

    name = "backend"
    device = "cpu"
    max_batch: int | None = None  # engines built for a fixed maximum batch say so here
    fixed_batch: int | None = None  # static graphs: the one batch size the graph takes (short batches are padded)

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    @abstractmethod
    def submit(self, batch: np.ndarray) -> Pending:
        """Start inference on a uint8 [N, H, W, 3] batch."""

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.submit(batch).result()

    @abstractmethod
    def accepts(self, image_shape: tuple[int, ...]) -> str | None:
        """None if one preprocessed image of this HxWx3 shape can run, else the reason it cannot
        (engines are built for a range of sizes); such an image fails alone, not the whole run."""

    def batch_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """Host memory to assemble a batch of this shape in; pass it to ``submit`` or ``release``."""
        return np.empty(shape, dtype=np.uint8)

    def release(self, buffer: np.ndarray) -> None:  # noqa: B027 - a no-op unless buffers are pinned
        """Give back a ``batch_buffer`` that will not be submitted (a cancelled run)."""

    def close(self) -> None:  # noqa: B027 - nothing to free by default
        """Free sessions and device memory; the backend is unusable afterwards."""

    def check_outputs(self, scores: np.ndarray, margins: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Outputs must be [N, K] with K = number of heads in the metadata (else the file is inconsistent)."""
        k = self.info.num_heads
        for name, a in (("scores", scores), ("margins", margins)):
            if a.ndim != 2 or a.shape != (n, k):
                raise QuasarError(f"{self.info.path}: output {name!r} has shape {a.shape}, expected ({n}, {k}) "
                                  f"for {k} heads {list(self.info.heads)}")
        return np.asarray(scores, dtype=np.float32), np.asarray(margins, dtype=np.float32)
