"""Static (fixed-shape) fused graphs: every shape computation folded away, mobile-friendly ops only.

``quasar export onnx --static HxW [--batch N]`` traces the fused scorer at one input shape
[N, H, W, 3] and then rewrites the graph (see "Static graphs" in docs/architecture.md):

1. **Folding** (:func:`fold_constants`): ONNX Runtime's own offline optimiser at its *basic* level
   (constant folding, redundant-node elimination and the standard-op fusions such as Pad into Conv;
   the output is a plain ONNX graph). Measured on the default model at 384x512 (the traced graph
   has 821 nodes, of them 14 Shape and 10 Ceil for TF-"same" padding): ORT basic 275 nodes in 0.1 s,
   onnxslim 0.1.98 274 nodes in 2.3 s, onnxsim 0.8.1 278 nodes in 0.5 s, onnxscript's optimiser 428
   nodes (Shape, Ceil and Pad left) in 1.0 s; all four outputs were bit-identical to the traced
   graph. ORT needs no new dependency (the runtime already has it), so it is the one used.
2. **Mobile rewrites** (:func:`mobile_rewrites`), each exact or within float rounding, so that
   every node is an op that ONNX Runtime's NNAPI EP *and* both CoreML formats take, and that
   OpenCV 4.6's ONNX importer parses:

   * ``ReduceMean`` over H, W -> ``AveragePool`` over tiles (large maps), ``GlobalAveragePool`` and
     ``Reshape`` (CoreML NeuralNetwork has no ReduceMean);
   * ``ReduceSum`` / ``ReduceL2`` over the last axis of a [N, C] tensor -> ``MatMul`` with a ones
     column (NNAPI has neither), ``Sqrt`` for L2;
   * ``Expand`` feeding a broadcasting binary op -> dropped (the op broadcasts itself);
   * ``ReduceLogSumExp`` (the ``softmin`` combine head) -> max-shifted sum of exponentials, with
     ``exp(d) = sigmoid(d) / sigmoid(-d)`` and ``log`` by Halley's iteration
     ``y <- y + 2 (S - e^y) / (S + e^y)`` (cubic convergence; the start is within log(k)/2 of the
     answer, so a few steps reach float precision): CoreML has neither Exp, Log nor a reduction NNAPI takes;
   * a binary op of a computed [N, 1] and an [N, C] tensor: the [N, 1] widened first by a MatMul with
     a ones row (OpenCV 4.6 does not broadcast two computed inputs);
   * ``Neg`` -> ``Mul`` by -1, ``Unsqueeze`` -> ``Reshape``, single-input ``Concat``, ``Identity`` and
     identity ``Gather`` -> removed;
   * ``Clip`` (``clip_form="relu"``): OpenCV 4.6 parses only the opset-6 ``Clip`` with min/max
     attributes, which opset 11+ graphs cannot hold (ONNX Runtime refuses the attributes). So
     ``Clip(x, lo, hi)`` becomes ``lo + Relu(x - lo) - Relu(x - hi)`` (``Relu(x) - Relu(x - 6)`` for
     ReLU6), exact up to the rounding of ``x - hi`` above ``hi``. ``clip_form="clip"`` (the default)
     keeps Clip: ONNX Runtime fuses Conv+Clip, so it runs 1.9x faster on the CPU than the relu form
     (benchmarks/results/static_speed.md), and every mobile EP takes Clip.

Only ``onnx`` and ``numpy`` (and onnxruntime for the folding); the runtime never imports this.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

CLIP_FORMS = ("relu", "clip")
FITS = ("stretch", "crop")


# ----------------------------------------------------------------------------------------- folding


def fold_constants(src: str, dst: str) -> None:
    """ONNX Runtime's basic-level offline optimisation of ``src`` into ``dst`` (a plain ONNX graph)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = dst
    so.log_severity_level = 3
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------------------- rewrites


class _Graph:
    """Helpers over a GraphProto whose shapes are all known (a static graph after shape inference)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.g = model.graph
        self._n = 0
        self.refresh()

    def refresh(self) -> None:
        inferred = onnx.shape_inference.infer_shapes(self.model, strict_mode=True)
        self.shapes: dict[str, list[int]] = {}
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            dims = v.type.tensor_type.shape.dim
            self.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        self.inits = {t.name: t for t in self.g.initializer}
        for t in self.g.initializer:
            self.shapes[t.name] = list(t.dims)

    def const(self, name: str) -> np.ndarray | None:
        t = self.inits.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def add_const(self, value, base: str, dtype=np.float32) -> str:
        self._n += 1
        name = f"{base}/c{self._n}"
        arr = np.asarray(value, dtype=dtype)
        t = numpy_helper.from_array(arr, name)
        self.g.initializer.append(t)
        self.inits[name] = t
        self.shapes[name] = list(arr.shape)
        return name

    def tmp(self, base: str) -> str:
        self._n += 1
        return f"{base}/t{self._n}"

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        return [n for n in self.g.node if name in n.input]

    def rename_uses(self, old: str, new: str) -> None:
        for n in self.g.node:
            for k, i in enumerate(n.input):
                if i == old:
                    n.input[k] = new

    def replace(self, node: onnx.NodeProto, new_nodes: list[onnx.NodeProto]) -> None:
        k = list(self.g.node).index(node)
        self.g.node.remove(node)
        for j, n in enumerate(new_nodes):
            self.g.node.insert(k + j, n)

    def drop(self, node: onnx.NodeProto) -> bool:
        """Remove a pass-through node (output = first input), wiring its consumers to its input;
        False (and nothing changed) when its output is a graph output."""
        src, out = node.input[0], node.output[0]
        if out in {o.name for o in self.g.output}:
            return False
        self.g.node.remove(node)
        self.rename_uses(out, src)
        return True

    def prune_initializers(self) -> None:
        used = {i for n in self.g.node for i in n.input} | {o.name for o in self.g.output}
        keep = [t for t in self.g.initializer if t.name in used]
        del self.g.initializer[:]
        self.g.initializer.extend(keep)
        del self.g.value_info[:]


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _reduce_axes(g: _Graph, node: onnx.NodeProto) -> list[int] | None:
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        a = g.const(node.input[1])
        axes = None if a is None else [int(v) for v in a.ravel()]
    if axes is None:
        return None
    rank = len(g.shapes.get(node.input[0], []))
    return sorted(a % rank for a in axes) if rank else None


def _reshape(g: _Graph, x: str, shape: list[int], out: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Reshape", [x, g.add_const(shape, name, np.int64)], [out], name=name)


def _sum_last(g: _Graph, x: str, n_cols: int, out: str, name: str) -> onnx.NodeProto:
    """[N, C] -> [N, 1]: the row sums, as a MatMul with a ones column."""
    return helper.make_node("MatMul", [x, g.add_const(np.ones((n_cols, 1)), name)], [out], name=name)


POOL_STAGE_MAX = 256  # positions averaged by one GlobalAveragePool; larger maps are tiled first


def _tile(side: int, cap: int = 16) -> int:
    """The largest power of two <= ``cap`` that divides ``side``."""
    k = 1
    while k < cap and side % (2 * k) == 0:
        k *= 2
    return k


def _rewrite_reduce_mean(g: _Graph, node: onnx.NodeProto) -> bool:
    shape = g.shapes.get(node.input[0], [])
    if len(shape) != 4 or _reduce_axes(g, node) != [2, 3] or min(shape) < 1:
        return False
    n, c, h, w = shape
    keep = _attr(node, "keepdims", 1)
    pooled = g.tmp(node.name)
    x, new = node.input[0], []
    # Average in stages (tiles of up to 16x16, then the rest) rather than one running float32 sum over
    # H*W values: the taps' E[x^2] - mean^2 cancels, and a one-pass GlobalAveragePool moved the default
    # model's scores by 7e-5. Tiled (the mean of equal tiles' means is the mean), the static graph's
    # scores are within 1.3e-6 of a float64 evaluation; the dynamic graph's ReduceMean is 1.8e-5 away.
    while h * w > POOL_STAGE_MAX:
        kh, kw = _tile(h), _tile(w)
        if kh * kw < 4:
            break
        t = g.tmp(node.name)
        new.append(helper.make_node("AveragePool", [x], [t], kernel_shape=[kh, kw], strides=[kh, kw],
                                    name=f"{node.name}/pool{len(new)}"))
        x, h, w = t, h // kh, w // kw
    new.append(helper.make_node("GlobalAveragePool", [x], [pooled if not keep else node.output[0]],
                                name=node.name + "/gap"))
    if not keep:
        new.append(_reshape(g, pooled, [n, c], node.output[0], node.name + "/flat"))
    g.replace(node, new)
    return True


def _rewrite_reduce_last(g: _Graph, node: onnx.NodeProto) -> bool:
    """ReduceSum / ReduceL2 over the last axis of a [N, C] tensor."""
    shape = g.shapes.get(node.input[0], [])
    if len(shape) != 2 or min(shape) < 1 or _reduce_axes(g, node) != [1]:
        return False
    n, c = shape
    keep = _attr(node, "keepdims", 1)
    x, new = node.input[0], []
    if node.op_type == "ReduceL2":
        sq = g.tmp(node.name)
        new.append(helper.make_node("Mul", [x, x], [sq], name=node.name + "/sq"))
        x = sq
    summed = node.output[0] if keep and node.op_type == "ReduceSum" else g.tmp(node.name)
    new.append(_sum_last(g, x, c, summed, node.name + "/sum"))
    if node.op_type == "ReduceL2":
        root = node.output[0] if keep else g.tmp(node.name)
        new.append(helper.make_node("Sqrt", [summed], [root], name=node.name + "/sqrt"))
        summed = root
    if not keep:
        new.append(_reshape(g, summed, [n], node.output[0], node.name + "/flat"))
    g.replace(node, new)
    return True


BROADCASTING = ("Add", "Sub", "Mul", "Div")


def _rewrite_expand(g: _Graph, node: onnx.NodeProto) -> bool:
    """Expand whose every consumer is a broadcasting binary op whose other input has the full shape."""
    out_shape = g.shapes.get(node.output[0])
    users = g.consumers(node.output[0])
    if not out_shape or not users or node.output[0] in {o.name for o in g.g.output}:
        return False
    for u in users:
        if u.op_type not in BROADCASTING or len(u.input) != 2:
            return False
        other = u.input[1] if u.input[0] == node.output[0] else u.input[0]
        if other == node.output[0] or g.shapes.get(other) != out_shape:
            return False
    return g.drop(node)


def _broadcast_columns(g: _Graph, node: onnx.NodeProto) -> bool:
    """A binary op of a computed [N, 1] with an [N, C] tensor: the [N, 1] is widened by a MatMul with a
    ones row first (exact: x * 1). OpenCV 4.6 refuses to broadcast two non-constant inputs."""
    if len(node.input) != 2 or any(i in g.inits for i in node.input):
        return False
    a, b = (g.shapes.get(i, []) for i in node.input)
    if len(a) != 2 or len(b) != 2 or a[0] != b[0] or {a[1], b[1]} == {a[1]} or 1 not in (a[1], b[1]):
        return False
    k = 0 if a[1] == 1 else 1
    c = max(a[1], b[1])
    wide = g.tmp(node.name)
    mm = helper.make_node("MatMul", [node.input[k], g.add_const(np.ones((1, c)), node.name)], [wide],
                          name=f"{node.name}/widen")
    node.input[k] = wide
    g.g.node.insert(list(g.g.node).index(node), mm)
    return True


def _rewrite_neg(g: _Graph, node: onnx.NodeProto) -> bool:
    g.replace(node, [helper.make_node("Mul", [node.input[0], g.add_const(-1.0, node.name)], list(node.output),
                                      name=node.name)])
    return True


def _rewrite_unsqueeze(g: _Graph, node: onnx.NodeProto) -> bool:
    shape = g.shapes.get(node.output[0])
    if not shape or min(shape) < 0:
        return False
    g.replace(node, [_reshape(g, node.input[0], shape, node.output[0], node.name)])
    return True


def _rewrite_gather(g: _Graph, node: onnx.NodeProto) -> bool:
    """A Gather of every index in order along its axis is the identity."""
    idx = g.const(node.input[1])
    shape = g.shapes.get(node.input[0], [])
    axis = _attr(node, "axis", 0)
    if idx is None or idx.ndim != 1 or not shape:
        return False
    if shape[axis % len(shape)] != idx.size or not np.array_equal(idx, np.arange(idx.size)):
        return False
    return g.drop(node)


def _rewrite_concat(g: _Graph, node: onnx.NodeProto) -> bool:
    return len(node.input) == 1 and g.drop(node)


def _rewrite_identity(g: _Graph, node: onnx.NodeProto) -> bool:
    return g.drop(node)


def _scalar(g: _Graph, name: str) -> float | None:
    if not name:
        return None
    a = g.const(name)
    return None if a is None or a.size != 1 else float(a.ravel()[0])


def _rewrite_clip(g: _Graph, node: onnx.NodeProto) -> bool:
    """``lo + Relu(x - lo) - Relu(x - hi)``; the lo terms drop for lo == 0, the hi one without hi."""
    lo = _scalar(g, node.input[1]) if len(node.input) > 1 else None
    hi = _scalar(g, node.input[2]) if len(node.input) > 2 else None
    if (len(node.input) > 1 and node.input[1] and lo is None) or (len(node.input) > 2 and node.input[2] and hi is None):
        return False  # bounds that are not constants
    if lo is None and hi is None:
        return g.drop(node)
    base, x, out = node.name or "clip", node.input[0], node.output[0]
    new: list[onnx.NodeProto] = []
    if lo is None:  # min(x, hi) = x - Relu(x - hi)
        over, r = g.tmp(base), g.tmp(base)
        new += [helper.make_node("Sub", [x, g.add_const(hi, base)], [over], name=base + "/over"),
                helper.make_node("Relu", [over], [r], name=base + "/relu_hi"),
                helper.make_node("Sub", [x, r], [out], name=base + "/min")]
        g.replace(node, new)
        return True
    shifted = x
    if lo != 0.0:
        shifted = g.tmp(base)
        new.append(helper.make_node("Sub", [x, g.add_const(lo, base)], [shifted], name=base + "/shift"))
    low = g.tmp(base) if (hi is not None or lo != 0.0) else out
    new.append(helper.make_node("Relu", [shifted], [low], name=base + "/relu"))
    if hi is not None:
        over, r = g.tmp(base), g.tmp(base)
        clipped = out if lo == 0.0 else g.tmp(base)
        new += [helper.make_node("Sub", [x, g.add_const(hi, base)], [over], name=base + "/over"),
                helper.make_node("Relu", [over], [r], name=base + "/relu_hi"),
                helper.make_node("Sub", [low, r], [clipped], name=base + "/cap")]
        low = clipped
    if lo != 0.0:
        new.append(helper.make_node("Add", [low, g.add_const(lo, base)], [out], name=base + "/unshift"))
    g.replace(node, new)
    return True


def _rewrite_clip_min_only(g: _Graph, node: onnx.NodeProto) -> bool:
    if len(node.input) > 2 and node.input[2]:
        return False
    return _rewrite_clip(g, node)


def halley_steps(k: int, tol: float = 1e-9) -> int:
    """Halley steps for log S, S in [1, k], started at log(k)/2: the error map is d -> d - 2 tanh(d/2)."""
    d, n = np.log(max(k, 2)) / 2, 0
    while abs(d) > tol and n < 20:
        d, n = d - 2 * np.tanh(d / 2), n + 1
    return max(n, 1)


def _rewrite_logsumexp(g: _Graph, node: onnx.NodeProto) -> bool:
    """ReduceLogSumExp over axis 1 of [N, k] with Sigmoid, Div, Relu, MatMul and elementwise ops only."""
    shape = g.shapes.get(node.input[0], [])
    if len(shape) != 2 or min(shape) < 1 or _reduce_axes(g, node) != [1]:
        return False
    n, k = shape
    keep = _attr(node, "keepdims", 1)
    base, x = node.name or "logsumexp", node.input[0]
    new: list[onnx.NodeProto] = []

    def op(kind: str, inputs: list[str], tag: str) -> str:
        out = g.tmp(base)
        new.append(helper.make_node(kind, inputs, [out], name=f"{base}/{tag}{len(new)}"))
        return out

    # M = max over columns, pairwise: max(a, b) = a + Relu(b - a)
    cols = [g.tmp(base) for _ in range(k)]
    if k > 1:
        new.append(helper.make_node("Split", [x, g.add_const([1] * k, base, np.int64)], cols, axis=1,
                                    name=f"{base}/split"))
        m = cols[0]
        for c in cols[1:]:
            m = op("Add", [m, op("Relu", [op("Sub", [c, m], "d")], "r")], "max")
    else:
        m = x
    d = op("Sub", [x, m], "shift")  # <= 0
    neg_d = op("Mul", [d, g.add_const(-1.0, base)], "neg")
    e = op("Div", [op("Sigmoid", [d], "sp"), op("Sigmoid", [neg_d], "sn")], "exp")  # exp(d) in (0, 1]
    s = op("MatMul", [e, g.add_const(np.ones((k, 1)), base)], "sum") if k > 1 else e  # [N, 1], in [1, k]
    y0 = np.log(max(k, 2)) / 2
    y = g.add_const(np.full((n, 1), y0), base)
    two, minus_one = g.add_const(2.0, base), g.add_const(-1.0, base)
    for step_no in range(halley_steps(k)):
        if step_no == 0:  # e^y of the constant start is a constant (OpenCV 4.6 runs no op on constants)
            ey = g.add_const(np.full((n, 1), np.exp(y0)), base)
        else:
            ey = op("Div", [op("Sigmoid", [y], "yp"), op("Sigmoid", [op("Mul", [y, minus_one], "yn")], "yq")], "ey")
        step = op("Div", [op("Mul", [op("Sub", [s, ey], "num"), two], "num2"), op("Add", [s, ey], "den")], "step")
        y = op("Add", [y, step], "y")
    if keep:
        new.append(helper.make_node("Add", [m, y], [node.output[0]], name=f"{base}/lse"))
    else:
        lse = op("Add", [m, y], "lse")
        new.append(_reshape(g, lse, [n], node.output[0], f"{base}/flat"))
    g.replace(node, new)
    return True


REWRITES = {
    "ReduceMean": _rewrite_reduce_mean,
    "ReduceSum": _rewrite_reduce_last,
    "ReduceL2": _rewrite_reduce_last,
    "Expand": _rewrite_expand,
    "Neg": _rewrite_neg,
    "Unsqueeze": _rewrite_unsqueeze,
    "Gather": _rewrite_gather,
    "Concat": _rewrite_concat,
    "Identity": _rewrite_identity,
    "ReduceLogSumExp": _rewrite_logsumexp,
}


def mobile_rewrites(model: onnx.ModelProto, clip_form: str = "clip") -> dict[str, int]:
    """Rewrite ``model`` (static shapes, folded) in place; returns how many nodes of each type changed."""
    if clip_form not in CLIP_FORMS:
        raise ValueError(f"clip form must be one of {CLIP_FORMS}, not {clip_form!r}")
    rules = dict(REWRITES)
    # A Clip without an upper bound has an empty input name, which the checker (and OpenCV) take for a
    # tensor of unknown shape: it becomes Relu in either form.
    rules["Clip"] = _rewrite_clip if clip_form == "relu" else _rewrite_clip_min_only
    for op in BROADCASTING:
        rules[op] = _broadcast_columns
    g = _Graph(model)
    done: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for node in list(g.g.node):
            rule = rules.get(node.op_type)
            if rule is not None and node.domain in ("", "ai.onnx") and rule(g, node):
                done[node.op_type] = done.get(node.op_type, 0) + 1
                changed = True
        if changed:
            g.refresh()
    g.prune_initializers()
    return done


def fold_and_rewrite(path: str, clip_form: str = "clip") -> dict[str, int]:
    """Fold ``path`` in place (:func:`fold_constants`), then :func:`mobile_rewrites`; keeps metadata."""
    before = onnx.load(path, load_external_data=False)
    props = {p.key: p.value for p in before.metadata_props}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        folded = os.path.join(tmp, "folded.onnx")
        fold_constants(path, folded)
        model = onnx.load(folded)
    done = mobile_rewrites(model, clip_form)
    model.producer_name, model.producer_version, model.doc_string = (before.producer_name, before.producer_version,
                                                                     before.doc_string)
    del model.metadata_props[:]
    for key in sorted(props):
        model.metadata_props.add(key=key, value=props[key])
    onnx.save(model, path)
    return done
