"""``quasar export onnx --embedding``: give the fused graph a third output, the unit embedding.

The heads read the L2-normalised encoder output; this adds it to the graph's outputs as
``embedding`` (:data:`quasar.contract.EMBEDDING_OUTPUT`, float32 [N, D]) through an Identity node on
the tensor the head's product reads, so grouping near-duplicates (``quasar cull``) needs no second
pass and no graph surgery at run time. Opt-in: graphs exported without it (the shipped default model
among them) are unchanged, and the runtime finds the same tensor in them by itself
(:mod:`quasar.runtime.embedding`). Scores, metadata and the head hash are not affected.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from quasar.contract import CENTROIDS_INITIALIZER, EMBEDDING_OUTPUT, HEAD_WEIGHTS_INITIALIZER
from quasar.errors import QuasarError


def add_embedding_output(path: str) -> None:
    """Add the ``embedding`` output to the ONNX file at ``path`` (in place) and check the model."""
    model = onnx.load(path)
    g = model.graph
    if any(o.name == EMBEDDING_OUTPUT for o in g.output):
        return
    heads = {HEAD_WEIGHTS_INITIALIZER, CENTROIDS_INITIALIZER}  # the rule quasar.runtime.embedding reads by
    found = {name for n in g.node if heads & set(n.input) for name in n.input
             if name and not name.startswith("quasar.")}
    if len(found) != 1:
        raise QuasarError(f"{path}: cannot find the embedding the heads read (candidates: {sorted(found) or 'none'})")
    (source,) = found
    g.node.append(helper.make_node("Identity", [source], [EMBEDDING_OUTPUT], name="quasar_embedding"))
    g.output.append(helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", None]))
    onnx.save(model, path)
    onnx.checker.check_model(path)
