"""Scale-out on Ray (the optional ``ray`` extra): batch scoring on Ray Data, a Ray Serve service.

Nothing here is imported by plain scoring (``quasar.runtime``); each module imports Ray only when
used, through :func:`quasar.scale.cluster.require_ray`, so a missing extra is one line.

* :mod:`quasar.scale.cluster`  start a private loopback cluster or join one (bounded), quietly; shut down what we started.
* :mod:`quasar.scale.raydata`  ``score_dataset``: a Ray Dataset of paths or bytes -> scores per head.
* :mod:`quasar.scale.raycli`   ``quasar score --ray``: the CLI's scorer backed by Ray Data.
* :mod:`quasar.scale.http`     request parsing and limits for the service (plain Python, no Ray).
* :mod:`quasar.scale.fair`     fair dynamic batching: one image per waiting client/request in turn.
* :mod:`quasar.scale.serve`    the Ray Serve deployment with dynamic batching.
* ``quasar serve`` is :mod:`quasar.app.serve` (the application layer).
"""
