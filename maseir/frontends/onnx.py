"""ONNX -> Mase IR.

``import_onnx(path)`` reads an ONNX file (the protobuf only: nothing in it is
executed) and converts it node by node into registry ops, so the result is an
ordinary Graph that passes ``maseir.check`` and lowers to torch and back to
ONNX. Names carry over: IR nodes are named after ONNX nodes, values after
ONNX values, params after initializers (external data is read relative to
the ONNX file); symbolic ``dim_param`` sizes become symbolic dims bound to
the first graph input axis that carries them.

ONNX computes shapes at run time (``Shape -> Gather -> Concat -> Reshape``);
the IR states them as attributes that may name symbolic dims
(``reshape(shape=(batch, seq, -1, 64))``). So while converting, every ONNX
value is one of:

- a tensor: an IR value;
- a constant (an initializer, a ``Constant``, or something folded from
  constants): it becomes a param only where a tensor op reads it, and an
  attribute where the IR wants one (a scalar ``other``, a reshape target);
- a size vector: a 1-D (or 0-d) int64 whose entries are sizes or symbolic
  dim names (``Shape`` of a tensor with symbolic dims and what ``Gather``,
  ``Slice``, ``Concat``, ``Unsqueeze``... make of it), folded into the
  attributes of the ops that consume it;
- a flattened view: a tensor whose leading dims are merged into one whose
  size is a product of symbolic dims (``Reshape(x, [-1, seq, 64])`` on a
  ``(batch, heads, seq, 64)`` x), which the IR cannot state. Ops that
  leave the merged dim alone (transposes of the other dims, matmuls,
  elementwise ops, softmax over another axis) run on the unmerged tensor
  instead, and the ``Reshape`` that restores the dims makes it a tensor
  again. This covers the reshape/transpose/reshape chains exporters emit
  around attention.

Where the IR cannot express something (a size that is an expression of
symbolic dims, an op outside the list below) the import fails with a
one-line error naming the ONNX node.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from .. import ops
from ..errors import FileFormatError, UnsupportedOpError
from ..ir import DType, Graph, Node, Sym, Tensor, TensorType, Value, default_format

_DTYPES = {
    TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16",
    TensorProto.DOUBLE: "float64", TensorProto.INT64: "int64", TensorProto.INT32: "int32",
    TensorProto.INT16: "int16", TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.BOOL: "bool",
}
_INT64_MAX = 2**63 - 1


def _numpy_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


# --- what an ONNX value is while converting -----------------------------------------------
@dataclass(eq=False)
class Const:
    """A value known while importing. ``name`` is used if it becomes a param;
    ``weight`` marks learnable weights (float initializers), which become trainable."""

    array: np.ndarray
    name: str
    weight: bool = False
    transposed: Const | None = None  # this is transposed.array.T (lets MatMul find a linear layer)

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.array.dtype.name == "bfloat16" else self.array.dtype.name


@dataclass(eq=False)
class Sizes:
    """A 1-D (or 0-d, ``scalar``) integer whose entries are sizes or symbolic dim names."""

    items: tuple
    scalar: bool = False
    dtype: str = "int64"


@dataclass(eq=False)
class Flat:
    """IR value ``value`` viewed with its leading dims ``lead`` merged into one."""

    value: str
    lead: tuple


def import_onnx(path: str | Path) -> Graph:
    """Read the ONNX file at ``path`` into a Graph."""
    path = Path(path)
    model = read_model(path)
    return _Importer(model, path).run()


def read_model(path: Path) -> onnx.ModelProto:
    """The ModelProto in ``path`` (external data not loaded), or a one-line FileFormatError."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not an ONNX file") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(blob)
    except (DecodeError, ValueError, RuntimeError):
        raise FileFormatError(f"{path}: not an ONNX model (the bytes are not an ONNX protobuf)") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise FileFormatError(f"{path}: not an ONNX model (no IR version or graph outputs)")
    return model


# --- the importer --------------------------------------------------------------------------
class _Importer:
    def __init__(self, model: onnx.ModelProto, path: Path):
        self.model = model
        self.path = path
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.values: dict[str, Any] = {}       # ONNX value -> IR value name | Const | Sizes | Flat
        self.types: dict[str, TensorType] = {}  # IR value -> type
        self.nodes: list[Node] = []
        self.params: dict[str, Tensor] = {}
        self.param_of: dict[int, str] = {}      # id(Const) -> param name
        self.taken: set[str] = set()            # value and param names
        self.node_names: set[str] = set()
        self.dims: dict[str, tuple[str, int]] = {}
        self.inputs: list[Value] = []
        self.uses: dict[str, int] = {}
        self.biasless: dict[str, tuple] = {}    # IR value -> (linear node without bias, its ONNX value)
        self._external: dict[str, bytes] = {}
        self.cur: onnx.NodeProto | None = None
        self.cur_name = ""
        self.cur_scope = ""

    # --- driver --------------------------------------------------------------------------
    def run(self) -> Graph:
        graph = self.model.graph
        self._check_ops(graph)
        for node in graph.node:
            for name in node.input:
                if name:
                    self.uses[name] = self.uses.get(name, 0) + 1
        initializers = {t.name for t in graph.initializer}
        for tensor in graph.initializer:
            self.values[tensor.name] = self._initializer(tensor)
            self.taken.add(tensor.name)
        for value in graph.input:
            if value.name not in initializers:
                self._input(value)
        for node in graph.node:
            self._convert(node)
        outputs = [self._output(o.name) for o in graph.output]
        return self._finish(outputs)

    def _check_ops(self, graph) -> None:
        unsupported: dict[str, list[str]] = {}
        for i, node in enumerate(graph.node):
            domain = node.domain if node.domain not in ("", "ai.onnx") else ""
            if domain or not hasattr(self, f"_op_{node.op_type}"):
                key = f"{domain}::{node.op_type}" if domain else node.op_type
                unsupported.setdefault(key, []).append(node.name or f"#{i}")
        if unsupported:
            listed = "; ".join(f"{op} (nodes {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
                               for op, names in sorted(unsupported.items()))
            raise UnsupportedOpError(f"{self.path}: unsupported ONNX ops: {listed}")

    def _input(self, value: onnx.ValueInfoProto) -> None:
        tt = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tt.elem_type not in _DTYPES:
            raise UnsupportedOpError(f"{self.path}: input {value.name}: only tensors of "
                                     f"{', '.join(sorted(set(_DTYPES.values())))} are supported")
        if not tt.HasField("shape"):
            raise UnsupportedOpError(f"{self.path}: input {value.name} has no shape (its rank must be known)")
        shape = []
        for axis, dim in enumerate(tt.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
                continue
            name = _dim_name(dim.dim_param) if dim.dim_param else f"{value.name}_dim{axis}"
            self.dims.setdefault(name, (value.name, axis))
            shape.append(name)
        dtype = _DTYPES[tt.elem_type]
        type_ = TensorType(dtype, tuple(shape), default_format(dtype))
        self.inputs.append(Value(value.name, type_))
        self.types[value.name] = type_
        self.values[value.name] = value.name
        self.taken.add(value.name)

    def _convert(self, node: onnx.NodeProto) -> None:
        self.cur = node
        self.cur_name = node.name or f"{node.op_type.lower()}"
        self.cur_scope = _scope(node)
        ins = [self.values.get(name) if name else None for name in node.input]
        for name, value in zip(node.input, ins):
            if name and value is None:
                raise FileFormatError(f"{self.path}: node {self.cur_name} reads {name}, which nothing defines "
                                      "before it (the graph is not topologically sorted?)")
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        try:
            if any(isinstance(v, Flat) for v in ins):
                results = self._flat(node, ins, attrs)
            else:
                results = getattr(self, f"_op_{node.op_type}")(node, ins, attrs)
        except (KeyError, IndexError, ValueError) as exc:  # a malformed node: missing inputs or attributes
            raise FileFormatError(f"{self.path}: node {self.cur_name} ({node.op_type}) is malformed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        for name, result in zip(node.output, results):
            if name:
                self.values[name] = result

    def _output(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            raise FileFormatError(f"{self.path}: graph output {name} is not computed by any node")
        if isinstance(value, Flat):
            raise self._error(f"graph output {name} has a size that is a product of symbolic dims")
        return self.tensor(value)

    def _finish(self, outputs: list[str]) -> Graph:
        # Drop what no output needs (nodes whose results were folded into attributes).
        needed = set(outputs)
        kept = []
        for node in reversed(self.nodes):
            if any(v.name in needed for v in node.outputs):
                kept.append(node)
                needed.update(i for i in node.inputs if i)
        nodes = kept[::-1]
        params = {k: v for k, v in sorted(self.params.items()) if k in needed}
        for node in nodes:  # running statistics are buffers, not weights
            if node.op == "batch_norm":
                for name in node.inputs[3:5]:
                    if name in params:
                        params[name].trainable = False
        # Graph outputs keep their ONNX names where an Identity-like node made them aliases.
        wanted = [o.name for o in self.model.graph.output]
        inputs = {v.name for v in self.inputs}
        renames = {}
        for have, want in zip(outputs, wanted):
            if have != want and have not in renames and have not in inputs and have not in params \
                    and want not in self.types and want not in params:
                renames[have] = want
        for node in nodes:
            node.inputs = [renames.get(i, i) for i in node.inputs]
            node.outputs = [Value(renames.get(v.name, v.name), v.type) for v in node.outputs]
        metadata = {p.key: p.value for p in self.model.metadata_props}
        metadata.setdefault("source", self.path.name)
        if self.model.producer_name:
            metadata.setdefault("onnx_producer", f"{self.model.producer_name} {self.model.producer_version}".strip())
        return Graph(self.inputs, [renames.get(o, o) for o in outputs], nodes, params, self.dims, metadata)

    # --- initializers and external data ------------------------------------------------------
    def _initializer(self, tensor: TensorProto) -> Const:
        if tensor.data_type not in _DTYPES:
            raise UnsupportedOpError(f"{self.path}: initializer {tensor.name} has ONNX element type "
                                     f"{TensorProto.DataType.Name(tensor.data_type)}, which the IR does not hold")
        dtype = _DTYPES[tensor.data_type]
        shape = tuple(int(d) for d in tensor.dims)
        if tensor.data_location == TensorProto.EXTERNAL:
            raw = self._external_bytes(tensor)
        elif tensor.HasField("raw_data"):
            raw = tensor.raw_data
        else:
            raw = None
        if raw is not None:
            expected = int(np.prod(shape, dtype=np.int64)) * _numpy_dtype(dtype).itemsize
            if len(raw) != expected:
                raise FileFormatError(f"{self.path}: initializer {tensor.name} holds {len(raw)} bytes, "
                                      f"its shape {list(shape)} needs {expected}")
            array = np.frombuffer(raw, dtype=_numpy_dtype(dtype)).reshape(shape)
        else:
            array = numpy_helper.to_array(tensor).astype(_numpy_dtype(dtype)).reshape(shape)
        return Const(array, tensor.name, weight=dtype.startswith(("float", "bfloat")) and len(shape) >= 1)

    def _external_bytes(self, tensor: TensorProto) -> bytes:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        rel = PurePosixPath(location)
        if not location or rel.is_absolute() or ".." in rel.parts or "\\" in location:
            raise FileFormatError(f"{self.path}: tensor {tensor.name}: external data path {location!r} "
                                  "must be a plain relative path")
        if location not in self._external:
            target = self.path.parent / rel
            try:
                self._external[location] = target.read_bytes()
            except OSError:
                raise FileFormatError(f"{self.path}: external data file {target} (tensor {tensor.name}) "
                                      "is missing or unreadable") from None
        blob = self._external[location]
        offset = int(info.get("offset", 0))
        length = int(info.get("length", len(blob) - offset))
        if offset + length > len(blob):
            raise FileFormatError(f"{self.path}: tensor {tensor.name} lies past the end of {location} (truncated?)")
        return memoryview(blob)[offset:offset + length]

    # --- making IR nodes -----------------------------------------------------------------------
    def _fresh(self, base: str, nodes: bool = False) -> str:
        """A name unused among values (and, with ``nodes``, among node names too)."""
        name, i = base, 0
        while name in self.taken or (nodes and name in self.node_names):
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def _fresh_node(self, base: str) -> str:
        name, i = base, 0
        while name in self.node_names:
            i += 1
            name = f"{base}_{i}"
        self.node_names.add(name)
        return name

    def _error(self, why: str) -> UnsupportedOpError:
        node = self.cur
        return UnsupportedOpError(f"{self.path}: node {self.cur_name} ({node.op_type if node else '?'}): {why}")

    def tensor(self, value) -> str:
        """The IR value for ``value``: constants become params, size vectors tensors."""
        if isinstance(value, str):
            return value
        if isinstance(value, Const):
            key = id(value)
            if key not in self.param_of:
                name = value.name if value.name not in self.types else self._fresh(value.name)
                self.taken.add(name)
                if value.name == "sizes":
                    name = self._fresh(f"{self.cur_name}/sizes")
                dtype = value.dtype
                array = np.ascontiguousarray(value.array)
                type_ = TensorType(dtype, tuple(int(d) for d in array.shape), default_format(dtype))
                self.params[name] = Tensor(name, type_, array.tobytes(), trainable=value.weight)
                self.types[name] = type_
                self.param_of[key] = name
            return self.param_of[key]
        if isinstance(value, Sizes):
            parts = [self.emit("full", [], {"size": () if value.scalar else (1,),
                                            "fill_value": Sym(d) if isinstance(d, str) else d,
                                            "dtype": DType(value.dtype)}) for d in value.items]
            if value.scalar:
                return parts[0]
            return parts[0] if len(parts) == 1 else self.emit("cat", parts, {"dim": 0})
        if isinstance(value, Flat):
            raise self._error("uses a tensor whose size is a product of symbolic dims as a whole")
        raise TypeError(value)

    def emit(self, op_name: str, inputs: list, attrs: dict, out: str | None = None) -> str:
        """Append an IR node. With ``out`` (an ONNX output name) the node is the one
        the ONNX node becomes and takes its names; otherwise it is a helper."""
        op = ops.get(op_name)
        names = ["" if v is None else self.tensor(v) for v in inputs]
        if not any(t.variadic for t in op.tensor_args):
            while names and names[-1] == "":
                names.pop()
        attrs = _canonical(op, attrs)
        try:
            (out_type,) = ops.infer_types(op, [self.types[n] if n else None for n in names], attrs)
        except ops.TypeRuleError as exc:
            raise self._error(str(exc)) from None
        if out is not None:
            node_name = self._fresh_node(self.cur_name)
            value_name = out if out not in self.taken else self._fresh(out)
            self.taken.add(value_name)
        else:
            node_name = value_name = self._fresh(f"{self.cur_name}/{op_name}", nodes=True)
            self.node_names.add(node_name)
        self.nodes.append(Node(node_name, op_name, names, [Value(value_name, out_type)], attrs, self.cur_scope))
        self.types[value_name] = out_type
        return value_name

    def type_of(self, value) -> TensorType:
        if isinstance(value, str):
            return self.types[value]
        if isinstance(value, Const):
            return TensorType(value.dtype, tuple(value.array.shape))
        if isinstance(value, Sizes):
            return TensorType(value.dtype, () if value.scalar else (len(value.items),))
        raise TypeError(value)

    def rank(self, value) -> int:
        return len(self.type_of(value).shape)

    def sizes(self, value, what: str) -> list | None:
        """Entries of a constant or size vector (ints and dim names); None if absent."""
        if value is None:
            return None
        if isinstance(value, Sizes):
            return list(value.items)
        if isinstance(value, Const):
            return [int(v) for v in value.array.reshape(-1)]
        raise self._error(f"{what} must be known while importing (a constant or computed from shapes)")

    def scalar(self, value):
        """A one-element constant as a Python number (or a symbolic size as Sym); else None."""
        if isinstance(value, Const) and value.array.size == 1:
            return _python_scalar(value.array)
        if isinstance(value, Sizes) and len(value.items) == 1:
            item = value.items[0]
            return Sym(item) if isinstance(item, str) else item
        return None

    def const(self, array, name: str | None = None, weight: bool = False) -> Const:
        return Const(np.asarray(array), name or self._fresh(f"{self.cur_name}/const"), weight)

    def out(self, node, i: int = 0) -> str:
        return node.output[i]

    # --- flattened views ---------------------------------------------------------------------
    _FLAT_ELEMENTWISE = frozenset({"Relu", "Gelu", "Erf", "Tanh", "Sigmoid", "Sqrt", "Neg", "Exp", "Log", "Abs",
                                   "Reciprocal", "Cast", "Identity", "Dropout", "IsNaN", "Not", "LeakyRelu",
                                   "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Max", "Min",
                                   "And", "Or", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"})

    def _flat(self, node, ins, attrs) -> list:
        flats = [v for v in ins if isinstance(v, Flat)]
        lead = flats[0].lead
        if any(f.lead != lead for f in flats):
            raise self._error("mixes tensors whose merged leading dims differ")
        shift = len(lead) - 1
        first = next(i for i, v in enumerate(ins) if isinstance(v, Flat))
        logical_rank = self.rank(flats[0].value) - shift
        op = node.op_type

        def wrap(results):
            return [Flat(r, lead) if isinstance(r, str) else r for r in results]

        unflat = [v.value if isinstance(v, Flat) else v for v in ins]
        if op == "Reshape":
            return [self._flat_reshape(flats[0], ins[1], attrs)]
        if op == "Shape":
            start, end = _shape_range(attrs, logical_rank)
            if start < 1:
                raise self._error("reads the size of merged leading dims, a product of symbolic dims")
            items = self.types[flats[0].value].shape[start + shift:end + shift]
            return [_sizes(items)]
        if op == "Transpose":
            perm = list(attrs.get("perm", range(logical_rank - 1, -1, -1)))
            if perm[0] != 0:
                raise self._error("moves merged leading dims, a product of symbolic dims")
            attrs = dict(attrs, perm=list(range(shift + 1)) + [p + shift for p in perm[1:]])
            return wrap(self._op_Transpose(node, unflat, attrs))
        if op in ("Softmax", "LogSoftmax", "LayerNormalization"):
            axis = attrs.get("axis", -1)
            axis = axis + logical_rank if axis < 0 else axis
            if axis == 0 or first != 0:
                raise self._error("normalises over merged leading dims")
            return wrap(getattr(self, f"_op_{op}")(node, unflat, dict(attrs, axis=axis + shift)))
        if op in ("MatMul", "Gemm"):
            if first != 0 or (op == "Gemm" and attrs.get("transA")):
                raise self._error("multiplies along merged leading dims")
            if isinstance(ins[1], Flat) and logical_rank != 3:
                raise self._error("multiplies two tensors with merged leading dims")
            return wrap(getattr(self, f"_op_{op}")(node, unflat, attrs))
        if op in self._FLAT_ELEMENTWISE:
            for v in ins:  # others must broadcast along the merged dim, not against it
                if v is not None and not isinstance(v, Flat) and self.rank(v) >= logical_rank and \
                        (self.rank(v) > logical_rank or self.type_of(v).shape[0] != 1):
                    raise self._error("broadcasts along merged leading dims")
            return wrap(getattr(self, f"_op_{op}")(node, unflat, attrs))
        raise self._error("uses a tensor whose leading dims are merged into a product of symbolic dims, "
                          "which the IR cannot represent")

    def _flat_reshape(self, flat: Flat, target_value, attrs) -> Any:
        """Reshape of a flattened view: restoring the lead dims gives a tensor again;
        keeping the merged dim and reshaping the rest keeps the view."""
        target = self.sizes(target_value, "the target shape")
        shape = tuple(self.types[flat.value].shape)
        k = len(flat.lead)
        logical = ["?"] + list(shape[k:])
        if not attrs.get("allowzero"):
            target = [logical[i] if d == 0 and i < len(logical) else d for i, d in enumerate(target)]
        if "?" not in target and tuple(target[:k]) == flat.lead:
            if tuple(target) == shape:
                return flat.value
            return self.emit("reshape", [flat.value], {"shape": tuple(target)}, out=self.out(self.cur))
        rest = target[1:]
        if target[0] in (-1, "?") and "?" not in rest and -1 not in rest:
            if list(rest) == list(shape[k:]):
                return flat
            if _static_prod(rest) is not None and _static_prod(rest) == _static_prod(shape[k:]):
                result = self.emit("reshape", [flat.value], {"shape": flat.lead + tuple(rest)},
                                   out=self.out(self.cur))
                return Flat(result, flat.lead)
        raise self._error(f"reshapes merged leading dims {list(flat.lead)} to {target}")

    # --- elementwise ops -------------------------------------------------------------------------
    def _unary(self, op_name, node, ins, attrs=None, fold=None):
        x = ins[0]
        if fold is not None and isinstance(x, Const):
            return [self.const(fold(x.array), node.output[0])]
        return [self.emit(op_name, [x], attrs or {}, out=self.out(node))]

    def _op_Relu(self, node, ins, attrs):
        return self._unary("relu", node, ins, fold=lambda a: np.maximum(a, 0).astype(a.dtype))

    def _op_Tanh(self, node, ins, attrs):
        return self._unary("tanh", node, ins)

    def _op_Sigmoid(self, node, ins, attrs):
        return self._unary("sigmoid", node, ins)

    def _op_Erf(self, node, ins, attrs):
        return self._unary("erf", node, ins)

    def _op_Neg(self, node, ins, attrs):
        return self._unary("neg", node, ins, fold=np.negative)

    def _op_Sqrt(self, node, ins, attrs):
        return self._unary("sqrt", node, ins, fold=np.sqrt)

    def _op_Exp(self, node, ins, attrs):
        return self._unary("exp", node, ins, fold=np.exp)

    def _op_Log(self, node, ins, attrs):
        return self._unary("log", node, ins, fold=np.log)

    def _op_Abs(self, node, ins, attrs):
        return self._unary("abs", node, ins, fold=np.abs)

    def _op_Reciprocal(self, node, ins, attrs):
        return self._unary("reciprocal", node, ins, fold=np.reciprocal)

    def _op_IsNaN(self, node, ins, attrs):
        return self._unary("isnan", node, ins, fold=np.isnan)

    def _op_Not(self, node, ins, attrs):
        return self._unary("bitwise_not", node, ins, fold=np.logical_not)

    def _op_Gelu(self, node, ins, attrs):
        return self._unary("gelu", node, ins, {"approximate": attrs.get("approximate", "none")})

    def _op_LeakyRelu(self, node, ins, attrs):
        return self._unary("leaky_relu", node, ins, {"negative_slope": _f32(attrs.get("alpha", 0.01))})

    def _op_Softmax(self, node, ins, attrs):
        return self._softmax("softmax", node, ins, attrs)

    def _op_LogSoftmax(self, node, ins, attrs):
        return self._softmax("log_softmax", node, ins, attrs)

    def _softmax(self, op_name, node, ins, attrs):
        rank = self.rank(ins[0])
        axis = attrs.get("axis", -1 if self.opset >= 13 else 1)
        if self.opset < 13 and axis not in (-1, rank - 1):
            raise self._error("before opset 13 Softmax flattens to 2-D; only the last axis is supported")
        return [self.emit(op_name, [ins[0]], {"dim": axis}, out=self.out(node))]

    def _op_Identity(self, node, ins, attrs):
        return [ins[0]]

    def _op_Dropout(self, node, ins, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise self._error("its mask output is used")
        ratio = self.scalar(ins[1]) if len(ins) > 1 and ins[1] is not None else attrs.get("ratio", 0.5)
        if not isinstance(ratio, (int, float)):
            raise self._error("its ratio is not a constant")
        if len(ins) > 2 and ins[2] is not None and self.scalar(ins[2]):
            raise self._error("runs in training mode")
        return [self.emit("dropout", [ins[0]], {"p": _f32(ratio)}, out=self.out(node))]

    def _op_Cast(self, node, ins, attrs):
        return self._cast(node, ins[0], _DTYPES.get(attrs["to"]))

    def _op_CastLike(self, node, ins, attrs):
        return self._cast(node, ins[0], self.type_of(ins[1]).dtype)

    def _cast(self, node, x, dtype):
        if dtype is None:
            raise self._error("casts to a type the IR does not hold")
        if isinstance(x, Const):
            if dtype == "bfloat16" or x.dtype == "bfloat16":
                return [self.emit("to", [x], {"dtype": DType(dtype)}, out=self.out(node))]
            return [self.const(x.array.astype(_numpy_dtype(dtype)), node.output[0], x.weight)]
        if isinstance(x, Sizes):
            return [Sizes(x.items, x.scalar, dtype)]
        if self.type_of(x).dtype == dtype:
            return [x]
        return [self.emit("to", [x], {"dtype": DType(dtype)}, out=self.out(node))]

    _ARITHMETIC = {"Add": ("add", np.add, True), "Sub": ("sub", np.subtract, False),
                   "Mul": ("mul", np.multiply, True), "Div": ("div", None, False),
                   "Pow": ("pow", np.power, False), "Equal": ("eq", np.equal, True),
                   "Greater": ("gt", np.greater, False), "Less": ("lt", np.less, False),
                   "GreaterOrEqual": ("ge", np.greater_equal, False), "LessOrEqual": ("le", np.less_equal, False),
                   "And": ("bitwise_and", np.logical_and, True), "Or": ("bitwise_or", np.logical_or, True),
                   "Max": ("maximum", np.maximum, True), "Min": ("minimum", np.minimum, True)}
    _SWAPPED = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}

    def _binary(self, node, a, b, final: bool = True):
        """An elementwise binary op: folded on constants and sizes, a Scalar argument for a
        one-element constant, else the registry op on two tensors."""
        op_name, fold, commutative = self._ARITHMETIC[node.op_type]
        out = self.out(node) if final else None
        if (isinstance(a, Sizes) or isinstance(b, Sizes)) and not (isinstance(a, str) or isinstance(b, str)):
            return self._sizes_binary(node, a, b)
        if isinstance(a, Const) and isinstance(b, Const):
            if node.op_type == "Div":
                result = _divide(a.array, b.array)
            else:
                result = fold(a.array, b.array)
                if result.dtype != np.bool_:
                    result = result.astype(a.array.dtype)
            return [self.const(result, node.output[0] if final else None, a.weight or b.weight)]
        if node.op_type == "Add" and final:
            folded = self._bias(node, a, b)
            if folded is not None:
                return [folded]
        if node.op_type == "Div" and not self.type_of(a).dtype.startswith(("float", "bfloat")):
            return [self._integer_divide(a, b, out)]
        op = ops.get(op_name)
        if op.scalar_aten is not None:  # a one-element constant becomes ATen's Scalar argument
            slot = op.tensor_args[1].name
            if self._as_scalar(b, a) is not None:
                return [self.emit(op_name, [a], {slot: self._as_scalar(b, a)}, out=out)]
            swapped = op_name if commutative else self._SWAPPED.get(op_name)
            if swapped and self._as_scalar(a, b) is not None:
                return [self.emit(swapped, [b], {slot: self._as_scalar(a, b)}, out=out)]
        return [self.emit(op_name, [a, b], {}, out=out)]

    def _as_scalar(self, value, other):
        """``value`` as an ATen Scalar next to tensor ``other`` (a number, or Sym for a
        symbolic size), where that changes nothing."""
        if isinstance(value, Sizes) and len(value.items) == 1:
            if (0 if value.scalar else 1) > self.rank(other):
                return None
            item = value.items[0]
            return Sym(item) if isinstance(item, str) else item
        if not isinstance(value, Const) or value.array.size != 1:
            return None
        if value.array.ndim > self.rank(other):
            return None  # broadcasting would add dims
        return _python_scalar(value.array)

    def _integer_divide(self, a, b, out):
        """ONNX Div of integers truncates; ATen's div is true division."""
        dtype = self.type_of(a).dtype
        wide = [self.emit("to", [v], {"dtype": DType("float64")}) for v in (a, b)]
        quotient = self.emit("div", wide, {})
        return self.emit("to", [quotient], {"dtype": DType(dtype)}, out=out)

    def _bias(self, node, a, b):
        """MatMul + Add of a 1-D constant right after it: the bias of the linear layer."""
        for x, bias in ((a, b), (b, a)):
            if isinstance(x, str) and x in self.biasless and isinstance(bias, Const) and bias.array.ndim == 1:
                linear, onnx_name = self.biasless[x]
                out_features = self.types[linear.inputs[1]].shape[0]
                if bias.array.shape[0] == out_features and self.uses.get(onnx_name, 0) == 1:
                    linear.inputs = [linear.inputs[0], linear.inputs[1], self.tensor(bias)]
                    del self.biasless[x]
                    # The linear node now stands for the Add too: it takes the Add's names.
                    out = node.output[0]
                    value = out if out not in self.taken else self._fresh(out)
                    self.taken.add(value)
                    linear.name = self._fresh_node(self.cur_name)
                    linear.outputs = [Value(value, linear.outputs[0].type)]
                    self.types[value] = self.types.pop(x)
                    return value
        return None

    def _sizes_binary(self, node, a, b):
        xs, ys = self.sizes(a, "an operand"), self.sizes(b, "an operand")
        scalar = all(isinstance(v, Sizes) and v.scalar or isinstance(v, Const) and v.array.ndim == 0
                     for v in (a, b))
        if len(xs) != len(ys):
            if len(xs) == 1:
                xs = xs * len(ys)
            elif len(ys) == 1:
                ys = ys * len(xs)
            else:
                raise self._error("broadcasts size vectors of different lengths")
        items = tuple(self._dim_op(node.op_type, x, y) for x, y in zip(xs, ys))
        if node.op_type in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"):
            return [self.const(np.array(items, dtype=bool).reshape(() if scalar else (len(items),)), node.output[0])]
        return [_sizes(items, scalar)]

    _INT_OPS = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y,
                "Div": lambda x, y: int(x / y), "Pow": lambda x, y: x ** y, "Max": max, "Min": min,
                "Equal": lambda x, y: x == y, "Greater": lambda x, y: x > y, "Less": lambda x, y: x < y,
                "GreaterOrEqual": lambda x, y: x >= y, "LessOrEqual": lambda x, y: x <= y}

    def _dim_op(self, op: str, x, y):
        """One entry of a size-vector computation: ints compute, symbolic dims only simplify."""
        if isinstance(x, int) and isinstance(y, int):
            if op not in self._INT_OPS or (op == "Div" and y == 0):
                raise self._error(f"computes {x} {op} {y} on sizes")
            return self._INT_OPS[op](x, y)
        # Symbolic dims are sizes of at least 2 (the IR's type rules assume that too).
        if op in ("Add", "Sub") and y == 0:
            return x
        if op == "Add" and x == 0:
            return y
        if op in ("Mul", "Div") and y == 1:
            return x
        if op == "Mul" and x == 1:
            return y
        if op in ("Max", "Min") and x == y:
            return x
        if op == "Max" and isinstance(y, int) and y <= 1:
            return x
        if op == "Max" and isinstance(x, int) and x <= 1:
            return y
        if op == "Equal":
            if x == y:
                return True
            if isinstance(x, int) and x <= 1 or isinstance(y, int) and y <= 1:
                return False
        if op in ("Sub", "Div") and x == y:
            return 0 if op == "Sub" else 1
        raise self._error(f"computes {x} {op} {y}: the IR states sizes as dims, not expressions of them")

    def _op_Add(self, node, ins, attrs):
        return self._binary(node, *ins)

    _op_Sub = _op_Mul = _op_Div = _op_Pow = _op_Equal = _op_Greater = _op_Less = _op_Add
    _op_GreaterOrEqual = _op_LessOrEqual = _op_And = _op_Or = _op_Add

    def _op_Max(self, node, ins, attrs):
        """Max/Min of any number of inputs: a chain of pairs, the last one named after the node."""
        result = ins[0]
        for other in ins[1:-1]:
            result = self._binary(node, result, other, final=False)[0]
        return self._binary(node, result, ins[-1]) if len(ins) > 1 else [result]

    _op_Min = _op_Max

    def _op_Where(self, node, ins, attrs):
        cond, a, b = ins
        if isinstance(cond, Const) and isinstance(a, (Const, Sizes)) and isinstance(b, (Const, Sizes)):
            if isinstance(a, Const) and isinstance(b, Const):
                return [self.const(np.where(cond.array, a.array, b.array), node.output[0])]
            xs, ys = self.sizes(a, "an operand"), self.sizes(b, "an operand")
            flags = cond.array.reshape(-1).tolist()
            n = max(len(xs), len(ys), len(flags))
            pick = [(xs[i % len(xs)] if flags[i % len(flags)] else ys[i % len(ys)]) for i in range(n)]
            return [_sizes(pick, cond.array.ndim == 0 and _is_scalar(a) and _is_scalar(b))]
        return [self.emit("where", [cond, a, b], {}, out=self.out(node))]

    def _op_Clip(self, node, ins, attrs):
        if self.opset < 11:
            low, high = attrs.get("min"), attrs.get("max")
        else:
            bounds = [ins[i] if len(ins) > i else None for i in (1, 2)]
            low, high = (None if b is None else self.scalar(b) for b in bounds)
            for bound, value in zip(bounds, (low, high)):
                if bound is not None and (value is None or isinstance(value, Sym)):
                    raise self._error("clips to bounds that are not constants")
        if isinstance(ins[0], Const):
            return [self.const(np.clip(ins[0].array, low, high).astype(ins[0].array.dtype), node.output[0])]
        return [self.emit("clamp", [ins[0]], {"min": low, "max": high}, out=self.out(node))]

    # --- linear algebra and layers ------------------------------------------------------------------
    def _op_MatMul(self, node, ins, attrs):
        a, b = ins
        if isinstance(a, Const) and isinstance(b, Const):
            return [self.const(np.matmul(a.array, b.array), node.output[0])]
        if isinstance(b, Const) and b.transposed is not None and b.array.ndim == 2 and id(b) not in self.param_of:
            # MatMul(x, W.T): a linear layer whose weight is the initializer W
            out = self.emit("linear", [a, b.transposed], {}, out=self.out(node))
            self.biasless[out] = (self.nodes[-1], node.output[0])
            return [out]
        return [self.emit("matmul", [a, b], {}, out=self.out(node))]

    def _op_Gemm(self, node, ins, attrs):
        a, b = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        alpha, beta = _f32(attrs.get("alpha", 1.0)), _f32(attrs.get("beta", 1.0))
        if attrs.get("transA"):
            a = self.emit("transpose", [a], {"dim0": 0, "dim1": 1})
        simple_bias = c is not None and self.rank(c) == 1 and beta == 1.0 and alpha == 1.0
        last = alpha == 1.0 and (c is None or simple_bias)
        out = self.out(node) if last else None
        if attrs.get("transB"):
            product = self.emit("linear", [a, b, c if simple_bias else None], {}, out=out)
        else:
            product = self.emit("matmul", [a, b], {}, out=out if not simple_bias else None)
            if simple_bias:
                return [self.emit("add", [product, c], {}, out=self.out(node))]
        if last:
            return [product]
        if alpha != 1.0:
            product = self.emit("mul", [product], {"other": alpha}, out=self.out(node) if c is None else None)
        if c is None:
            return [product]
        if beta != 1.0:
            c = self.emit("mul", [c], {"other": beta})
        return [self.emit("add", [product, c], {}, out=self.out(node))]

    def _op_Conv(self, node, ins, attrs):
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if self.rank(w) != 4:
            raise self._error("is not a 2-D convolution (only Conv over (N, C, H, W) is supported)")
        kernel = list(self.type_of(w).shape[2:])
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        pads = self._pads(x, attrs, kernel, strides, dilations)
        return [self.emit("conv2d", [x, w, b], {"stride": tuple(strides), "padding": tuple(pads),
                                                "dilation": tuple(dilations), "groups": attrs.get("group", 1)},
                          out=self.out(node))]

    def _pads(self, x, attrs, kernel, strides, dilations) -> list[int]:
        auto = attrs.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", "VALID"):
            pads = list(attrs.get("pads", [0] * 4)) if auto == "NOTSET" else [0] * 4
        else:
            sizes = self.type_of(x).shape[-2:]
            if not all(isinstance(s, int) for s in sizes):
                raise self._error(f"auto_pad={auto} over symbolic spatial sizes")
            pads = [0] * 4
            for i, (size, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations)):
                total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
                small, large = total // 2, total - total // 2
                pads[i], pads[i + 2] = (small, large) if auto == "SAME_UPPER" else (large, small)
        if pads[:2] != pads[2:]:
            raise self._error(f"pads {pads} are not symmetric, which ATen's ops need")
        return pads[:2]

    def _op_BatchNormalization(self, node, ins, attrs):
        if attrs.get("training_mode") or (len(node.output) > 1 and any(node.output[1:])):
            raise self._error("runs in training mode")
        x, scale, bias, mean, var = ins[:5]
        momentum = 1.0 - _f32(attrs.get("momentum", 0.9))
        return [self.emit("batch_norm", [x, scale, bias, mean, var],
                          {"momentum": _f32(momentum), "eps": _f32(attrs.get("epsilon", 1e-5))},
                          out=self.out(node))]

    def _op_LayerNormalization(self, node, ins, attrs):
        if len(node.output) > 1 and any(node.output[1:]):
            raise self._error("its mean and inverse-deviation outputs are used")
        x = ins[0]
        shape = self.type_of(x).shape
        axis = attrs.get("axis", -1)
        normalized = tuple(shape[axis:])
        if not all(isinstance(d, int) for d in normalized):
            raise self._error("normalises over symbolic dims")
        bias = ins[2] if len(ins) > 2 else None
        return [self.emit("layer_norm", [x, ins[1], bias],
                          {"normalized_shape": normalized, "eps": _f32(attrs.get("epsilon", 1e-5))},
                          out=self.out(node))]

    def _op_SoftmaxCrossEntropyLoss(self, node, ins, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise self._error("its log-probability output is used")
        reduction = {"none": 0, "mean": 1, "sum": 2}[attrs.get("reduction", "mean")]
        weight = ins[2] if len(ins) > 2 else None
        return [self.emit("cross_entropy", [ins[0], ins[1], weight],
                          {"reduction": reduction, "ignore_index": attrs.get("ignore_index", -100)},
                          out=self.out(node))]

    def _pool(self, op_name, node, ins, attrs, extra):
        if len(node.output) > 1 and node.output[1]:
            raise self._error("its indices output is used")
        x = ins[0]
        if self.rank(x) != 4:
            raise self._error("is not a 2-D pooling over (N, C, H, W)")
        kernel = list(attrs["kernel_shape"])
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        pads = self._pads(x, attrs, kernel, strides, dilations)
        attrs_ir = {"kernel_size": tuple(kernel), "stride": tuple(strides), "padding": tuple(pads),
                    "ceil_mode": bool(attrs.get("ceil_mode", 0)), **extra}
        if op_name == "max_pool2d":
            attrs_ir["dilation"] = tuple(dilations)
        elif dilations != [1, 1]:
            raise self._error("average pooling with dilation")
        return [self.emit(op_name, [x], attrs_ir, out=self.out(node))]

    def _op_MaxPool(self, node, ins, attrs):
        if attrs.get("storage_order"):
            raise self._error("storage_order=1")
        return self._pool("max_pool2d", node, ins, attrs, {})

    def _op_AveragePool(self, node, ins, attrs):
        return self._pool("avg_pool2d", node, ins, attrs,
                          {"count_include_pad": bool(attrs.get("count_include_pad", 0))})

    def _op_GlobalAveragePool(self, node, ins, attrs):
        x = ins[0]
        rank = self.rank(x)
        if rank == 4:
            return [self.emit("adaptive_avg_pool2d", [x], {"output_size": (1, 1)}, out=self.out(node))]
        return [self.emit("mean", [x], {"dim": tuple(range(2, rank)), "keepdim": True}, out=self.out(node))]

    def _reduce(self, op_name, node, ins, attrs):
        x = ins[0]
        if self.opset >= 18 or (op_name == "sum" and self.opset >= 13):
            axes = self.sizes(ins[1], "the axes") if len(ins) > 1 and ins[1] is not None else None
        else:
            axes = attrs.get("axes")
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes"):
                return [x]
            axes = list(range(self.rank(x)))
        return [self.emit(op_name, [x], {"dim": tuple(int(a) for a in axes), "keepdim": keep},
                          out=self.out(node))]

    def _op_ReduceMean(self, node, ins, attrs):
        return self._reduce("mean", node, ins, attrs)

    def _op_ReduceSum(self, node, ins, attrs):
        return self._reduce("sum", node, ins, attrs)

    # --- shapes ------------------------------------------------------------------------------------
    def _op_Shape(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        start, end = _shape_range(attrs, len(shape))
        return [_sizes(shape[start:end])]

    def _op_Size(self, node, ins, attrs):
        shape = self.type_of(ins[0]).shape
        if not all(isinstance(d, int) for d in shape):
            raise self._error("counts the elements of a tensor with symbolic dims")
        return [self.const(np.array(int(np.prod(shape)), dtype=np.int64), node.output[0])]

    def _op_Constant(self, node, ins, attrs):
        if "value" in attrs:
            array = attrs["value"]
        elif "value_float" in attrs:
            array = np.array(attrs["value_float"], dtype=np.float32)
        elif "value_int" in attrs:
            array = np.array(attrs["value_int"], dtype=np.int64)
        elif "value_floats" in attrs:
            array = np.array(attrs["value_floats"], dtype=np.float32)
        elif "value_ints" in attrs:
            array = np.array(attrs["value_ints"], dtype=np.int64)
        else:
            raise self._error(f"constant kind {sorted(attrs)} is not supported")
        return [self.const(array, node.output[0])]

    def _op_ConstantOfShape(self, node, ins, attrs):
        value = attrs.get("value", np.zeros(1, dtype=np.float32))
        sizes = self.sizes(ins[0], "the shape")
        if all(isinstance(d, int) for d in sizes) and int(np.prod(sizes)) <= 4096:
            return [self.const(np.full(sizes, value.reshape(-1)[0], dtype=value.dtype), node.output[0])]
        dtype = "bool" if value.dtype == np.bool_ else value.dtype.name
        return [self.emit("full", [], {"size": tuple(sizes), "fill_value": _python_scalar(value),
                                       "dtype": DType(dtype)}, out=self.out(node))]

    def _op_Range(self, node, ins, attrs):
        start, limit, delta = ins
        if all(isinstance(v, Const) for v in ins):
            return [self.const(np.arange(start.array, limit.array, delta.array).astype(start.array.dtype),
                               node.output[0])]
        if self.scalar(start) != 0 or self.scalar(delta) != 1:
            raise self._error("a range that does not start at 0 with step 1 over a symbolic size")
        end = self.scalar(limit)
        if end is None:
            raise self._error("a range whose length is computed from tensor data")
        dtype = self.type_of(start).dtype
        return [self.emit("arange", [], {"end": end, "dtype": DType(dtype)}, out=self.out(node))]

    def _op_Reshape(self, node, ins, attrs):
        x, target = ins
        target = self.sizes(target, "the target shape")
        if isinstance(x, (Const, Sizes)) and all(isinstance(d, int) for d in target):
            if isinstance(x, Sizes):
                return [_sizes(x.items, scalar=len(target) == 0)]
            return [self.const(x.array.reshape(target), node.output[0], x.weight)]
        shape = self.type_of(x).shape
        if not attrs.get("allowzero"):
            target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        if tuple(target) == tuple(shape):
            return [x]
        if target.count(-1) == 1 and len(target) == len(shape) and all(
                t == s or t == -1 for t, s in zip(target, shape)):
            return [x]
        op = ops.get("reshape")
        try:
            ops.infer_types(op, [self.type_of(x)], {"shape": tuple(target)})
        except ops.TypeRuleError as exc:
            flat = self._flatten_view(x, target)
            if flat is not None:
                return [flat]
            raise self._error(str(exc)) from None
        return [self.emit("reshape", [x], {"shape": tuple(target)}, out=self.out(node))]

    def _flatten_view(self, x, target) -> Flat | None:
        """Reshape(x, [-1, *tail]) where x ends in tail and its merged lead is symbolic."""
        shape = list(self.type_of(x).shape)
        if not target or target[0] != -1 or not isinstance(x, str):
            return None
        tail = target[1:]
        lead = shape[:len(shape) - len(tail)]
        if len(lead) < 1 or shape[len(lead):] != tail:
            if _static_prod(tail) is None or _static_prod(shape[-1:]) is None:
                return None
            # (batch, seq, 4, 32) -> (-1, 128): merge the tail statically first, then the lead
            for split in range(len(shape) - 1, 1, -1):
                if _static_prod(shape[split:]) == _static_prod(tail) and len(tail) == 1:
                    merged = self.emit("reshape", [x], {"shape": tuple(shape[:split]) + (tail[0],)})
                    return Flat(merged, tuple(shape[:split]))
            return None
        if len(lead) == 1:
            return None
        return Flat(x, tuple(lead))

    def _op_Flatten(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        axis = attrs.get("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        if isinstance(x, Const):
            lead = int(np.prod(shape[:axis]))
            return [self.const(x.array.reshape(lead, -1), node.output[0], x.weight)]
        if axis == 0:
            return [self.emit("reshape", [x], {"shape": (1, -1)}, out=self.out(node))]
        if axis == 1:
            return [self.emit("flatten", [x], {"start_dim": 1}, out=self.out(node))]
        head = self.emit("flatten", [x], {"start_dim": axis}) if axis < len(shape) - 1 else x
        try:
            return [self.emit("flatten", [head], {"start_dim": 0, "end_dim": axis - 1}, out=self.out(node))]
        except UnsupportedOpError:
            if isinstance(head, str):
                return [Flat(head, tuple(shape[:axis]))]
            raise

    def _op_Transpose(self, node, ins, attrs):
        x = ins[0]
        rank = self.rank(x)
        perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
        if isinstance(x, Const):
            out = self.const(np.transpose(x.array, perm), node.output[0], x.weight)
            if perm == [1, 0]:
                out.transposed = x
            return [out]
        if perm == list(range(rank)):
            return [x]
        moved = [i for i, p in enumerate(perm) if p != i]
        if len(moved) == 2:
            return [self.emit("transpose", [x], {"dim0": moved[0], "dim1": moved[1]}, out=self.out(node))]
        return [self.emit("permute", [x], {"dims": tuple(perm)}, out=self.out(node))]

    def _axes(self, node, ins, attrs) -> list[int] | None:
        if self.opset >= 13:
            return self.sizes(ins[1], "the axes") if len(ins) > 1 and ins[1] is not None else None
        return list(attrs["axes"]) if "axes" in attrs else None

    def _op_Unsqueeze(self, node, ins, attrs):
        x = ins[0]
        axes = self._axes(node, ins, attrs) or []
        out_rank = self.rank(x) + len(axes)
        axes = sorted(a + out_rank if a < 0 else a for a in axes)
        if isinstance(x, Const):
            return [self.const(np.expand_dims(x.array, tuple(axes)), node.output[0], x.weight)]
        if isinstance(x, Sizes):
            if x.scalar and axes == [0]:
                return [Sizes(x.items, False, x.dtype)]
            raise self._error("unsqueezes a size vector into more than one dim")
        for i, axis in enumerate(axes):
            x = self.emit("unsqueeze", [x], {"dim": axis}, out=self.out(node) if i == len(axes) - 1 else None)
        return [x]

    def _op_Squeeze(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        axes = self._axes(node, ins, attrs)
        if axes is None:
            axes = [i for i, d in enumerate(shape) if d == 1]
        axes = sorted((a + len(shape) if a < 0 else a for a in axes), reverse=True)
        if isinstance(x, Const):
            return [self.const(np.squeeze(x.array, tuple(axes)), node.output[0], x.weight)]
        if isinstance(x, Sizes):
            if len(x.items) == 1 and axes == [0]:
                return [Sizes(x.items, True, x.dtype)]
            raise self._error("squeezes a size vector")
        if not axes:
            return [x]
        for i, axis in enumerate(axes):
            if shape[axis] != 1:
                raise self._error(f"squeezes dim {axis} of size {shape[axis]}")
            x = self.emit("squeeze", [x], {"dim": axis}, out=self.out(node) if i == len(axes) - 1 else None)
        return [x]

    def _op_Expand(self, node, ins, attrs):
        x, target = ins
        target = self.sizes(target, "the target shape")
        if isinstance(x, Const) and all(isinstance(d, int) for d in target):
            shape = np.broadcast_shapes(x.array.shape, tuple(target))
            return [self.const(np.broadcast_to(x.array, shape).copy(), node.output[0])]
        shape = list(self.type_of(x).shape)
        rank = max(len(shape), len(target))
        shape = [1] * (rank - len(shape)) + shape
        target = [1] * (rank - len(target)) + list(target)
        size, own = [], self.rank(x)
        for i, (have, want) in enumerate(zip(shape, target)):
            mine = i >= rank - own
            if want == 1 or want == have:
                size.append(-1 if mine else 1)
            elif have == 1:
                size.append(want)
            else:
                raise self._error(f"expands a dim of size {have} to {want}")
        if len(size) == own and all(s == -1 for s in size):
            return [x]
        return [self.emit("expand", [x], {"size": tuple(size)}, out=self.out(node))]

    def _op_Concat(self, node, ins, attrs):
        axis = attrs["axis"]
        if all(isinstance(v, (Const, Sizes)) for v in ins) and any(isinstance(v, Sizes) for v in ins):
            items = []
            for v in ins:
                items += self.sizes(v, "a part")
            return [_sizes(items)]
        if all(isinstance(v, Const) for v in ins):
            return [self.const(np.concatenate([v.array for v in ins], axis=axis), node.output[0])]
        return [self.emit("cat", list(ins), {"dim": axis}, out=self.out(node))]

    def _op_Split(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        axis = attrs.get("axis", 0)
        axis = axis + len(shape) if axis < 0 else axis
        if self.opset >= 13 and len(ins) > 1 and ins[1] is not None:
            split = self.sizes(ins[1], "the split sizes")
        else:
            split = attrs.get("split")
        if split is None:
            size = shape[axis]
            count = attrs.get("num_outputs", len(node.output))
            if not isinstance(size, int):
                raise self._error("splits a symbolic dim")
            chunk = -(-size // count)
            split = [min(chunk, size - i * chunk) for i in range(count)]
        results, start = [], 0
        for i, (length, name) in enumerate(zip(split, node.output)):
            results.append(self.emit("slice", [x], {"dim": axis, "start": start, "end": start + int(length)},
                                     out=name))
            start += int(length)
        return results

    def _op_Slice(self, node, ins, attrs):
        x = ins[0]
        if self.opset < 10:
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes, steps = attrs.get("axes"), None
        else:
            starts, ends = self.sizes(ins[1], "the starts"), self.sizes(ins[2], "the ends")
            axes = self.sizes(ins[3], "the axes") if len(ins) > 3 and ins[3] is not None else None
            steps = self.sizes(ins[4], "the steps") if len(ins) > 4 and ins[4] is not None else None
        rank = self.rank(x) if not isinstance(x, Sizes) else 1
        axes = [a + rank if a < 0 else a for a in (axes or range(len(starts)))]
        steps = steps or [1] * len(starts)
        if isinstance(x, (Sizes, Const)) and all(isinstance(v, int) for v in starts + ends):
            if isinstance(x, Const):
                index = [slice(None)] * x.array.ndim
                for a, s, e, st in zip(axes, starts, ends, steps):
                    index[a] = slice(s, e, st)
                return [self.const(x.array[tuple(index)], node.output[0], x.weight)]
            (s, e, st) = starts[0], ends[0], steps[0]
            return [_sizes(tuple(x.items[slice(s, e, st)]))]
        shape = self.type_of(x).shape
        slices = []
        for a, s, e, st in zip(axes, starts, ends, steps):
            if not isinstance(st, int) or st < 1:
                raise self._error("slices with a negative or symbolic step, which ATen's slice does not")
            if s == 0 and (e == shape[a] or isinstance(e, int) and e >= _INT64_MAX // 2) and st == 1:
                continue
            slices.append({"dim": a, "start": Sym(s) if isinstance(s, str) else min(s, _INT64_MAX),
                           "end": Sym(e) if isinstance(e, str) else min(e, _INT64_MAX), "step": st})
        for i, attrs_ir in enumerate(slices):
            x = self.emit("slice", [x], attrs_ir, out=self.out(node) if i == len(slices) - 1 else None)
        return [x]

    def _op_Gather(self, node, ins, attrs):
        data, indices = ins
        axis = attrs.get("axis", 0)
        rank = self.rank(data) if not isinstance(data, Sizes) else 1
        axis = axis + rank if axis < 0 else axis
        if isinstance(data, Const) and isinstance(indices, Const):
            return [self.const(np.take(data.array, indices.array, axis=axis), node.output[0], data.weight)]
        if isinstance(data, Sizes) and isinstance(indices, Const):
            picked = [data.items[int(i)] for i in indices.array.reshape(-1)]
            return [_sizes(tuple(picked), indices.array.ndim == 0)]
        if isinstance(data, Const) and data.array.ndim == 2 and axis == 0:
            return [self.emit("embedding", [data, indices], {}, out=self.out(node))]
        if isinstance(indices, Const) and indices.array.ndim == 0:
            return [self.emit("select", [data], {"dim": axis, "index": int(indices.array)}, out=self.out(node))]
        if isinstance(indices, Sizes) and indices.scalar:
            index = indices.items[0]
            return [self.emit("select", [data], {"dim": axis, "index": Sym(index) if isinstance(index, str)
                                                 else index}, out=self.out(node))]
        return [self.emit("index", [data] + [None] * axis + [indices], {}, out=self.out(node))]

    def _op_GatherElements(self, node, ins, attrs):
        data, indices = ins
        return [self.emit("gather", [data, indices], {"dim": attrs.get("axis", 0)}, out=self.out(node))]

    def _op_GatherND(self, node, ins, attrs):
        data, indices = ins
        if attrs.get("batch_dims", 0):
            raise self._error("batch_dims other than 0")
        depth = self.type_of(indices).shape[-1]
        if not isinstance(depth, int):
            raise self._error("index tuples of symbolic length")
        parts = [self.emit("select", [indices], {"dim": -1, "index": i}) for i in range(depth)]
        return [self.emit("index", [data] + parts, {}, out=self.out(node))]


# --- helpers ----------------------------------------------------------------------------------------
def _is_scalar(value) -> bool:
    return isinstance(value, Sizes) and value.scalar or isinstance(value, Const) and value.array.ndim == 0


def _sizes(items, scalar: bool = False):
    """A size vector, or a constant when every entry is known."""
    items = tuple(items)
    if all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in items):
        array = np.array([int(d) for d in items], dtype=np.int64)
        return Const(array.reshape(()) if scalar and len(items) == 1 else array, "sizes")
    return Sizes(items, scalar and len(items) == 1)


def _shape_range(attrs, rank: int) -> tuple[int, int]:
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return start, end


def _static_prod(dims) -> int | None:
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return (a / b).astype(a.dtype)


def _f32(value) -> float:
    """An ONNX float attribute (a float32) as the shortest double that reads back to it."""
    return float(repr(np.float32(value)).removeprefix("np.float32(").removesuffix(")"))


def _python_scalar(array: np.ndarray):
    value = array.reshape(-1)[0]
    if array.dtype == np.bool_:
        return bool(value)
    if np.issubdtype(array.dtype, np.integer):
        return int(value)
    if array.dtype in (np.float32, np.float16):
        return _f32(value) if array.dtype == np.float32 else float(value)
    return float(value)


def _attr_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def _canonical(op: ops.OpDef, attrs: dict) -> dict:
    """Attributes as the torch frontend stores them: defaults left out, lists as tuples."""
    out = {}
    for name, value in attrs.items():
        if isinstance(value, list):
            value = tuple(value)
        spec = op.attr_spec(name)
        if value is None:
            continue
        if spec is not None and not spec.required:
            default = tuple(spec.default) if isinstance(spec.default, list) else spec.default
            if value == default and type(value) is type(default):
                continue
        out[name] = value
    return dict(sorted(out.items()))


def _dim_name(name: str) -> str:
    cleaned = re.sub(r"[^0-9A-Za-z_]", "_", name.strip())
    return cleaned if cleaned and not cleaned[0].isdigit() else f"d_{cleaned}"


def _scope(node: onnx.NodeProto) -> str:
    """The module path a node came from: torch.onnx's metadata, or a /a/b/Op node name."""
    for prop in node.metadata_props:
        if prop.key == "namespace":
            parts = [p.split(":")[0].strip() for p in prop.value.split("/")]
            modules = [p for p in parts[:-1] if p and not p.startswith("_empty_nn_module_stack")]
            return modules[-1] if modules else ""
    if node.name.startswith("/"):
        return ".".join(p for p in node.name.strip("/").split("/")[:-1])
    return ""
