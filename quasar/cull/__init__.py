"""Best of a burst: group near-duplicate photos by their embedding and keep the best of each group.

``quasar cull`` (:mod:`quasar.app.cull`) scores a folder once with the embedding output
(:mod:`quasar.runtime.embedding`), groups (:mod:`quasar.cull.group`) in an embedding view that
ignores defects (:mod:`quasar.cull.views`), optionally within an EXIF capture-time window
(:mod:`quasar.cull.capture`), ranks each group by a quality head and writes keep/drop marks
(:mod:`quasar.cull.run`). It uses the runtime only: no torch.
"""
