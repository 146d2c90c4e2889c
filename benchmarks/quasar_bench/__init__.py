"""Speed benchmarks: the eager PyTorch pipeline users write today against the QUASAR engine.

``quasar bench`` and ``benchmarks/speed.py`` run the same code (:mod:`quasar_bench.speed`). Every
measured configuration runs in its own subprocess (:mod:`quasar_bench.worker`) so that its peak RSS
is its own, native allocations (libjpeg, oneDNN, ONNX Runtime arenas) included, and so that no
configuration warms caches or thread pools for the next one.

Modules, one job each: ``stats`` (percentiles, min/median/max, SRCC), ``camera`` (camera-size JPEG set), ``models`` (fused ONNX files from the exporter),
``eager`` (the PIL + torchvision + eager PyTorch baseline), ``worker`` (one timed configuration),
``limits`` (FLOPs, GEMM peak, JPEG decode rate), ``report`` (targets, JSON, markdown), ``speed``
(orchestration), ``gpu`` (CUDA pieces for ``benchmarks/gpu_speed.py``), ``cli`` (``quasar bench``).
The machine description (CPU, ISA flags, GPUs, library versions) is :mod:`quasar.machine`, shared
with ``quasar perf``.
"""
