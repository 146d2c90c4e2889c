"""Evaluation on human opinion scores: metrics, dataset readers and ``quasar evaluate``.

* :mod:`quasar.eval.metrics` — signed SRCC / PLCC (VQEG logistic) / KRCC, bootstrap CIs.
* :mod:`quasar.eval.datasets` — readers for TID2013, KADID-10k, KonIQ-10k, LIVE Challenge, SPAQ,
  PieAPP, AVA, AADB, TAD66k and plain CSVs; the paper's Table 1 SRCCs.
* :mod:`quasar.eval.evaluate` — score a dataset with any ``score_paths`` scorer and correlate.
* :mod:`quasar.eval.classical` — BRISQUE and NIQE no-reference baselines (lower = better).
* :mod:`quasar.eval.cli` — the ``quasar evaluate`` command.

Nothing is imported here, so that building the ``quasar`` parser does not import scipy.
"""
