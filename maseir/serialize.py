"""In-memory IR <-> protobuf messages (spec/maseir.proto).

Only the structure is converted here; where tensor bytes go is decided by
``io``. ``digest(graph)`` is the sha256 of the canonical structure, which
includes every tensor's sha256, so it identifies a graph with its weights.
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import symbolic
from ._proto import maseir_pb2 as pb
from .errors import FileFormatError
from .ir import DType, Graph, HistoryEntry, Node, NumberFormat, SizeExpr, Sym, Tensor, TensorType, Value
from .symbolic import FloorDiv

_FORMAT_KINDS = {
    "float32": pb.NumberFormat.FLOAT32, "float16": pb.NumberFormat.FLOAT16,
    "bfloat16": pb.NumberFormat.BFLOAT16, "fixed": pb.NumberFormat.FIXED, "int": pb.NumberFormat.INTEGER,
    "dynamic": pb.NumberFormat.DYNAMIC,
}
_FORMAT_NAMES = {v: k for k, v in _FORMAT_KINDS.items()}


# --- to protobuf -----------------------------------------------------------------
def model_to_proto(graph: Graph, producer: str) -> pb.Model:
    """The Model message; tensor locations are left for the caller to fill."""
    model = pb.Model(producer=producer, tokenizer_json=graph.tokenizer_json)
    g = model.graph
    for value in graph.inputs:
        _value(g.inputs.add(), value)
    g.outputs.extend(graph.outputs)
    for node in graph.nodes:
        msg = g.nodes.add(name=node.name, op=node.op, scope=node.scope)
        msg.inputs.extend(node.inputs)
        for value in node.outputs:
            _value(msg.outputs.add(), value)
        for name in sorted(node.attrs):
            _attr(msg.attrs.add(name=name), node.attrs[name])
        for key in sorted(node.annotations):
            msg.annotations.add(key=key, value=node.annotations[key])
    for name in sorted(graph.params):
        tensor = graph.params[name]
        msg = g.params.add(name=name, sha256=tensor.sha256, trainable=tensor.trainable)
        _type(msg.type, tensor.type)
        for key in sorted(tensor.annotations):
            msg.annotations.add(key=key, value=tensor.annotations[key])
    for name, (source, axis) in graph.dims.items():
        g.dims.add(name=name, input=source, axis=axis)
    for key in sorted(graph.metadata):
        model.metadata.add(key=key, value=graph.metadata[key])
    for entry in graph.history:
        msg = model.history.add(step=entry.step, input_digest=entry.input_digest,
                                output_digest=entry.output_digest, producer=entry.producer)
        for key, value in sorted(entry.details):
            msg.details.add(key=key, value=value)
    return model


def _value(msg, value: Value) -> None:
    msg.name = value.name
    _type(msg.type, value.type)


def _type(msg, t: TensorType) -> None:
    msg.dtype = t.dtype
    for d in t.shape:
        _dim(msg.shape.add(), d)
    if t.format is not None:
        f = t.format
        msg.format.kind = _FORMAT_KINDS[f.kind]
        msg.format.width, msg.format.frac, msg.format.scale = f.width, f.frac, f.scale
        if f.fracs:
            msg.format.fracs.extend(f.fracs)
            msg.format.axis = f.axis


def _dim(msg, d) -> None:
    if isinstance(d, str):
        msg.symbol = d
    elif isinstance(d, SizeExpr):
        _size_expr(msg.expr, d)
    else:
        msg.size = d


def _size_expr(msg, d: SizeExpr) -> None:
    """The normal form as a tree: a sum of terms, each a product of a coefficient and factors."""
    if len(d.terms) > 1:
        msg.kind = pb.SizeExpr.ADD
        for mono, coeff in d.terms:
            _term(msg.operands.add(), mono, coeff)
    else:
        ((mono, coeff),) = d.terms
        factors = ([coeff] if coeff != 1 else []) + [a for a, p in mono for _ in range(p)]
        if len(factors) == 1:
            _floor_div(msg, factors[0])
        else:
            msg.kind = pb.SizeExpr.MUL
            for f in factors:
                _factor(msg.operands.add(), f)


def _term(msg, mono, coeff: int) -> None:
    factors = ([coeff] if coeff != 1 or not mono else []) + [a for a, p in mono for _ in range(p)]
    if len(factors) == 1:
        _factor(msg, factors[0])
    else:
        msg.expr.kind = pb.SizeExpr.MUL
        for f in factors:
            _factor(msg.expr.operands.add(), f)


def _factor(msg, factor) -> None:
    if isinstance(factor, FloorDiv):
        _floor_div(msg.expr, factor)
    else:
        _dim(msg, factor)


def _floor_div(msg, atom: FloorDiv) -> None:
    msg.kind = pb.SizeExpr.FLOOR_DIV
    _dim(msg.operands.add(), atom.num)
    _dim(msg.operands.add(), atom.den)


def _attr(msg, value: Any) -> None:
    if isinstance(value, bool):
        msg.b = value
    elif isinstance(value, int):
        msg.i = value
    elif isinstance(value, float):
        msg.f = value
    elif isinstance(value, str):
        msg.s = value
    elif isinstance(value, DType):
        msg.dtype = value.name
    elif isinstance(value, Sym):
        msg.dim.symbol = value.name
    elif isinstance(value, SizeExpr):
        _size_expr(msg.dim.expr, value)
    elif isinstance(value, tuple):
        if any(isinstance(v, (str, SizeExpr)) for v in value):
            msg.dims.SetInParent()
            for v in value:
                _dim(msg.dims.values.add(), v)
        elif any(isinstance(v, float) for v in value):
            msg.floats.SetInParent()
            msg.floats.values.extend(float(v) for v in value)
        else:
            msg.ints.SetInParent()
            msg.ints.values.extend(value)
    else:
        raise TypeError(f"attribute {msg.name}: cannot store {value!r}")


# --- from protobuf ---------------------------------------------------------------
def model_from_proto(model: pb.Model, tensor_bytes, source: str = "<model>") -> Graph:
    """A Graph from a Model message; ``tensor_bytes(msg)`` returns a param's bytes.
    Structural nonsense raises FileFormatError naming ``source``."""
    g = model.graph
    try:
        params = {}
        for msg in g.params:
            params[msg.name] = Tensor(msg.name, type_from_proto(msg.type), tensor_bytes(msg),
                                      msg.trainable, bytes(msg.sha256), _entries(msg.annotations))
        return Graph(
            inputs=[_value_of(v) for v in g.inputs],
            outputs=list(g.outputs),
            nodes=[Node(n.name, n.op, list(n.inputs), [_value_of(v) for v in n.outputs],
                        {a.name: _attr_of(a) for a in n.attrs}, n.scope, _entries(n.annotations))
                   for n in g.nodes],
            params=params,
            dims={d.name: (d.input, d.axis) for d in g.dims},
            metadata={e.key: e.value for e in model.metadata},
            tokenizer_json=bytes(model.tokenizer_json),
            history=[HistoryEntry(h.step, h.input_digest, h.output_digest, h.producer,
                                  tuple(sorted(_entries(h.details).items()))) for h in model.history],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FileFormatError(f"{source}: corrupt structure: {exc}") from None


def _entries(entries) -> dict[str, str]:
    out = {}
    for e in entries:
        if e.key in out:
            raise ValueError(f"key {e.key!r} given twice")
        out[e.key] = e.value
    return out


def _value_of(msg) -> Value:
    return Value(msg.name, type_from_proto(msg.type))


def type_from_proto(msg) -> TensorType:
    """The TensorType of a ``maseir.TensorType`` message (ValueError when it is malformed)."""
    fmt = None
    if msg.HasField("format"):
        f = msg.format
        if f.kind not in _FORMAT_NAMES:
            raise ValueError(f"number format kind {f.kind} is not supported by this version")
        fmt = NumberFormat(_FORMAT_NAMES[f.kind], f.width, f.frac, f.scale, tuple(f.fracs), f.axis)
        _check_format(fmt, msg)
    return TensorType(msg.dtype, tuple(_dim_of(d) for d in msg.shape), fmt)


def _check_format(fmt: NumberFormat, msg) -> None:
    """A format a file may hold: fixed/int widths 2..16, fracs one per channel of the axis."""
    if fmt.kind in ("fixed", "int", "dynamic") and not 2 <= fmt.width <= 16:
        raise ValueError(f"number format {fmt.kind} of width {fmt.width} is not supported")
    if fmt.fracs:
        shape = list(msg.shape)
        if fmt.kind != "fixed" or not 0 <= fmt.axis < len(shape) or shape[fmt.axis].WhichOneof("kind") != "size" \
                or shape[fmt.axis].size != len(fmt.fracs):
            raise ValueError(f"per-channel format with {len(fmt.fracs)} fracs does not fit axis {fmt.axis}")


def _dim_of(msg, depth: int = 0):
    kind = msg.WhichOneof("kind")
    if kind == "size":
        return msg.size
    if kind == "symbol":
        return msg.symbol
    if kind == "expr":
        return _size_expr_of(msg.expr, depth)
    raise ValueError("a dim with neither a size, a symbol nor an expression")


_EXPR_DEPTH = 64


def _size_expr_of(msg, depth: int):
    if depth > _EXPR_DEPTH:
        raise ValueError("a size expression nested too deeply")
    operands = [_dim_of(d, depth + 1) for d in msg.operands]
    if msg.kind == pb.SizeExpr.ADD and operands:
        return symbolic.add(*operands)
    if msg.kind == pb.SizeExpr.MUL and operands:
        return symbolic.mul(*operands)
    if msg.kind == pb.SizeExpr.FLOOR_DIV and len(operands) == 2:
        return symbolic.floordiv(*operands)  # a divisor below 1 is a ValueError
    raise ValueError(f"size expression of kind {msg.kind} with {len(operands)} operands is not supported "
                     "by this version")


def _attr_of(msg) -> Any:
    kind = msg.WhichOneof("value")
    if kind == "dtype":
        return DType(msg.dtype)
    if kind == "dim":
        d = _dim_of(msg.dim)
        return Sym(d) if isinstance(d, str) else d
    if kind == "dims":
        return tuple(_dim_of(d) for d in msg.dims.values)
    if kind in ("ints", "floats"):
        return tuple(getattr(msg, kind).values)
    if kind is None:
        raise ValueError(f"attribute {msg.name} has no value")
    return getattr(msg, kind)


def digest(graph: Graph) -> str:
    """sha256 hex of the graph's content: structure, metadata and weights (by their
    sha256), not its history, so a step's output digest is known before it is recorded."""
    model = model_to_proto(graph, "")
    del model.history[:]
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
