"""``quasar score --ray``: the CLI's scorer, with the scoring done by a Ray Data actor pool.

The CLI lists inputs, applies ``--resume`` and writes rows exactly as for local scoring
(:mod:`quasar.app.score`, :mod:`quasar.runtime.output`); only :meth:`RayScorer.score_items`
differs: the listed items become a Dataset of ``(path, error)`` rows, scored by
:func:`quasar.scale.raydata.score_dataset`, and come back as :class:`ScoreRecord` in input order
(Ray Data's ``preserve_order``), so the output file is the one a local run writes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator

import numpy as np

from quasar.runtime.scorer import ScoreRecord
from quasar.scale.cluster import CONNECT_TIMEOUT_S, connect, disconnect, quiet_data

CHUNK = 100_000  # rows handed to Ray Data per dataset: bounds the driver's memory for huge listings


def _text(value) -> str | None:
    """A text cell: None for a missing value (Arrow hands an all-null column back as NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


class RayScorer:
    """What ``quasar score`` needs from a scorer (``heads``, ``info``, ``score_items``, ``close``), on Ray.

    Args:
        model: model file (None: the default model); must be at this path on every node.
        address: Ray cluster to join (None: start a private one on this machine, on 127.0.0.1).
        connect_timeout: seconds joining ``address`` may take (None: ``CONNECT_TIMEOUT_S``).
        actors: actor pool size (None: as many as the cluster's CPUs allow at ``actor_cpus`` each).
        actor_cpus: CPUs per actor (None: all CPUs of this machine for a local cluster, else 1).
        batch_size: rows per actor call; ``inference_batch``: the Scorer's ``batch_size`` (images per
            model call). Other ``scorer_options`` go to each actor's Scorer.
    """

    def __init__(self, model: str | None = None, *, address: str | None = None,
                 connect_timeout: float | None = None, actors: int | None = None,
                 actor_cpus: int | None = None, batch_size: int | None = None, margins: bool = True,
                 inference_batch: int | None = None, **scorer_options) -> None:
        from quasar.runtime.model import default_model_path, load_model_info

        self.info = load_model_info(model or default_model_path())
        self.model = self.info.path
        self.started = connect(address, what="quasar score --ray", timeout_s=connect_timeout or CONNECT_TIMEOUT_S)
        try:
            import ray

            quiet_data()
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.actor_cpus = actor_cpus or (cpus if address is None else 1)
            self.actors = actors or max(1, cpus // self.actor_cpus)
        except BaseException:
            self.close()
            raise
        self.batch_size = batch_size
        self.margins = margins
        self.scorer_options = {k: v for k, v in {**scorer_options, "batch_size": inference_batch}.items()
                               if v is not None}

    @property
    def heads(self) -> tuple[str, ...]:
        return self.info.heads

    def score_items(self, items: Iterable) -> Iterator[ScoreRecord]:
        chunk: list = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                yield from self._score_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._score_chunk(chunk)

    def _score_chunk(self, items: list) -> Iterator[ScoreRecord]:
        import pyarrow as pa
        import ray

        from quasar.scale.raydata import DEFAULT_BATCH, score_dataset

        labels = [it.label for it in items]
        table = pa.table({"index": pa.array(range(len(items)), type=pa.int64()),
                          "path": pa.array([os.fsencode(x) for x in labels], type=pa.binary()),
                          "error": pa.array([it.error for it in items], type=pa.string())})
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        cuts = np.linspace(0, len(items), max(1, min(len(items) // 8, 200)) + 1).astype(int)
        ds = ray.data.from_arrow([table.slice(a, b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
        # each actor gets whole batches; small inputs are split so every actor has work
        batch = self.batch_size or max(1, min(DEFAULT_BATCH, math.ceil(len(items) / (2 * self.actors))))
        scored = score_dataset(ds, self.model, batch_size=batch, actors=self.actors, actor_cpus=self.actor_cpus,
                               margins=self.margins, max_restarts=0, **self.scorer_options)
        expect = 0
        for b in scored.iter_batches(batch_format="numpy", batch_size=None):
            for j, idx in enumerate(b["index"]):
                if int(idx) != expect:
                    raise RuntimeError(f"Ray Data returned row {int(idx)} where row {expect} was due")
                expect += 1
                yield self._record(labels[int(idx)], b, j)
        if expect != len(items):
            raise RuntimeError(f"Ray Data returned {expect} of {len(items)} rows")

    def _record(self, label: str, b: dict, j: int) -> ScoreRecord:
        error, warning = _text(b["error"][j]), _text(b["warning"][j])
        if error is not None:
            return ScoreRecord(label, error=error)
        scores = {h: float(b[h][j]) for h in self.heads}
        margins = {h: float(b[f"{h}_margin"][j]) for h in self.heads} if self.margins else {}
        return ScoreRecord(label, scores, margins, warning=warning)

    def close(self) -> None:
        disconnect(self.started)
        self.started = False
