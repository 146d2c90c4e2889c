"""Fused graphs: one ONNX model per (encoder, centroid pack), fp32/fp16/int8, and TensorRT engines.

Modules, one job each (see "Fused model contract" in ``docs/architecture.md``):

* :mod:`~quasar.export.fused`: ``FusedScorer``, the torch module every exporter traces.
* :mod:`~quasar.export.onnx_export`: ``export_onnx``; :mod:`~quasar.export.int8`: QDQ quantisation.
* :mod:`~quasar.export.graph`: small equivalent rewrites of the exported graph.
* :mod:`~quasar.export.metadata`: the contract's ``metadata_props`` (numpy/onnx only).
* :mod:`~quasar.export.tensorrt`: engines and their sidecars; :mod:`~quasar.export.default`: the
  cached default model; :mod:`~quasar.export.cli`: ``quasar export``.

Nothing is imported here, so ``quasar.export.cli`` and ``quasar.export.metadata`` load without torch.
"""
