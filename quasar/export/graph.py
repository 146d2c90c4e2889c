"""Small, provably equivalent rewrites of an exported fused graph (onnx + numpy only).

The torch exporter gives a correct graph, but two details matter to consumers:

* TensorRT accepts a uint8 network input only when a Cast to float comes first ("use the
  IdentityLayer to convert uint8 network-level inputs to float32/float16 prior to use with other
  TensorRT layers"). ``Encoder.normalize`` permutes NHWC -> NCHW before casting, so the graph starts
  ``Transpose(uint8) -> Cast``; :func:`cast_before_transpose` swaps the two (elementwise Cast commutes
  with Transpose).
* Constant folding turns ``F.linear(e, C)`` into ``MatMul(e, C^T)`` with an anonymous [D, 2K]
  initializer. :func:`name_head_initializers` makes it ``Gemm(e, quasar.centroids, transB=1)`` with the
  [2K, D] matrix as stored in the pack, and names the logit scales, so other backends can read the
  head back from the file.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from quasar.contract import (
    COMBINE_BIASES_INITIALIZER,
    HEAD_BIASES_INITIALIZER,
    HEAD_WEIGHTS_INITIALIZER,
    INPUT_NAME,
    LOGIT_SCALES_INITIALIZER,
    OUTPUT_NAMES,
)


def _consumers(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if name in n.input]


def _drop_value_info(graph: onnx.GraphProto, names: Iterable[str]) -> None:
    names = set(names)
    keep = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(keep)


def cast_before_transpose(model: onnx.ModelProto, input_name: str = INPUT_NAME) -> bool:
    """Rewrite ``input -> Transpose -> Cast`` as ``input -> Cast -> Transpose``; True if it changed anything."""
    g = model.graph
    first = _consumers(g, input_name)
    if len(first) != 1 or first[0].op_type != "Transpose":
        return False
    transpose = first[0]
    after = _consumers(g, transpose.output[0])
    if len(after) != 1 or after[0].op_type != "Cast" or transpose.output[0] in {o.name for o in g.output}:
        return False
    cast = after[0]
    mid, out = transpose.output[0], cast.output[0]
    cast.input[0] = input_name
    cast.output[0] = mid
    transpose.input[0] = mid
    transpose.output[0] = out
    _drop_value_info(g, [mid])  # its recorded type (uint8) is no longer true
    nodes = list(g.node)
    i, j = nodes.index(transpose), nodes.index(cast)
    nodes[i], nodes[j] = cast, transpose  # keep the node list topologically sorted
    del g.node[:]
    g.node.extend(nodes)
    return True


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    for t in graph.initializer:
        if t.name == old:
            t.name = new
    for n in graph.node:
        for k, name in enumerate(n.input):
            if name == old:
                n.input[k] = new
    for v in graph.input:
        if v.name == old:
            v.name = new


def name_head_initializers(model: onnx.ModelProto, centroids: np.ndarray, logit_scales: np.ndarray,
                           biases: np.ndarray | None = None, combine_biases: np.ndarray | None = None) -> None:
    """Name the head's constants ``quasar.head_weights`` ([K, D]), ``quasar.logit_scales`` ([K]) and,
    when given, ``quasar.head_biases`` ([K_base]) and ``quasar.combine_biases`` ([K_combine]).

    Identifies them by value, never by the exporter's generated names. Raises ``RuntimeError`` if
    either is missing: that would mean the exporter changed the head and the graph needs a look.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    centroids = np.asarray(centroids, dtype=np.float32)
    logit_scales = np.asarray(logit_scales, dtype=np.float32).reshape(-1)

    def same(t: onnx.TensorProto, ref: np.ndarray) -> bool:
        if tuple(t.dims) != ref.shape:
            return False
        a = numpy_helper.to_array(t)
        return a.dtype == np.float32 and np.array_equal(a, ref)

    found_c = False
    for k, node in enumerate(list(g.node)):
        if node.op_type == "MatMul" and node.input[1] in inits and same(inits[node.input[1]], centroids.T):
            gemm = onnx.helper.make_node("Gemm", [node.input[0], HEAD_WEIGHTS_INITIALIZER], list(node.output),
                                         name=node.name.replace("MatMul", "Gemm") or "quasar_head_gemm", transB=1)
            g.node.remove(node)
            g.node.insert(k, gemm)
            old = node.input[1]
            if not _consumers(g, old):
                g.initializer.remove(inits[old])
            g.initializer.append(numpy_helper.from_array(centroids, HEAD_WEIGHTS_INITIALIZER))
            found_c = True
            break
    if not found_c:
        named = [t for t in g.initializer if same(t, centroids)]
        if not named:
            raise RuntimeError("exported graph: cannot find the head weights among the initializers")
        _rename_tensor(g, named[0].name, HEAD_WEIGHTS_INITIALIZER)
    scales = [t for t in g.initializer if same(t, logit_scales)]
    if not scales:
        raise RuntimeError("exported graph: cannot find the logit scales among the initializers")
    _rename_tensor(g, scales[0].name, LOGIT_SCALES_INITIALIZER)
    for values, name in ((biases, HEAD_BIASES_INITIALIZER), (combine_biases, COMBINE_BIASES_INITIALIZER)):
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        found = [t for t in g.initializer if same(t, values)]
        if not found:
            raise RuntimeError(f"exported graph: cannot find {name} among the initializers")
        _rename_tensor(g, found[0].name, name)


def set_output_shapes(model: onnx.ModelProto, num_heads: int, names: Iterable[str] = OUTPUT_NAMES,
                      batch: int | None = None) -> None:
    """Declare outputs as [batch, K] (``batch`` fixed when given, for static graphs): ``view(-1, K, 2)``
    leaves the exporter unsure of K, and consumers (the runtime, TensorRT) read the head count off the graph."""
    wanted = set(names)
    for out in model.graph.output:
        if out.name not in wanted:
            continue
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        if batch is None:
            dims.add().dim_param = "batch"
        else:
            dims.add().dim_value = int(batch)
        dims.add().dim_value = int(num_heads)


def op_types(model: onnx.ModelProto) -> set[str]:
    """``domain::op`` for custom domains, plain ``op`` for the default one (subgraphs included)."""
    out: set[str] = set()

    def walk(graph: onnx.GraphProto) -> None:
        for n in graph.node:
            out.add(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        walk(sg)

    walk(model.graph)
    return out
