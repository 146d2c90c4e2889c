"""The unit embedding a fused graph's heads read, exposed as an extra output without a second pass.

Grouping near-duplicate photos (``quasar cull``) needs the feature the heads already compute, the
L2-normalised encoder output. A graph exported with ``quasar export onnx --embedding`` has it as a
third output named ``embedding`` (:data:`quasar.contract.EMBEDDING_OUTPUT`). Graphs without it (the
shipped default model, which stays byte-identical) still compute it: it is the one input of the
head's matrix product that is not a head initializer (``quasar.head_weights``, or
``quasar.centroids`` in format version 1 graphs). :func:`embedding_session_source` finds that tensor
by walking the protobuf (no ``onnx`` package, as :mod:`quasar.onnx_meta` does) and returns the model
bytes with the tensor added to the graph's outputs, for ONNX Runtime to load from memory; the file
on disk is never changed. The scores are computed by the same nodes either way.

Only ONNX graphs qualify: a TensorRT engine has no named intermediate tensors to ask for.
"""

from __future__ import annotations

from quasar.contract import CENTROIDS_INITIALIZER, EMBEDDING_OUTPUT, HEAD_WEIGHTS_INITIALIZER
from quasar.errors import QuasarError
from quasar.onnx_meta import NotOnnx, varint_at

_GRAPH = 7  # ModelProto.graph
_NODE, _GRAPH_OUTPUT = 1, 12  # GraphProto.node, GraphProto.output
_NODE_INPUT, _NODE_OUTPUT = 1, 2  # NodeProto.input, NodeProto.output
_FLOAT = 1  # TensorProto.FLOAT
HEAD_INITIALIZERS = (HEAD_WEIGHTS_INITIALIZER, CENTROIDS_INITIALIZER)


class NoEmbedding(QuasarError):
    """The model has no embedding output and no head product to read it from."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    try:
        return varint_at(buf, i)  # the one protobuf varint reader (quasar.onnx_meta)
    except NotOnnx as e:
        raise NoEmbedding(f"malformed protobuf ({e})") from None


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes, start: int = 0, end: int | None = None):
    """(field, wire, value, field_start) per field of the message in ``buf[start:end]``; ``value`` is
    the varint for wire 0 and the (offset, length) of the payload otherwise."""
    end = len(buf) if end is None else end
    i = start
    while i < end:
        at = i
        tag, i = _varint(buf, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            v, i = _varint(buf, i)
            yield num, wire, v, at
            continue
        if wire == 2:
            n, i = _varint(buf, i)
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
        else:
            raise NoEmbedding(f"malformed protobuf (wire type {wire})")
        if i + n > end:
            raise NoEmbedding("malformed protobuf (a field runs past its message)")
        yield num, wire, (i, n), at
        i += n


def _strings(buf: bytes, start: int, end: int, field: int) -> list[str]:
    return [buf[v[0] : v[0] + v[1]].decode("utf-8", "replace")
            for num, wire, v, _ in _fields(buf, start, end) if num == field and wire == 2]


def _graph_span(model: bytes) -> tuple[int, int, int]:
    """(field start, payload offset, payload length) of ModelProto.graph."""
    spans = [(at, *v) for num, wire, v, at in _fields(model) if num == _GRAPH and wire == 2]
    if not spans:
        raise NoEmbedding("not an ONNX model (no graph)")
    return spans[-1]


def graph_outputs(model: bytes) -> list[str]:
    """Names of the graph's outputs."""
    _, g0, glen = _graph_span(model)
    out = []
    for num, wire, v, _ in _fields(model, g0, g0 + glen):
        if num == _GRAPH_OUTPUT and wire == 2:
            out += _strings(model, v[0], v[0] + v[1], 1)[:1]
    return out


def head_input(model: bytes) -> str:
    """The tensor the head's product reads: the input of the node that consumes a head initializer
    and is not itself a ``quasar.`` initializer. NoEmbedding when there is no such single tensor."""
    _, g0, glen = _graph_span(model)
    found: set[str] = set()
    for num, wire, v, _ in _fields(model, g0, g0 + glen):
        if num != _NODE or wire != 2:
            continue
        inputs = _strings(model, v[0], v[0] + v[1], _NODE_INPUT)
        if any(name in HEAD_INITIALIZERS for name in inputs):
            found.update(name for name in inputs if name and not name.startswith("quasar."))
    if len(found) != 1:
        raise NoEmbedding(f"cannot find the embedding the heads read (candidates: {sorted(found) or 'none'})")
    return found.pop()


def with_output(model: bytes, name: str) -> bytes:
    """``model`` with one more graph output, a float tensor ``name`` of shape [batch, unknown]."""
    at, g0, glen = _graph_span(model)
    batch = b"\x12\x05batch"  # Dimension.dim_param
    dims = b"\x0a" + _encode_varint(len(batch)) + batch + b"\x0a\x00"  # [batch, unknown]
    tensor = (b"\x08" + _encode_varint(_FLOAT)  # TypeProto.Tensor.elem_type
              + b"\x12" + _encode_varint(len(dims)) + dims)  # TypeProto.Tensor.shape
    tensor_type = b"\x0a" + _encode_varint(len(tensor)) + tensor  # TypeProto.tensor_type
    raw = name.encode()
    value_info = (b"\x0a" + _encode_varint(len(raw)) + raw  # ValueInfoProto.name
                  + b"\x12" + _encode_varint(len(tensor_type)) + tensor_type)  # ValueInfoProto.type
    extra = _encode_varint(_GRAPH_OUTPUT << 3 | 2) + _encode_varint(len(value_info)) + value_info
    graph = model[g0 : g0 + glen] + extra
    return model[:at] + _encode_varint(_GRAPH << 3 | 2) + _encode_varint(len(graph)) + graph + model[g0 + glen :]


def embedding_session_source(path: str) -> tuple[str | bytes, str]:
    """(what to give ``ort.InferenceSession``, the output name to fetch) for a model with embeddings.

    A graph with an ``embedding`` output is loaded from its path as it is; otherwise the head's input
    tensor is added as an output in memory. NoEmbedding (one line, naming the file) if neither works.
    """
    with open(path, "rb") as f:
        model = f.read()
    try:
        if EMBEDDING_OUTPUT in graph_outputs(model):
            return path, EMBEDDING_OUTPUT
        name = head_input(model)
    except NoEmbedding as e:
        raise NoEmbedding(f"{path}: no embedding output: {e}") from None
    return with_output(model, name), name
