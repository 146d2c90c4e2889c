"""Scale-out on Ray (the optional ``ray`` extra): batch scoring on Ray Data, a Ray Serve service.

Nothing here is imported by plain scoring (``quasar.runtime``); each module imports Ray only when
used, through :func:`quasar.scale.cluster.require_ray`, so a missing extra is one line.

* :mod:`quasar.scale.cluster`  start a private loopback cluster or join one (bounded), quietly; shut down what we started.
* :mod:`quasar.scale.raydata`  ``score_dataset``: a Ray Dataset of paths or bytes -> scores per head.
* :mod:`quasar.scale.raycli`   ``quasar score --ray``: the CLI's scorer backed by Ray Data.
* :mod:`quasar.scale.http`     request rules and limits for the service: the status table, slow bodies,
  pixel budget (plain Python, no Ray).
* :mod:`quasar.scale.multipart`  multipart bodies read part by part on python-multipart, limits applied while reading.
* :mod:`quasar.scale.auth`     bearer tokens (digests, constant-time check) and the loopback rule.
* :mod:`quasar.scale.metrics`  Prometheus series of a replica, stage timing of its scorer, the JSON access log.
* :mod:`quasar.scale.fair`     fair dynamic batching: one image per waiting client/request in turn.
* :mod:`quasar.scale.service`  one replica: Scorer, fair batcher, stats, metrics (no Ray, no web framework).
* :mod:`quasar.scale.api`      the FastAPI app in front of a replica: endpoints, models, OpenAPI, token check, CORS.
* :mod:`quasar.scale.serve`    the Ray Serve deployment (FastAPI ingress), replicas and autoscaling, serve.yaml builder.
* ``quasar serve`` is :mod:`quasar.app.serve` (the application layer).
"""
