"""The lowering's core: rule registration, one graph's lowering state, and one
node as a rule sees it.

A rule receives a :class:`RuleContext` for one IR node and emits ONNX nodes
that produce the node's outputs under the IR value names.

Naming follows the IR so a node can be found in Netron by its module path:
the ONNX node that produces an IR value is named after the IR node, helper
nodes and values are ``<ir node>/<OpType>``, initializers carry the param
names, and symbolic sizes are ``dim_param`` entries (an expression's is its
text, ``batch*seq``). A symbolic size used as an attribute
(``reshape(shape=(batch, seq, -1, 64))``) is read at run time from the graph
input it is bound to (``Graph.dims``) with one ``Shape`` node per dim
(``dims/<name>``), shared by every use; an expression of sizes
(``reshape(shape=(batch*seq, 64))``) is computed from those with ``Add``,
``Sub``, ``Mul`` and ``Div`` (``dims/<expression>``), once per graph.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from ... import ops, symbolic
from ...errors import MaseIRError, UnsupportedOpError
from ...ir import DTYPE_ITEMSIZE, Graph, Node, SizeExpr, Tensor, TensorType, attr_dim, unique_name

ONNX_DTYPES = {
    "float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16,
    "float64": TensorProto.DOUBLE, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
    "int16": TensorProto.INT16, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
    "bool": TensorProto.BOOL, "int4": TensorProto.INT4,
}


# --- registration ---------------------------------------------------------------
def onnx_rule(name: str) -> Callable:
    """Register the decorated function as the ONNX lowering of registry op ``name``."""
    def register(fn: Callable) -> Callable:
        op = ops.get(name)
        if op.onnx is not None and op.onnx is not fn:
            raise ValueError(f"op {name} has two ONNX rules")
        op.onnx = fn
        return fn
    return register


FORMAT_RULES: dict[str, Callable] = {}


def format_rule(kind: str) -> Callable:
    """Register how values of number format ``kind`` are represented in ONNX.

    A rule is ``fn(lowering, src, dst, type, param)``: it emits nodes computing
    ``dst`` (``type.format`` applied) from ``src`` (the plain ``type.dtype``
    value). For a param, ``param`` is the Tensor and ``src`` is None: the rule
    stores the weight however it likes (integers for fixed point).
    """
    def register(fn: Callable) -> Callable:
        FORMAT_RULES[kind] = fn
        return fn
    return register


def needs_format(type_: TensorType) -> bool:
    """Whether ``type_``'s number format rounds values beyond its dtype (maseir.formats.needs_rounding)."""
    from ...formats import needs_rounding
    return needs_rounding(type_)


# --- constants --------------------------------------------------------------------
def _raw(values, dtype: str) -> tuple[tuple[int, ...], bytes]:
    """Shape and little-endian bytes of ``values`` as ``dtype`` (torch handles bfloat16)."""
    t = torch.as_tensor(values, dtype=getattr(torch, dtype)).contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return tuple(t.shape), raw


def _tensor_proto(name: str, dtype: str, shape, raw: bytes) -> TensorProto:
    proto = TensorProto()
    proto.name = name
    proto.data_type = ONNX_DTYPES[dtype]
    proto.dims.extend(int(d) for d in shape)
    proto.raw_data = raw
    return proto


def value_info(name: str, type_: TensorType) -> onnx.ValueInfoProto:
    """ONNX type of an IR value: symbolic sizes become dim_params."""
    if type_.dtype not in ONNX_DTYPES:
        raise UnsupportedOpError(f"value {name}: dtype {type_.dtype} has no ONNX equivalent")
    shape = [str(d) if isinstance(d, SizeExpr) else d for d in type_.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[type_.dtype], shape)


# --- linear weights ------------------------------------------------------------------
def transposed_params(graph: Graph) -> set[str]:
    """Names of the params lowered as their transpose: the weights ``W [out, in]`` that
    every linear layer reading them reads in its weight slot and nothing else reads.

    Each is stored as an initializer under its own name holding ``W^T [in, out]``, so
    a linear layer is ``MatMul(x, W^T)`` (then ``Add`` of the bias) on an initializer:
    the form ONNX tools read as a linear layer (ONNX Runtime's quantizer quantizes
    its weight, symbolic shape inference and Netron see a plain MatMul). A param
    that is not 2-D, whose number format rounds it (it is a computed value in ONNX),
    that a graph output or another op reads, is stored as it is and the linear
    layer transposes it.
    """
    readers: dict[str, list[tuple[Node, int]]] = {}
    for node in graph.nodes:
        for slot, name in enumerate(node.inputs):
            if name in graph.params:
                readers.setdefault(name, []).append((node, slot))
    chosen = set()
    for name, uses in readers.items():
        tensor = graph.params[name]
        if len(tensor.type.shape) != 2 or needs_format(tensor.type) or name in graph.outputs:
            continue
        if all(node.op == "linear" and slot == 1 for node, slot in uses):
            chosen.add(name)
    return chosen


def transposed_bytes(tensor: Tensor) -> bytes:
    """The little-endian bytes of 2-D ``tensor`` ([rows, cols]) transposed to [cols, rows]."""
    rows, cols = (int(d) for d in tensor.type.shape)
    item = np.dtype(f"V{DTYPE_ITEMSIZE[tensor.type.dtype]}")
    array = np.frombuffer(tensor.data, dtype=item).reshape(rows, cols)
    return np.ascontiguousarray(array.T).tobytes()


# --- the lowering -------------------------------------------------------------------
class Lowering:
    """State of one graph's lowering: emitted nodes, initializers, shared helpers."""

    def __init__(self, graph: Graph, opset: int):
        if not graph.has_weights:
            raise MaseIRError("cannot lower a graph read without its weights (io.load_structure); "
                              "load it with io.load")
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.weights: list[tuple[TensorProto, Any]] = []  # (initializer, bytes) of params
        self.types = graph.value_types()
        self.taken: set[str] = set(self.types) | {n.name for n in graph.nodes}
        self.names: dict[str, str] = {}   # IR value -> ONNX value, where they differ
        self.shared: dict[Any, str] = {}  # cache key -> value computed once per graph
        self.transposed = transposed_params(graph)  # params stored as W^T (see transposed_params)

    # names
    def fresh(self, base: str) -> str:
        """A value or node name not used anywhere in the model yet."""
        return unique_name(base, self.taken)

    def value(self, ir_name: str) -> str:
        """The ONNX value holding IR value ``ir_name``."""
        return self.names.get(ir_name, ir_name)

    def transposed_weight(self, ir_name: str) -> str | None:
        """The initializer holding param ``ir_name`` transposed ([in, out]), or None
        where the param is stored as it is (see :func:`transposed_params`)."""
        return ir_name if ir_name in self.transposed else None
    def require_opset(self, version: int, what: str) -> None:
        """Refuse to lower ``what`` (a node or value and the ONNX feature it needs) below opset ``version``."""
        if self.opset < version:
            raise UnsupportedOpError(f"{what} needs ONNX opset {version} or newer (lowering to opset {self.opset}); "
                                     f"use --opset {version}")

    # emission
    def emit(self, op_type: str, inputs: list[str | None], outputs: list[str], name: str,
             **attrs) -> None:
        while inputs and inputs[-1] is None:  # trailing optional inputs are left out
            inputs = inputs[:-1]
        self.nodes.append(helper.make_node(op_type, ["" if i is None else i for i in inputs], outputs,
                                           name=name, **attrs))

    def constant(self, values, dtype: str, hint: str) -> str:
        """An initializer holding ``values``; small ones are shared across the graph."""
        shape, raw = _raw(values, dtype)
        key = ("const", dtype, shape, raw) if len(raw) <= 256 else None
        if key is not None and key in self.shared:
            return self.shared[key]
        name = self.fresh(hint)
        self.initializers.append(_tensor_proto(name, dtype, shape, raw))
        if key is not None:
            self.shared[key] = name
        return name

    # symbolic sizes
    def dim(self, dim) -> str:
        """A 1-D int64 value [size of ``dim``]: a symbol read from the input it is bound
        to, an expression computed from those, an int as a constant."""
        if isinstance(dim, int):
            return self.constant([dim], "int64", "dims/const")
        key = ("dim", dim)
        if key not in self.shared:
            if isinstance(dim, SizeExpr):
                self.shared[key] = self._expression(dim)
                return self.shared[key]
            if dim not in self.graph.dims:
                raise MaseIRError(f"symbolic dim {dim!r} is not bound to a graph input (see Graph.dims)")
            source, axis = self.graph.dims[dim]
            name = self.fresh(f"dims/{dim}")
            self.emit("Shape", [self.value(source)], [name], name, start=axis, end=axis + 1)
            self.shared[key] = name
        return self.shared[key]

    def _expression(self, expr: SizeExpr) -> str:
        """Nodes computing ``expr`` as a 1-D int64 value. ONNX's integer Div truncates,
        which is floor division where the numerator is non-negative (``is_nonnegative``);
        elsewhere floor(a/b) is computed exactly as (a - Mod(a, b)) / b (Mod with
        fmod=0 takes the divisor's sign, as Python's % does)."""
        hint = f"dims/{expr}"
        held: dict[str, object] = {}  # ONNX value -> the dim it holds (numerators of divisions)

        def node(op_type: str, *inputs: str, **attrs) -> str:
            name = self.fresh(f"{hint}/{op_type}")
            self.emit(op_type, list(inputs), [name], name, **attrs)
            return name

        def operand(d) -> str:
            value = self.dim(d)
            held[value] = d
            return value

        def divide(a: str, b: str) -> str:
            if symbolic.is_nonnegative(held[a]):
                return node("Div", a, b)
            return node("Div", node("Sub", a, node("Mod", a, b, fmod=0)), b)

        return symbolic.fold(expr, self.dim, lambda a, b: node("Add", a, b), lambda a, b: node("Sub", a, b),
                             lambda a, b: node("Mul", a, b), divide, recurse=operand)

    def dim_scalar(self, dim) -> str:
        """A 0-d int64 value: the size of symbolic ``dim`` (a name or an expression)."""
        key = ("dim scalar", dim)
        if key not in self.shared:
            name = self.fresh(f"dims/{dim}/scalar")
            self.emit("Squeeze", [self.dim(dim)], [name], name)
            self.shared[key] = name
        return self.shared[key]

    def shape(self, dims, hint: str) -> str:
        """A 1-D int64 value from sizes that mix ints, symbolic dim names and expressions."""
        dims = tuple(dims)
        if all(isinstance(d, int) for d in dims):
            return self.constant(list(dims), "int64", f"{hint}/shape")
        key = ("shape", dims)
        if key not in self.shared:
            parts, run = [], []
            for d in dims:
                if symbolic.is_symbolic(d):
                    if run:
                        parts.append(self.constant(run, "int64", f"{hint}/shape"))
                        run = []
                    parts.append(self.dim(d))
                else:
                    run.append(int(d))
            if run:
                parts.append(self.constant(run, "int64", f"{hint}/shape"))
            if len(parts) == 1:
                return parts[0]
            name = self.fresh(f"dims/[{','.join(str(d) for d in dims)}]")
            self.emit("Concat", parts, [name], name, axis=0)
            self.shared[key] = name
        return self.shared[key]

    def scalar(self, value, dtype: str, hint: str) -> str:
        """A 0-d value of ``dtype``: a number, or a symbolic size (``Sym`` or SizeExpr)."""
        dim = attr_dim(value)
        if dim is not None:
            size = self.dim_scalar(dim)
            if dtype == "int64":
                return size
            key = ("dim scalar", dim, dtype)
            if key not in self.shared:
                name = self.fresh(f"dims/{dim}/{dtype}")
                self.emit("Cast", [size], [name], name, to=ONNX_DTYPES[dtype])
                self.shared[key] = name
            return self.shared[key]
        return self.constant(value, dtype, hint)

    # the graph
    def run(self) -> None:
        for value in self.graph.inputs:
            if needs_format(value.type):
                formatted = self.fresh(f"{value.name}/formatted")
                _apply_format(self, value.name, formatted, value.type, None, value.name)
                self.names[value.name] = formatted
        used = {name for node in self.graph.nodes for name in node.inputs} | set(self.graph.outputs)
        for name, tensor in self.graph.params.items():
            if name in used:  # buffers no node reads (BatchNorm's num_batches_tracked) are left out
                self._param(name, tensor)
        for node in self.graph.nodes:
            self._node(node)

    def _param(self, name: str, tensor: Tensor) -> None:
        if needs_format(tensor.type):
            _apply_format(self, None, name, tensor.type, tensor, name)
            return
        if name in self.transposed:
            rows, cols = tensor.type.shape
            self.weights.append((_tensor_proto(name, tensor.type.dtype, (cols, rows), b""), transposed_bytes(tensor)))
            return
        proto = _tensor_proto(name, tensor.type.dtype, tensor.type.shape, b"")
        self.weights.append((proto, tensor.data))

    def _node(self, node: Node) -> None:
        op = ops.get(node.op)
        if op.onnx is None:
            raise UnsupportedOpError(f"node {node.name}: op {node.op} has no ONNX lowering")
        outputs = []
        for value in node.outputs:
            outputs.append(self.fresh(f"{value.name}/unformatted") if needs_format(value.type) else value.name)
        ctx = RuleContext(self, node, op, outputs)
        op.onnx(ctx)
        for value, produced in zip(node.outputs, outputs):
            if produced != value.name:
                _apply_format(self, produced, value.name, value.type, None, node.name)


class RuleContext:
    """One IR node as an ONNX rule sees it.

    Tensor slots are addressed by their ATen argument name (``"self"``,
    ``"weight"``); ``attr`` gives an attribute or its schema default;
    ``final`` emits the node that produces the IR output.
    """

    def __init__(self, lowering: Lowering, node: Node, op: ops.OpDef, outputs: list[str]):
        self.low = lowering
        self.node = node
        self.op = op
        self.outputs = outputs
        fixed = [t for t in op.tensor_args if not t.variadic]
        self._slots = {t.name: (node.inputs[i] if i < len(node.inputs) else "") for i, t in enumerate(fixed)}
        self.variadic = list(node.inputs[len(fixed):])

    @property
    def out_type(self) -> TensorType:
        return self.node.outputs[0].type

    def attr(self, name: str) -> Any:
        if name in self.node.attrs:
            return self.node.attrs[name]
        spec = self.op.attr_spec(name)
        if spec is None or spec.required:
            return None
        default = spec.default
        return tuple(default) if isinstance(default, list) else default

    def input(self, slot: str) -> str | None:
        """The ONNX value in tensor slot ``slot`` (None when absent or given as a constant)."""
        ir_name = self._slots.get(slot, "")
        return self.low.value(ir_name) if ir_name else None

    def type(self, slot: str) -> TensorType | None:
        ir_name = self._slots.get(slot, "")
        return self.low.types[ir_name] if ir_name else None

    def value_type(self, ir_name: str) -> TensorType:
        return self.low.types[ir_name]

    def operand(self, slot: str, dtype: str) -> str:
        """Tensor slot ``slot`` as ``dtype``: the input (cast if needed) or its constant attribute."""
        value = self.input(slot)
        if value is not None:
            return self.cast(value, self.type(slot).dtype, dtype)
        if slot not in self.node.attrs:
            raise MaseIRError(f"node {self.node.name}: {self.node.op} needs input {slot}")
        return self.low.scalar(self.node.attrs[slot], dtype, f"{self.node.name}/{slot}")

    def operand_type(self, slot: str):
        """The slot's TensorType, or the Python value of its constant attribute."""
        t = self.type(slot)
        if t is not None:
            return t
        value = self.node.attrs.get(slot)
        return 0 if attr_dim(value) is not None else value

    def cast(self, value: str, from_dtype: str, to_dtype: str) -> str:
        if from_dtype == to_dtype:
            return value
        return self.emit("Cast", [value], to=ONNX_DTYPES[to_dtype])

    def const(self, values, dtype: str, what: str = "const") -> str:
        return self.low.constant(values, dtype, f"{self.node.name}/{what}")

    def emit(self, op_type: str, inputs: list[str | None], n_outputs: int = 1, **attrs):
        """A helper node ``<ir node>/<op_type>``; returns its output name (or names)."""
        name = self.low.fresh(f"{self.node.name}/{op_type}")
        outputs = [name] + [self.low.fresh(f"{name}:{i}") for i in range(1, n_outputs)]
        self.low.emit(op_type, inputs, outputs, name, **attrs)
        return outputs[0] if n_outputs == 1 else outputs

    def final(self, op_type: str, inputs: list[str | None], **attrs) -> None:
        """The node producing the IR node's outputs, named after the IR node."""
        self.low.emit(op_type, inputs, list(self.outputs), self.node.name, **attrs)

    def identity(self, value: str) -> None:
        self.final("Identity", [value])


def _apply_format(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None, where: str) -> None:
    fmt = type_.format
    rule = FORMAT_RULES.get(fmt.kind)
    if rule is None:
        raise UnsupportedOpError(f"{where}: number format {fmt} has no ONNX lowering")
    rule(low, src, dst, type_, param)


# --- helpers for rules ---------------------------------------------------------------
def _rank(t: TensorType) -> int:
    return len(t.shape)


def _axis(dim: int, rank: int) -> int:
    return dim + rank if dim < 0 else dim


def _pair(value) -> list[int]:
    value = list(value) if isinstance(value, (tuple, list)) else [value]
    return value * 2 if len(value) == 1 else value


def _promote(*operands) -> str:
    """ATen's result dtype for tensors (TensorType) and Python scalars."""
    def probe(x):
        if isinstance(x, TensorType):
            return torch.empty((1,) * len(x.shape), dtype=getattr(torch, x.dtype), device="meta")
        return x
    a, b = (probe(x) for x in operands)
    if not isinstance(a, torch.Tensor):
        a, b = b, a
    return str(torch.result_type(a, b)).removeprefix("torch.")


def _unsupported(ctx: RuleContext, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"node {ctx.node.name}: {ctx.node.op} {why} has no ONNX lowering")


def _with_batch(ctx: RuleContext, x: str, rank: int, build: Callable) -> None:
    """Run ``build(x, emit)``, written for batched (N, C, H, W) input, on an unbatched
    (C, H, W) one too. ``emit`` is ``ctx.final`` or ``ctx.emit``: the last node
    ``build`` emits through it carries the IR node's name."""
    if rank == 4:
        build(x, ctx.final)
        return
    axes = ctx.const([0], "int64", "axes")
    out = build(ctx.emit("Unsqueeze", [x, axes]), ctx.emit)
    ctx.final("Squeeze", [out, axes])
