"""The visual report: one HTML page of photos sorted by a head, score histograms, per-head bars,
groups from ``quasar cull`` and failed files with their reason (:mod:`quasar.report.build`).
Uses the runtime's decoder for thumbnails; no torch, no network, no external JS or CSS."""
