"""Mase IR -> ONNX.

``to_onnx(graph)`` gives an ``onnx.ModelProto`` (opset 21 by default) that
computes what ``to_torch(graph)`` computes in eval mode, and ``save_onnx``
writes one atomically, with weights in an external data file next to it for
large models. ONNX Runtime runs the result (``maseir.runtime``).

Every registry op has one ONNX rule here, registered with ``@onnx_rule(name)``
into the op's ``onnx`` slot, so ``maseir.ops`` never imports onnx. A rule
receives a :class:`RuleContext` for one IR node and emits ONNX nodes that
produce the node's outputs under the IR value names.

Naming follows the IR so a node can be found in Netron by its module path:
the ONNX node that produces an IR value is named after the IR node, helper
nodes and values are ``<ir node>/<OpType>``, initializers carry the param
names, and symbolic sizes are ``dim_param`` entries. A symbolic size used as
an attribute (``reshape(shape=(batch, seq, -1, 64))``) is read at run time
from the graph input it is bound to (``Graph.dims``) with one ``Shape`` node
per dim (``dims/<name>``), shared by every use.

Number formats map to small rules (``@format_rule(kind)``): a value whose
format differs from its dtype's (``float32`` data in ``fixed<8,4>``) is
rounded through the format: fixed point and scaled integers as
QuantizeLinear/DequantizeLinear (weights stored as integers), float formats
as a Cast round trip.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from .. import ops
from ..errors import MaseIRError, UnsupportedOpError
from ..io import write_atomic
from ..ir import Graph, Node, NumberFormat, Sym, Tensor, TensorType

DEFAULT_OPSET = 21
"""Opset 21: QuantizeLinear with int4/int16 containers, Gelu, Shape(start, end)."""
MIN_OPSET = 21
_IR_VERSION = 10  # the oldest ONNX IR version that carries opset 21: readable by more tools

ONNX_DTYPES = {
    "float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16,
    "float64": TensorProto.DOUBLE, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
    "int16": TensorProto.INT16, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
    "bool": TensorProto.BOOL,
}
_FLOATS = ("float32", "float16", "bfloat16", "float64")
_INT64_MAX = 2**63 - 1

# A model whose weights would pass protobuf's 2 GB limit gets external data
# even when the caller did not ask for it.
_AUTO_EXTERNAL_BYTES = 1_800_000_000
_EXTERNAL_ALIGN = 4096


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
    """Whether ``type_``'s number format rounds values beyond its dtype."""
    fmt = type_.format
    return fmt is not None and fmt.kind != type_.dtype


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
    return helper.make_tensor_value_info(name, ONNX_DTYPES[type_.dtype], list(type_.shape))


# --- the lowering -------------------------------------------------------------------
class Lowering:
    """State of one graph's lowering: emitted nodes, initializers, shared helpers."""

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.weights: list[tuple[TensorProto, Any]] = []  # (initializer, bytes) of params
        self.types = graph.value_types()
        self.taken: set[str] = set(self.types) | {n.name for n in graph.nodes}
        self.names: dict[str, str] = {}   # IR value -> ONNX value, where they differ
        self.shared: dict[Any, str] = {}  # cache key -> value computed once per graph

    # names
    def fresh(self, base: str) -> str:
        """A value or node name not used anywhere in the model yet."""
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def value(self, ir_name: str) -> str:
        """The ONNX value holding IR value ``ir_name``."""
        return self.names.get(ir_name, ir_name)

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
    def dim(self, dim: str) -> str:
        """A 1-D int64 value [size of ``dim``], read from the input it is bound to."""
        key = ("dim", dim)
        if key not in self.shared:
            if dim not in self.graph.dims:
                raise MaseIRError(f"symbolic dim {dim!r} is not bound to a graph input (see Graph.dims)")
            source, axis = self.graph.dims[dim]
            name = self.fresh(f"dims/{dim}")
            self.emit("Shape", [self.value(source)], [name], name, start=axis, end=axis + 1)
            self.shared[key] = name
        return self.shared[key]

    def dim_scalar(self, dim: str) -> str:
        """A 0-d int64 value: the size of ``dim``."""
        key = ("dim scalar", dim)
        if key not in self.shared:
            name = self.fresh(f"dims/{dim}/scalar")
            self.emit("Squeeze", [self.dim(dim)], [name], name)
            self.shared[key] = name
        return self.shared[key]

    def shape(self, dims, hint: str) -> str:
        """A 1-D int64 value from sizes that mix ints and symbolic dim names."""
        dims = tuple(dims)
        if all(isinstance(d, int) for d in dims):
            return self.constant(list(dims), "int64", f"{hint}/shape")
        key = ("shape", dims)
        if key not in self.shared:
            parts, run = [], []
            for d in dims:
                if isinstance(d, str):
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
        """A 0-d value of ``dtype``: a number, or a symbolic size (``Sym``)."""
        if isinstance(value, Sym):
            size = self.dim_scalar(value.name)
            if dtype == "int64":
                return size
            key = ("dim scalar", value.name, dtype)
            if key not in self.shared:
                name = self.fresh(f"dims/{value.name}/{dtype}")
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
        return 0 if isinstance(value, Sym) else value

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


# --- the public entry points --------------------------------------------------------
def _check_opset(opset: int) -> None:
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise MaseIRError(f"ONNX opset {opset} is not supported: choose {MIN_OPSET} to {latest}")


def build(graph: Graph, opset: int = DEFAULT_OPSET, *, external: str | None = None,
          external_threshold: int = 0) -> tuple[onnx.ModelProto, list]:
    """The ONNX model of ``graph`` and, with ``external`` (a file name), the chunks of
    that external data file holding every weight of at least ``external_threshold`` bytes."""
    _check_opset(opset)
    low = Lowering(graph, opset)
    low.run()
    # The model is filled in place: helper.make_graph/make_model would copy every weight twice.
    model = onnx.ModelProto()
    model.ir_version = _IR_VERSION
    model.opset_import.append(helper.make_opsetid("", opset))
    model.producer_name, model.producer_version = "maseir", _version()
    model.doc_string = "Lowered from a Mase IR graph by maseir."
    for key, value in sorted(graph.metadata.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_graph = model.graph
    onnx_graph.name = _graph_name(graph)
    onnx_graph.input.extend(value_info(v.name, v.type) for v in graph.inputs)
    onnx_graph.output.extend(value_info(low.value(name), low.types[name]) for name in graph.outputs)
    outputs = set(graph.outputs)
    onnx_graph.value_info.extend(value_info(v.name, v.type) for node in graph.nodes for v in node.outputs
                                 if v.name not in outputs)
    onnx_graph.node.extend(low.nodes)
    chunks, size = [], 0
    for proto, data in low.weights:
        init = onnx_graph.initializer.add()
        init.CopyFrom(proto)
        if external is not None and len(data) >= external_threshold and len(data):
            offset = -(-size // _EXTERNAL_ALIGN) * _EXTERNAL_ALIGN
            if offset > size:
                chunks.append(b"\0" * (offset - size))
            chunks.append(data)
            size = offset + len(data)
            init.data_location = TensorProto.EXTERNAL
            for key, value in (("location", external), ("offset", str(offset)), ("length", str(len(data)))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
        else:
            init.raw_data = bytes(data)
    onnx_graph.initializer.extend(low.initializers)
    return model, chunks


def to_onnx(graph: Graph, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """An ONNX model computing ``graph`` (eval semantics), weights inline."""
    total = sum(t.nbytes for t in graph.params.values())
    if total > _AUTO_EXTERNAL_BYTES:
        raise MaseIRError(f"the weights ({total / 1e9:.1f} GB) pass protobuf's 2 GB limit: "
                          "use save_onnx, which writes them to an external data file")
    model, _ = build(graph, opset)
    return model


def save_onnx(graph: Graph, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
              external_data_threshold: int | None = None) -> None:
    """Write ``graph`` as ONNX to ``path`` atomically.

    Weights of at least ``external_data_threshold`` bytes go to ``<name>.data``
    next to the file (a relative path, as ONNX external data wants); models
    whose weights near protobuf's 2 GB limit get that with a 1 KiB threshold
    even when none is given.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise MaseIRError(f"{path}: folder {path.parent} does not exist")
    threshold = external_data_threshold
    if threshold is None and sum(t.nbytes for t in graph.params.values()) > _AUTO_EXTERNAL_BYTES:
        threshold = 1024
    external = path.name + ".data" if threshold is not None else None
    model, chunks = build(graph, opset, external=external, external_threshold=threshold or 0)
    files = [(path.parent / external, chunks)] if chunks else []
    write_atomic(files + [(path, [model.SerializeToString()])])


def _graph_name(graph: Graph) -> str:
    return graph.metadata.get("model_type") or "maseir"


def _version() -> str:
    from .. import __version__
    return __version__


# --- number formats -------------------------------------------------------------
def _float_format(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None) -> None:
    """A float format narrower than the dtype: round through it with a Cast there and back."""
    if param is not None:
        src = low.fresh(f"{dst}/stored")
        low.weights.append((_tensor_proto(src, type_.dtype, type_.shape, b""), param.data))
    narrow = low.fresh(f"{dst}/{type_.format.kind}")
    low.emit("Cast", [src], [narrow], narrow, to=ONNX_DTYPES[type_.format.kind])
    low.emit("Cast", [narrow], [dst], low.fresh(f"{dst}/Cast"), to=ONNX_DTYPES[type_.dtype])


for _kind in ("float32", "float16", "bfloat16"):
    format_rule(_kind)(_float_format)

_CONTAINERS = ((4, TensorProto.INT4), (8, TensorProto.INT8), (16, TensorProto.INT16))


def _integer_grid(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None,
                  width: int, scale: float) -> None:
    """q = clamp(round_half_even(x / scale), -2^(w-1), 2^(w-1)-1), x' = q * scale, as
    QuantizeLinear/DequantizeLinear on the smallest integer container (Clip first when
    the width is not a container's); weights are stored as the integers."""
    fmt = type_.format
    container = next(((bits, kind) for bits, kind in _CONTAINERS if width <= bits), None)
    if container is None or width < 2:
        raise UnsupportedOpError(f"{dst}: number format {fmt} needs a {width}-bit integer; "
                                 "ONNX QuantizeLinear has 4, 8 and 16-bit containers")
    bits, kind = container
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    scale_name = low.constant(scale, type_.dtype, f"{dst}/scale")
    zero = low.fresh(f"{dst}/zero_point")
    low.initializers.append(helper.make_tensor(zero, kind, [], [0]))
    if param is not None:
        x = torch.as_tensor(np.frombuffer(param.data, dtype=np.uint8).copy()).view(
            getattr(torch, type_.dtype)).float().reshape([int(d) for d in type_.shape])
        q = torch.clamp(torch.round(x / np.float32(scale)), lo, hi).to(torch.int64)
        stored = low.fresh(f"{dst}/quantized")
        low.initializers.append(helper.make_tensor(stored, kind, list(q.shape), q.reshape(-1).tolist()))
    else:
        if width < bits:
            clipped = low.fresh(f"{dst}/Clip")
            low.emit("Clip", [src, low.constant(lo * scale, type_.dtype, f"{dst}/min"),
                              low.constant(hi * scale, type_.dtype, f"{dst}/max")], [clipped], clipped)
            src = clipped
        stored = low.fresh(f"{dst}/QuantizeLinear")
        low.emit("QuantizeLinear", [src, scale_name, zero], [stored], stored)
    low.emit("DequantizeLinear", [stored, scale_name, zero], [dst], low.fresh(f"{dst}/DequantizeLinear"))


@format_rule("fixed")
def _fixed(low, src, dst, type_, param) -> None:
    fmt: NumberFormat = type_.format
    _integer_grid(low, src, dst, type_, param, fmt.width, 2.0 ** -fmt.frac)


@format_rule("int")
def _scaled_int(low, src, dst, type_, param) -> None:
    fmt: NumberFormat = type_.format
    _integer_grid(low, src, dst, type_, param, fmt.width, fmt.scale)


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


# --- linear algebra and layers ------------------------------------------------------
@onnx_rule("linear")
def _linear(ctx: RuleContext) -> None:
    x, w, b = ctx.input("input"), ctx.input("weight"), ctx.input("bias")
    if _rank(ctx.type("input")) == 2 and _rank(ctx.type("weight")) == 2:
        ctx.final("Gemm", [x, w, b], transB=1)
        return
    wt = ctx.emit("Transpose", [w], perm=[1, 0]) if _rank(ctx.type("weight")) == 2 else w
    if b is None:
        ctx.final("MatMul", [x, wt])
    else:
        ctx.final("Add", [ctx.emit("MatMul", [x, wt]), b])


@onnx_rule("matmul")
def _matmul(ctx: RuleContext) -> None:
    ctx.final("MatMul", [ctx.input("self"), ctx.input("other")])


@onnx_rule("embedding")
def _embedding(ctx: RuleContext) -> None:
    ctx.final("Gather", [ctx.input("weight"), ctx.input("indices")], axis=0)


@onnx_rule("conv2d")
def _conv2d(ctx: RuleContext) -> None:
    w_type = ctx.type("weight")
    pads = _pair(ctx.attr("padding"))
    attrs = dict(kernel_shape=[int(d) for d in w_type.shape[2:]], strides=_pair(ctx.attr("stride")),
                 pads=pads + pads, dilations=_pair(ctx.attr("dilation")), group=int(ctx.attr("groups")))
    inputs = [ctx.input("weight"), ctx.input("bias")]
    _with_batch(ctx, ctx.input("input"), _rank(ctx.type("input")),
                lambda x, emit: emit("Conv", [x, *inputs], **attrs))


@onnx_rule("layer_norm")
def _layer_norm(ctx: RuleContext) -> None:
    shape = list(ctx.attr("normalized_shape"))
    dtype = ctx.type("input").dtype
    weight = ctx.input("weight") or ctx.const(torch.ones(shape), dtype, "ones")
    ctx.final("LayerNormalization", [ctx.input("input"), weight, ctx.input("bias")],
              axis=-len(shape), epsilon=float(ctx.attr("eps")))


@onnx_rule("batch_norm")
def _batch_norm(ctx: RuleContext) -> None:
    """Eval semantics: the running statistics (ATen refuses eval mode without them)."""
    x, xt = ctx.input("input"), ctx.type("input")
    if not (ctx.input("running_mean") and ctx.input("running_var")):
        raise _unsupported(ctx, "without running statistics")
    channels = xt.shape[1]
    if not isinstance(channels, int):
        raise _unsupported(ctx, "with a symbolic channel count")
    weight = ctx.input("weight") or ctx.const(torch.ones(channels), xt.dtype, "ones")
    bias = ctx.input("bias") or ctx.const(torch.zeros(channels), xt.dtype, "zeros")
    ctx.final("BatchNormalization", [x, weight, bias, ctx.input("running_mean"), ctx.input("running_var")],
              epsilon=float(ctx.attr("eps")))


@onnx_rule("scaled_dot_product_attention")
def _attention(ctx: RuleContext) -> None:
    """softmax(q @ k.T * scale + mask) @ v with eval semantics (no dropout)."""
    q, k, v = ctx.input("query"), ctx.input("key"), ctx.input("value")
    qt, kt = ctx.type("query"), ctx.type("key")
    rank, dtype = _rank(qt), qt.dtype
    scale = ctx.attr("scale")
    if scale is None:
        if not isinstance(qt.shape[-1], int):
            raise _unsupported(ctx, "with a symbolic head size and no scale")
        scale = 1.0 / math.sqrt(qt.shape[-1])
    if ctx.attr("enable_gqa") and qt.shape[-3] != kt.shape[-3]:
        k, v = (_repeat_heads(ctx, t, qt.shape[-3], kt.shape[-3], rank) for t in (k, v))
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    scores = ctx.emit("MatMul", [ctx.emit("Mul", [q, ctx.const(scale, dtype, "scale")]),
                                 ctx.emit("Transpose", [k], perm=perm)])
    mask = ctx.input("attn_mask")
    if mask is not None:
        mask_type = ctx.type("attn_mask")
        if mask_type.dtype == "bool":
            scores = ctx.emit("Add", [scores, _mask_bias(ctx, mask, dtype)])
        else:
            scores = ctx.emit("Add", [scores, ctx.cast(mask, mask_type.dtype, dtype)])
    if ctx.attr("is_causal"):
        sizes = ctx.low.shape((qt.shape[-2], kt.shape[-2]), ctx.node.name)
        ones = ctx.emit("ConstantOfShape", [sizes], value=helper.make_tensor("one", ONNX_DTYPES[dtype], [1], [1]))
        upper = ctx.emit("Equal", [ctx.emit("Trilu", [ones], upper=0), ctx.const(0, dtype, "zero")])
        causal = ctx.emit("Where", [upper, ctx.const(-math.inf, dtype, "minus_inf"), ctx.const(0, dtype, "zero")])
        scores = ctx.emit("Add", [scores, causal])
    ctx.final("MatMul", [ctx.emit("Softmax", [scores], axis=-1), v])


def _mask_bias(ctx: RuleContext, mask: str, dtype: str) -> str:
    """0 where a bool mask is true, -inf elsewhere; computed once per mask for every layer."""
    key = ("mask bias", mask, dtype)
    if key not in ctx.low.shared:
        low = ctx.low
        name = low.fresh(f"{mask}/bias")
        low.emit("Where", [mask, low.constant(0.0, dtype, f"{mask}/zero"),
                           low.constant(-math.inf, dtype, f"{mask}/minus_inf")], [name], name)
        low.shared[key] = name
    return ctx.low.shared[key]


def _repeat_heads(ctx: RuleContext, t: str, q_heads, kv_heads, rank: int) -> str:
    if not isinstance(q_heads, int) or not isinstance(kv_heads, int):
        raise _unsupported(ctx, "with grouped-query attention over symbolic head counts")
    groups = q_heads // kv_heads
    expanded = ctx.emit("Unsqueeze", [t, ctx.const([rank - 2], "int64", "axes")])
    shape = ctx.emit("Shape", [expanded])
    target = ctx.emit("ScatterElements", [shape, ctx.const([rank - 2], "int64", "index"),
                                          ctx.const([groups], "int64", "groups")], axis=0)
    expanded = ctx.emit("Expand", [expanded, target])
    merged = ctx.emit("Concat", [ctx.emit("Shape", [t], end=rank - 3), ctx.const([q_heads], "int64", "heads"),
                                 ctx.emit("Shape", [t], start=rank - 2)], axis=0)
    return ctx.emit("Reshape", [expanded, merged])


@onnx_rule("dropout")
def _dropout(ctx: RuleContext) -> None:
    ctx.identity(ctx.input("input"))  # eval semantics


def _pool_attrs(ctx: RuleContext) -> dict:
    kernel = _pair(ctx.attr("kernel_size"))
    stride = _pair(ctx.attr("stride")) if ctx.attr("stride") else kernel
    pads = _pair(ctx.attr("padding"))
    return dict(kernel_shape=kernel, strides=stride, pads=pads + pads, ceil_mode=int(bool(ctx.attr("ceil_mode"))))


@onnx_rule("max_pool2d")
def _max_pool2d(ctx: RuleContext) -> None:
    attrs = dict(_pool_attrs(ctx), dilations=_pair(ctx.attr("dilation")))
    _with_batch(ctx, ctx.input("self"), _rank(ctx.type("self")), lambda x, emit: emit("MaxPool", [x], **attrs))


@onnx_rule("avg_pool2d")
def _avg_pool2d(ctx: RuleContext) -> None:
    attrs = dict(_pool_attrs(ctx), count_include_pad=int(bool(ctx.attr("count_include_pad"))))
    divisor = ctx.attr("divisor_override")
    dtype = ctx.type("self").dtype

    def build(x: str, emit: Callable):
        if not divisor:
            return emit("AveragePool", [x], **attrs)
        k = attrs["kernel_shape"]
        return emit("Mul", [ctx.emit("AveragePool", [x], **attrs), ctx.const(k[0] * k[1] / divisor, dtype, "divisor")])
    _with_batch(ctx, ctx.input("self"), _rank(ctx.type("self")), build)


@onnx_rule("adaptive_avg_pool2d")
def _adaptive_avg_pool2d(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    out_h, out_w = _pair(ctx.attr("output_size"))
    in_h, in_w = xt.shape[-2], xt.shape[-1]
    if (out_h, out_w) == (1, 1):
        _with_batch(ctx, ctx.input("self"), _rank(xt), lambda x, emit: emit("GlobalAveragePool", [x]))
        return
    if not isinstance(in_h, int) or not isinstance(in_w, int):
        raise _unsupported(ctx, "to a size other than 1x1 over symbolic spatial sizes")
    # Adaptive average pooling is linear: out = P_h @ x @ P_w.T with averaging matrices.
    p_h, p_w = _averaging_matrix(out_h, in_h), _averaging_matrix(out_w, in_w)
    rows = ctx.emit("MatMul", [ctx.const(p_h, xt.dtype, "rows"), ctx.input("self")])
    ctx.final("MatMul", [rows, ctx.const(p_w.T.contiguous(), xt.dtype, "cols")])


def _averaging_matrix(out: int, size: int) -> torch.Tensor:
    m = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


@onnx_rule("cross_entropy")
def _cross_entropy(ctx: RuleContext) -> None:
    if ctx.attr("label_smoothing"):
        raise _unsupported(ctx, "with label_smoothing")
    target_type = ctx.type("target")
    if target_type.dtype not in ("int64", "int32"):
        raise _unsupported(ctx, "with class-probability targets")
    reduction = {0: "none", 1: "mean", 2: "sum"}[int(ctx.attr("reduction"))]
    scores, target = ctx.input("self"), ctx.input("target")
    unbatched = _rank(ctx.type("self")) == 1
    if unbatched:
        axes = ctx.const([0], "int64", "axes")
        scores, target = ctx.emit("Unsqueeze", [scores, axes]), ctx.emit("Unsqueeze", [target, axes])
    inputs = [scores, target, ctx.input("weight")]
    attrs = dict(reduction=reduction, ignore_index=int(ctx.attr("ignore_index")))
    if unbatched and reduction == "none":
        ctx.final("Squeeze", [ctx.emit("SoftmaxCrossEntropyLoss", inputs, **attrs), ctx.const([0], "int64", "axes")])
    else:
        ctx.final("SoftmaxCrossEntropyLoss", inputs, **attrs)


# --- activations ----------------------------------------------------------------------
def _unary(name: str, onnx_op: str) -> None:
    """An elementwise op computed in its result dtype (ATen's sqrt of an int is a float)."""
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, ctx.out_type.dtype)
        ctx.final(onnx_op, [x])


for _name, _onnx_op in (("relu", "Relu"), ("tanh", "Tanh"), ("sigmoid", "Sigmoid"), ("erf", "Erf"),
                        ("neg", "Neg"), ("sqrt", "Sqrt"), ("exp", "Exp"), ("log", "Log"), ("abs", "Abs"),
                        ("reciprocal", "Reciprocal")):
    _unary(_name, _onnx_op)


@onnx_rule("rsqrt")
def _rsqrt(ctx: RuleContext) -> None:
    x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, ctx.out_type.dtype)
    ctx.final("Reciprocal", [ctx.emit("Sqrt", [x])])


@onnx_rule("gelu")
def _gelu(ctx: RuleContext) -> None:
    ctx.final("Gelu", [ctx.input("self")], approximate=str(ctx.attr("approximate")))


@onnx_rule("silu")
def _silu(ctx: RuleContext) -> None:
    x = ctx.input("self")
    ctx.final("Mul", [x, ctx.emit("Sigmoid", [x])])


@onnx_rule("leaky_relu")
def _leaky_relu(ctx: RuleContext) -> None:
    ctx.final("LeakyRelu", [ctx.input("self")], alpha=float(ctx.attr("negative_slope")))


@onnx_rule("hardtanh")
def _hardtanh(ctx: RuleContext) -> None:
    dtype = ctx.type("self").dtype
    ctx.final("Clip", [ctx.input("self"), ctx.const(ctx.attr("min_val"), dtype, "min"),
                       ctx.const(ctx.attr("max_val"), dtype, "max")])


@onnx_rule("clamp")
def _clamp(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    low, high = ctx.attr("min"), ctx.attr("max")
    ctx.final("Clip", [ctx.cast(ctx.input("self"), ctx.type("self").dtype, dtype),
                       None if low is None else ctx.const(low, dtype, "min"),
                       None if high is None else ctx.const(high, dtype, "max")])


def _softmax_like(name: str, onnx_op: str) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, ctx.out_type.dtype)
        ctx.final(onnx_op, [x], axis=int(ctx.attr("dim")))


_softmax_like("softmax", "Softmax")
_softmax_like("log_softmax", "LogSoftmax")


# --- elementwise arithmetic and comparison ------------------------------------------------
def _arithmetic(name: str, onnx_op: str, bool_op: str | None = None) -> None:
    """self OP other computed in the result dtype (ATen promotion), with add/sub's alpha."""
    other_slot = "exponent" if name == "pow" else "other"

    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        dtype = ctx.out_type.dtype
        a, b = ctx.operand("self", dtype), ctx.operand(other_slot, dtype)
        alpha = ctx.attr("alpha")
        if alpha is not None and alpha != 1:
            b = ctx.emit("Mul", [b, ctx.const(alpha, dtype, "alpha")])
        ctx.final(bool_op if dtype == "bool" and bool_op else onnx_op, [a, b])


_arithmetic("add", "Add", "Or")
_arithmetic("sub", "Sub")
_arithmetic("mul", "Mul", "And")
_arithmetic("div", "Div")
_arithmetic("pow", "Pow")
_arithmetic("maximum", "Max", "Or")
_arithmetic("minimum", "Min", "And")


def _comparison(name: str, onnx_op: str, negate: bool = False) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        dtype = _promote(ctx.operand_type("self"), ctx.operand_type("other"))
        inputs = [ctx.operand("self", dtype), ctx.operand("other", dtype)]
        if negate:
            ctx.final("Not", [ctx.emit(onnx_op, inputs)])
        else:
            ctx.final(onnx_op, inputs)


_comparison("eq", "Equal")
_comparison("ne", "Equal", negate=True)
_comparison("ge", "GreaterOrEqual")
_comparison("gt", "Greater")
_comparison("lt", "Less")
_comparison("le", "LessOrEqual")


def _bitwise(name: str, logical: str, bitwise: str) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        dtype = ctx.out_type.dtype
        ctx.final(logical if dtype == "bool" else bitwise, [ctx.operand("self", dtype), ctx.operand("other", dtype)])


_bitwise("bitwise_and", "And", "BitwiseAnd")
_bitwise("bitwise_or", "Or", "BitwiseOr")


@onnx_rule("bitwise_not")
def _bitwise_not(ctx: RuleContext) -> None:
    ctx.final("Not" if ctx.out_type.dtype == "bool" else "BitwiseNot", [ctx.input("self")])


@onnx_rule("isnan")
def _isnan(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    if xt.dtype in _FLOATS:
        ctx.final("IsNaN", [ctx.input("self")])
    else:  # integers are never NaN
        ctx.final("ConstantOfShape", [ctx.emit("Shape", [ctx.input("self")])],
                  value=helper.make_tensor("false", TensorProto.BOOL, [1], [False]))


@onnx_rule("where")
def _where(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    ctx.final("Where", [ctx.input("condition"), ctx.operand("self", dtype), ctx.operand("other", dtype)])


@onnx_rule("masked_fill")
def _masked_fill(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    value = ctx.low.scalar(ctx.attr("value"), dtype, f"{ctx.node.name}/value")
    ctx.final("Where", [ctx.input("mask"), value, ctx.input("self")])


@onnx_rule("to")
def _to(ctx: RuleContext) -> None:
    x, source = ctx.input("self"), ctx.type("self").dtype
    target = ctx.attr("dtype").name
    if source == target:
        ctx.identity(x)
    else:
        ctx.final("Cast", [x], to=ONNX_DTYPES[target])


# --- reductions ---------------------------------------------------------------------
def _reduction(name: str, onnx_op: str) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        xt = ctx.type("self")
        x = ctx.cast(ctx.input("self"), xt.dtype, ctx.out_type.dtype)
        dims = ctx.attr("dim")
        axes = ctx.const([int(d) for d in dims], "int64", "axes") if dims else None
        ctx.final(onnx_op, [x, axes], keepdims=int(bool(ctx.attr("keepdim"))))


_reduction("mean", "ReduceMean")
_reduction("sum", "ReduceSum")


# --- shape and indexing ----------------------------------------------------------------
@onnx_rule("reshape")
def _reshape(ctx: RuleContext) -> None:
    shape = tuple(ctx.attr("shape"))
    allowzero = int(0 in shape and -1 not in shape)
    ctx.final("Reshape", [ctx.input("self"), ctx.low.shape(shape, ctx.node.name)], allowzero=allowzero)


@onnx_rule("flatten")
def _flatten(ctx: RuleContext) -> None:
    x, rank = ctx.input("self"), _rank(ctx.type("self"))
    if rank == 0:
        ctx.final("Reshape", [x, ctx.const([1], "int64", "shape")])
        return
    start, end = _axis(int(ctx.attr("start_dim")), rank), _axis(int(ctx.attr("end_dim")), rank)
    if start == end:
        ctx.identity(x)
    elif start == 1 and end == rank - 1:
        ctx.final("Flatten", [x], axis=1)
    else:
        parts = [ctx.emit("Shape", [x], end=start)] if start else []
        parts.append(ctx.const([-1], "int64", "minus_one"))
        if end < rank - 1:
            parts.append(ctx.emit("Shape", [x], start=end + 1))
        ctx.final("Reshape", [x, ctx.emit("Concat", parts, axis=0)])


@onnx_rule("transpose")
def _transpose(ctx: RuleContext) -> None:
    rank = _rank(ctx.type("self"))
    if rank < 2:
        ctx.identity(ctx.input("self"))
        return
    perm = list(range(rank))
    a, b = _axis(int(ctx.attr("dim0")), rank), _axis(int(ctx.attr("dim1")), rank)
    perm[a], perm[b] = perm[b], perm[a]
    ctx.final("Transpose", [ctx.input("self")], perm=perm)


@onnx_rule("permute")
def _permute(ctx: RuleContext) -> None:
    rank = _rank(ctx.type("self"))
    ctx.final("Transpose", [ctx.input("self")], perm=[_axis(int(d), rank) for d in ctx.attr("dims")])


@onnx_rule("unsqueeze")
def _unsqueeze(ctx: RuleContext) -> None:
    dim = _axis(int(ctx.attr("dim")), _rank(ctx.type("self")) + 1)
    ctx.final("Unsqueeze", [ctx.input("self"), ctx.const([dim], "int64", "axes")])


@onnx_rule("squeeze")
def _squeeze(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    if not xt.shape:
        ctx.identity(ctx.input("self"))
        return
    dim = _axis(int(ctx.attr("dim")), _rank(xt))
    if xt.shape[dim] == 1:
        ctx.final("Squeeze", [ctx.input("self"), ctx.const([dim], "int64", "axes")])
    else:  # ATen leaves a dim that is not 1 in place (symbolic dims are never 1, as in the type rule)
        ctx.identity(ctx.input("self"))


@onnx_rule("expand")
def _expand(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    size = list(ctx.attr("size"))
    offset = len(size) - _rank(xt)
    for i, d in enumerate(size):
        if d == -1:  # keep the input's size there
            size[i] = xt.shape[i - offset]
    ctx.final("Expand", [ctx.input("self"), ctx.low.shape(size, ctx.node.name)])


@onnx_rule("slice")
def _slice(ctx: RuleContext) -> None:
    def bound(value, default: int) -> str:
        if value is None:
            return ctx.const([default], "int64", "bound")
        if isinstance(value, Sym):
            return ctx.low.dim(value.name)
        return ctx.const([int(value)], "int64", "bound")

    dim = _axis(int(ctx.attr("dim")), _rank(ctx.type("self")))
    ctx.final("Slice", [ctx.input("self"), bound(ctx.attr("start"), 0), bound(ctx.attr("end"), _INT64_MAX),
                        ctx.const([dim], "int64", "axes"), ctx.const([int(ctx.attr("step"))], "int64", "steps")])


@onnx_rule("select")
def _select(ctx: RuleContext) -> None:
    index = ctx.attr("index")
    index = ctx.low.scalar(index, "int64", f"{ctx.node.name}/index")
    ctx.final("Gather", [ctx.input("self"), index], axis=int(ctx.attr("dim")))


@onnx_rule("index")
def _index(ctx: RuleContext) -> None:
    """Advanced indexing by integer tensors (ATen's placement of the indexed dims)."""
    xt = ctx.type("self")
    rank = _rank(xt)
    present = [i for i, name in enumerate(ctx.variadic) if name]
    if not present:
        ctx.identity(ctx.input("self"))
        return
    indices = []
    for i in present:
        t = ctx.value_type(ctx.variadic[i])
        if t.dtype == "bool":
            raise _unsupported(ctx, "by a bool mask (a data-dependent shape)")
        indices.append(ctx.cast(ctx.low.value(ctx.variadic[i]), t.dtype, "int64"))
    order = present + [d for d in range(rank) if d not in present]
    x = ctx.input("self")
    if order != list(range(rank)):
        x = ctx.emit("Transpose", [x], perm=order)
    first = present[0]
    # ATen keeps the indexed dims where they were when they are adjacent, else puts them first.
    back = present == list(range(first, first + len(present))) and first > 0
    emit = ctx.emit if back else ctx.final
    if len(indices) == 1:
        out = emit("Gather", [x, indices[0]], axis=0)
    else:
        total = indices[0]
        for i in indices[1:]:
            total = ctx.emit("Add", [total, i])
        shape = ctx.emit("Shape", [total])
        last = ctx.const([-1], "int64", "axes")
        stacked = ctx.emit("Concat", [ctx.emit("Unsqueeze", [ctx.emit("Expand", [i, shape]), last])
                                      for i in indices], axis=-1)
        out = emit("GatherND", [x, stacked])
    if back:
        n_b = _rank(ctx.out_type) - (rank - len(present))
        perm = list(range(n_b, n_b + first)) + list(range(n_b)) + list(range(n_b + first, _rank(ctx.out_type)))
        ctx.final("Transpose", [out], perm=perm)


@onnx_rule("gather")
def _gather(ctx: RuleContext) -> None:
    xt, it = ctx.type("self"), ctx.type("index")
    dim = _axis(int(ctx.attr("dim")), _rank(xt))
    x = ctx.input("self")
    if any(a != b for i, (a, b) in enumerate(zip(xt.shape, it.shape)) if i != dim):
        # ATen reads only self[:index.size(0), ...] off the gather dim; GatherElements wants equal sizes.
        axes = [i for i in range(_rank(xt)) if i != dim]
        ends = ctx.emit("Gather", [ctx.emit("Shape", [ctx.input("index")]), ctx.const(axes, "int64", "axes")])
        x = ctx.emit("Slice", [x, ctx.const([0] * len(axes), "int64", "starts"), ends,
                               ctx.const(axes, "int64", "axes")])
    ctx.final("GatherElements", [x, ctx.input("index")], axis=dim)


@onnx_rule("cat")
def _cat(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    rank = _rank(ctx.out_type)
    inputs = []
    for name in ctx.variadic:
        t = ctx.value_type(name)
        if rank > 1 and t.shape == (0,):  # ATen's legacy: empty 1-D tensors are skipped
            continue
        inputs.append(ctx.cast(ctx.low.value(name), t.dtype, dtype))
    ctx.final("Concat", inputs, axis=int(ctx.attr("dim")))


# --- creation -----------------------------------------------------------------------------
@onnx_rule("arange")
def _arange(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    end = ctx.low.scalar(ctx.attr("end"), dtype, f"{ctx.node.name}/end")
    ctx.final("Range", [ctx.const(0, dtype, "start"), end, ctx.const(1, dtype, "step")])


def _fill(ctx: RuleContext, value) -> None:
    dtype = ctx.out_type.dtype
    shape = ctx.low.shape(ctx.attr("size"), ctx.node.name)
    if isinstance(value, Sym):
        ctx.final("Expand", [ctx.low.scalar(value, dtype, ""), shape])
        return
    _, raw = _raw([value], dtype)
    fill = TensorProto(data_type=ONNX_DTYPES[dtype], dims=[1], raw_data=raw, name="value")
    ctx.final("ConstantOfShape", [shape], value=fill)


@onnx_rule("new_ones")
def _new_ones(ctx: RuleContext) -> None:
    _fill(ctx, 1)


@onnx_rule("full")
def _full(ctx: RuleContext) -> None:
    _fill(ctx, ctx.attr("fill_value"))


def _missing_rules() -> list[str]:
    """Registry ops without an ONNX rule (a test keeps this empty)."""
    return [name for name, op in ops.REGISTRY.items() if op.onnx is None]


__all__ = ["DEFAULT_OPSET", "FORMAT_RULES", "Lowering", "RuleContext", "build", "format_rule", "needs_format",
           "onnx_rule", "save_onnx", "to_onnx", "value_info"]
