"""Batch scoring on Ray Data: a Dataset of paths or image bytes -> one score column per head.

    import ray
    from quasar.scale.raydata import score_dataset
    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    scored = score_dataset(ds, bytes_column="bytes", actors=8, actor_cpus=4)
    scored.write_parquet("scores/")          # columns: path, <one per head>, error, warning

Each actor of the pool (a callable class in ``map_batches``) opens one :class:`~quasar.runtime.Scorer`
and keeps it, decode workers and inference session included, for its whole life, so a call per
``batch_size`` rows costs what streaming the same rows would (see ``benchmarks/scale_ray.py``).
An actor runs ``calls_per_actor`` batches at once (Ray Data's ``max_concurrent_calls_per_actor``):
while one batch is on the model, the next one is being decoded on the same scorer.

Failed rows are never dropped: their head columns are NaN and ``error`` says why (a missing file,
a corrupt image...), exactly as :meth:`Scorer.score_items` reports it. An input ``error`` column,
when present, marks rows that failed before scoring (the CLI's listing errors): they keep that
error and are not read.

Paths are read by the actor, so every node must see the files (and the model) at the same paths;
``bytes_column`` (``read_binary_files``) ships the bytes instead. A path may be ``str`` or, for
names that are not valid UTF-8, ``bytes`` (``os.fsencode``); Arrow cannot hold the latter as text.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

DEFAULT_BATCH = 64  # rows per actor call: ~16 inference batches of 4 on CPU; small next to a job


def _label(value: Any) -> str:
    return os.fsdecode(value) if isinstance(value, (bytes, bytearray)) else str(value)


class ScoreBatch:
    """Ray Data callable class: ``map_batches(ScoreBatch, fn_constructor_kwargs=...)``.

    Args:
        model: model file as seen by the worker (None: the worker's default model).
        path_column: the paths (scored from disk), or the labels of ``bytes_column``'s images.
        bytes_column: encoded images to score instead of reading paths (dropped from the output).
        margins: also write ``<head>_margin`` columns.
        scorer_options: keyword arguments for :class:`~quasar.runtime.Scorer` (workers, threads, ...).
    """

    def __init__(self, model: str | None = None, path_column: str = "path", bytes_column: str | None = None,
                 margins: bool = False, scorer_options: dict | None = None) -> None:
        from quasar.runtime.scorer import Scorer

        self.scorer = Scorer(model, **(scorer_options or {}))
        self.path_column = path_column
        self.bytes_column = bytes_column
        self.margins = margins

    def _items(self, batch: dict[str, np.ndarray]) -> list:
        from quasar.runtime.sources import Item

        n = len(next(iter(batch.values())))
        paths = batch.get(self.path_column)
        data = batch.get(self.bytes_column) if self.bytes_column else None
        errors = batch.get("error")
        items = []
        for i in range(n):
            label = _label(paths[i]) if paths is not None else "<bytes>"
            if errors is not None and isinstance(errors[i], str):  # None / NaN: no error
                items.append(Item(label, error=errors[i]))
            elif data is not None:
                items.append(Item(label, data=bytes(data[i])))
            else:
                items.append(Item(label, path=label))
        return items

    def __call__(self, batch: dict[str, np.ndarray]):
        """A pyarrow Table with explicit column types: an all-None object column would otherwise be
        typed null in one block and string in another, and Ray Data may then cast None to "nan"."""
        import pyarrow as pa

        records = list(self.scorer.score_items(self._items(batch)))
        cols = {k: v for k, v in batch.items() if k not in (self.bytes_column, "error", "warning")}
        out = {k: pa.array(list(v)) for k, v in cols.items()}
        for h in self.scorer.heads:
            out[h] = pa.array([r.scores.get(h, np.nan) for r in records], type=pa.float64())
        if self.margins:
            for h in self.scorer.heads:
                out[f"{h}_margin"] = pa.array([r.margins.get(h, np.nan) for r in records], type=pa.float64())
        out["error"] = pa.array([r.error for r in records], type=pa.string())
        out["warning"] = pa.array([r.warning for r in records], type=pa.string())
        return pa.table(out)

    def __del__(self) -> None:  # the actor is going away: stop its decode workers
        scorer = getattr(self, "scorer", None)
        if scorer is not None:
            scorer.close()


def score_dataset(ds, model: str | os.PathLike | None = None, *, path_column: str = "path",
                  bytes_column: str | None = None, batch_size: int = DEFAULT_BATCH, actors: int = 1,
                  actor_cpus: float = 1, calls_per_actor: int = 2, margins: bool = False,
                  udf: type[ScoreBatch] = ScoreBatch, max_restarts: int | None = None, **scorer_options):
    """Score every row of ``ds`` (lazy: returns a Dataset; nothing runs until it is consumed).

    Args:
        ds: a Ray Dataset with ``path_column`` (paths, or labels when ``bytes_column`` is given).
        model: model file, at this path on every worker (None: each worker's default model).
        batch_size: rows per actor call.
        actors: actor pool size (one Scorer each); an int or a ``(min, max)`` autoscaling range.
        actor_cpus: CPUs each actor reserves; also its decode workers and inference threads unless
            ``workers``/``threads`` are given in ``scorer_options``.
        calls_per_actor: batches an actor works on at once (decode of one overlaps inference of another).
        margins: add ``<head>_margin`` columns.
        udf: the actor class: :class:`ScoreBatch` or a subclass (to add columns, say).
        max_restarts: how often Ray may restart a dead actor (None: Ray Data's default, for ever, its
            calls retried). ``0``: a dead actor ends the run with an error. Ray Data always hands its
            actors their constructor arguments through the object store, and Ray's core worker logs
            an E-level line for each actor that may be restarted with such arguments; ``quasar score
            --ray`` passes 0 (no such line; a run that loses an actor ends, and ``--resume`` goes on).
        scorer_options: more :class:`~quasar.runtime.Scorer` arguments (backend, device, batch_size...).

    Output columns: the input's (without ``bytes_column``), one float per head (NaN on failure),
    ``error`` and ``warning`` (None when there is none).
    """
    from quasar.scale.cluster import require_ray

    require_ray("quasar.scale.raydata.score_dataset")
    from ray.data import ActorPoolStrategy

    per_actor = max(1, int(actor_cpus))
    options = {"workers": per_actor, "threads": per_actor, **scorer_options}
    if isinstance(actors, tuple):
        pool = ActorPoolStrategy(min_size=actors[0], max_size=actors[1],
                                 max_concurrent_calls_per_actor=calls_per_actor)
    else:
        pool = ActorPoolStrategy(size=actors, max_concurrent_calls_per_actor=calls_per_actor)
    restarts = {} if max_restarts is None else {"max_restarts": max_restarts}
    with warnings.catch_warnings():  # Ray 2.60 deprecates remote args that have no named parameter,
        warnings.simplefilter("ignore", DeprecationWarning)  # max_restarts among them, with no replacement yet
        return ds.map_batches(
            udf, batch_size=batch_size, batch_format="numpy", compute=pool, num_cpus=actor_cpus,
            fn_constructor_kwargs={"model": None if model is None else os.fspath(model), "path_column": path_column,
                                   "bytes_column": bytes_column, "margins": margins, "scorer_options": options},
            **restarts)
