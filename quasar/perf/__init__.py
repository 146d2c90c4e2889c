"""``quasar perf``: latency and throughput of any fused model on any backend, under MLPerf LoadGen's scenarios.

Modules, one job each (importing this package imports none of them):

* :mod:`~quasar.app.perf` (the application layer): the ``quasar perf`` arguments (imports nothing heavy until it runs);
* :mod:`~quasar.perf.targets`: what to measure: model x backend x precision, refused in one line
  when it cannot run here (``native`` without its library included);
* :mod:`~quasar.perf.workload`: the images (a folder or synthetic JPEGs), loaded into RAM before timing,
  and their preprocessed tensors for model-only runs;
* :mod:`~quasar.perf.sut`: the system under test LoadGen drives: end to end through the runtime's
  :class:`~quasar.runtime.Scorer`, or model only through its backend;
* :mod:`~quasar.perf.native`: ``--backend native``: the C++ library's own pipeline end to end and its
  ``quasar_score_images`` model only, through :mod:`quasar.nativelib`;
* :mod:`~quasar.perf.scenarios`: LoadGen settings per scenario, one test run, and reading LoadGen's log;
* :mod:`~quasar.perf.stats`: percentiles, medians and ratios over repetitions;
* :mod:`~quasar.perf.report` (JSON + markdown) and :mod:`~quasar.perf.plots` (PNG/SVG);
* :mod:`~quasar.perf.run`: the plan, interleaved over configurations and repetitions.

Needs the ``perf`` extra (``mlcommons-loadgen``, ``matplotlib``); see docs/perf.md.
"""
