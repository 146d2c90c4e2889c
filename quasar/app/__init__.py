"""The application layer: the commands that compose the stages and the features.

The import flow is floor -> stages (io, preprocess, encoders, centroids, export, runtime, eval) ->
features (report, cull, perf, scale, nativelib, machine) -> app; nothing below imports this package
(``tests/test_imports.py``). Each module is one command and exposes ``register(subparsers)``:

* :mod:`~quasar.app.score`    ``quasar score`` (the runtime; ``--report`` and ``--ray`` composed in)
* :mod:`~quasar.app.cull`     ``quasar cull`` (``--report`` composed in)
* :mod:`~quasar.app.report`   ``quasar report``
* :mod:`~quasar.app.serve`    ``quasar serve`` (Ray Serve)
* :mod:`~quasar.app.perf`     ``quasar perf`` (LoadGen)
* :mod:`~quasar.app.listing`  ``quasar list``
* :mod:`~quasar.app.bench`    ``quasar bench``

Building the parser imports no feature's heavy code: each command imports it when it runs.
"""
