"""The importer: walks the ONNX graph node by node and makes the IR graph.

``_Importer`` holds the conversion state (what each ONNX value is, the IR
nodes, params and dims so far), reads inputs and initializers, and makes IR
nodes (``emit``). Each ONNX op is converted by its handler
``_op_<OpType>(node, ins, attrs)``, which gets the node's inputs as values
(see ``values``) and returns its outputs; the handlers come from the family
mixins the importer inherits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ... import ops
from ...errors import FileFormatError, UnsupportedOpError
from ...ir import DType, Graph, Node, Tensor, TensorType, Value, default_format, dim_attr, unique_name
from ...onnx_metadata import from_props
from .dims import name_dims
from .elementwise import ElementwiseOps
from .handlers import HANDLERS, Handler
from .layers import LayerOps
from .recurrent import RecurrentOps
from .reader import _DTYPES, InitializerReader, _attr_value
from .shapes import ShapeOps
from .spatial import SpatialOps
from .values import Const, Sizes, _python_scalar


class _Importer(ElementwiseOps, LayerOps, ShapeOps, SpatialOps, RecurrentOps, InitializerReader):
    def __init__(self, model: onnx.ModelProto, path: Path, dim_names: dict[str, str] | None = None):
        self.model = model
        self.path = path
        self.dim_names = dim_names or {}
        self.axis_names: dict[tuple[str, int], str] = {}  # (input, axis) -> dim name (see dims)
        self.recurrent_layers: dict[str, int] = {}  # scope -> LSTM/GRU layers seen (their param names)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.values: dict[str, Any] = {}       # ONNX value -> IR value name | Const | Sizes
        self.types: dict[str, TensorType] = {}  # IR value -> type
        self.nodes: list[Node] = []
        self.params: dict[str, Tensor] = {}
        self.param_of: dict[int, str] = {}      # id(Const) -> param name
        self.made_params: list[Const] = []      # the Consts param_of names: kept alive so no id is reused
        self.taken: set[str] = set()            # value and param names
        self.node_names: set[str] = set()
        self.dims: dict[str, tuple[str, int]] = {}
        self.inputs: list[Value] = []
        self.uses: dict[str, int] = {}
        self.matmul_weight_uses: dict[str, int] = {}  # reads as MatMul's B (the linear layers' weights)
        self.biasless: dict[str, tuple] = {}    # IR value -> (linear node without bias, its ONNX value)
        self._external: dict[str, bytes] = {}
        self.cur: onnx.NodeProto | None = None
        self.cur_name = ""
        self.cur_scope = ""
        self.about: tuple = ({}, [], b"")   # metadata, history, tokenizer (maseir.onnx_metadata)

    # --- driver --------------------------------------------------------------------------
    def run(self) -> Graph:
        graph = self.model.graph
        # metadata, history, tokenizer: a malformed one is refused before any node is converted
        self.about = from_props(((p.key, p.value) for p in self.model.metadata_props), str(self.path))
        self._check_ops(graph)
        outputs = {o.name for o in graph.output}
        for node in graph.node:
            for slot, name in enumerate(node.input):
                if name:
                    self.uses[name] = self.uses.get(name, 0) + 1
                    if node.op_type == "MatMul" and slot == 1 and name not in outputs:
                        self.matmul_weight_uses[name] = self.matmul_weight_uses.get(name, 0) + 1
        initializers = {t.name for t in graph.initializer}
        self.axis_names = name_dims(graph, initializers, self.dim_names, str(self.path),
                                    keep=self.model.producer_name == "maseir")
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
        """Every node's op is in the table of handlers (``handlers.HANDLERS``) at the file's opset."""
        unsupported: dict[str, list[str]] = {}
        for i, node in enumerate(graph.node):
            domain = node.domain if node.domain not in ("", "ai.onnx") else ""
            handler = None if domain else HANDLERS.get(node.op_type)
            if handler is None and not domain and hasattr(self, f"_op_{node.op_type}"):
                # a handler not declared yet (tests/test_onnx_import_ops.py says so): from the op's first opset
                handler = Handler(node.op_type, None, (), "")
            if handler is None:
                key = f"{domain}::{node.op_type}" if domain else node.op_type
            elif self.opset < handler.first_opset:
                key = f"{node.op_type} before opset {handler.first_opset} (the file's opset is {self.opset})"
            else:
                continue
            unsupported.setdefault(key, []).append(node.name or f"#{i}")
        if unsupported:
            listed = "; ".join(f"{op} (nodes {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
                               for op, names in sorted(unsupported.items()))
            raise UnsupportedOpError(f"{self.path}: unsupported ONNX ops: {listed} (see spec/onnx-import.md)")

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
            name = self.axis_names[(value.name, axis)]
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
        metadata, history, tokenizer = self.about
        if self.model.producer_name != "maseir":  # a file maseir lowered carries the graph's own metadata
            metadata.setdefault("source", self.path.name)
            if self.model.producer_name:
                metadata.setdefault("onnx_producer",
                                    f"{self.model.producer_name} {self.model.producer_version}".strip())
        return Graph(self.inputs, [renames.get(o, o) for o in outputs], nodes, params, self.dims, metadata,
                     tokenizer_json=tokenizer, history=history)

    # --- making IR nodes -----------------------------------------------------------------------
    def _fresh(self, base: str, nodes: bool = False) -> str:
        """A name unused among values (and, with ``nodes``, among node names too)."""
        return unique_name(base, self.taken, self.node_names if nodes else ())

    def _fresh_node(self, base: str) -> str:
        return unique_name(base, self.node_names)

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
                self.made_params.append(value)
            return self.param_of[key]
        if isinstance(value, Sizes):
            parts = [self.emit("full", [], {"size": () if value.scalar else (1,),
                                            "fill_value": dim_attr(d),
                                            "dtype": DType(value.dtype)}) for d in value.items]
            if value.scalar:
                return parts[0]
            return parts[0] if len(parts) == 1 else self.emit("cat", parts, {"dim": 0})
        raise TypeError(value)

    def emit(self, op_name: str, inputs: list, attrs: dict, out: str | None = None) -> str:
        """Append an IR node. With ``out`` (an ONNX output name) the node is the one
        the ONNX node becomes and takes its names; otherwise it is a helper."""
        return self.emit_outputs(op_name, inputs, attrs, [out], helper=out is None)[0]

    def emit_outputs(self, op_name: str, inputs: list, attrs: dict, outs: list[str | None],
                     helper: bool = False) -> list[str]:
        """Append an IR node of an op with ``len(outs)`` outputs (lstm: output, h_n,
        c_n); output ``i`` takes the ONNX name ``outs[i]`` where given. The node is
        named after the ONNX node, or (``helper``) ``<onnx node>/<op>``."""
        op = ops.get(op_name)
        names = ["" if v is None else self.tensor(v) for v in inputs]
        if not any(t.variadic for t in op.tensor_args):
            while names and names[-1] == "":
                names.pop()
        attrs = _canonical(op, attrs)
        try:
            out_types = ops.infer_types(op, [self.types[n] if n else None for n in names], attrs)
        except ops.TypeRuleError as exc:
            raise self._error(str(exc)) from None
        if len(out_types) != len(outs):
            raise self._error(f"{op_name} gives {len(out_types)} outputs, {len(outs)} expected")
        if helper:
            node_name = self._fresh(f"{self.cur_name}/{op_name}", nodes=True)
            self.node_names.add(node_name)
        else:
            node_name = self._fresh_node(self.cur_name)
        values = []
        for i, out in enumerate(outs):
            if helper and len(outs) == 1:
                value_name = node_name
            elif out:
                value_name = out if out not in self.taken else self._fresh(out)
            else:
                value_name = self._fresh(f"{node_name}.{i}" if len(outs) > 1 else node_name)
            self.taken.add(value_name)
            values.append(value_name)
        self.nodes.append(Node(node_name, op_name, names, [Value(v, t) for v, t in zip(values, out_types)], attrs,
                               self.cur_scope))
        self.types.update(zip(values, out_types))
        return values

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
        """Entries of a constant or size vector (ints, dim names, SizeExprs); None if absent."""
        if value is None:
            return None
        if isinstance(value, Sizes):
            return list(value.items)
        if isinstance(value, Const):
            return [int(v) for v in value.array.reshape(-1)]
        raise self._error(f"{what} must be known while importing (a constant or computed from shapes)")

    def scalar(self, value):
        """A one-element constant as a Python number (or a symbolic size as Sym or SizeExpr); else None."""
        if isinstance(value, Const) and value.array.size == 1:
            return _python_scalar(value.array)
        if isinstance(value, Sizes) and len(value.items) == 1:
            return dim_attr(value.items[0])
        return None

    def const(self, array, name: str | None = None, weight: bool = False) -> Const:
        return Const(np.asarray(array), name or self._fresh(f"{self.cur_name}/const"), weight)

    def out(self, node, i: int = 0) -> str:
        return node.output[i]


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
