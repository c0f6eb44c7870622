"""torch.export -> Mase IR.

``export(model, example_inputs)`` captures any module torch.export can
capture (non-strict, so Hugging Face models work) and converts its ATen graph
node by node into registry ops. Node names and scopes come from the module
path in ``nn_module_stack``; params keep their state-dict names; symbolic
sizes keep the names the caller gave them (``batch``, ``seq``). A model's KV
cache (``model.config.use_cache``) is off while it is captured, in-place ops on
intermediate values become their out-of-place op, and a capture failure is a
:class:`CaptureError` that says what to change where the cause is known.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from .. import ops, symbolic, tensors
from ..arguments import describe
from ..errors import ArgumentError, MaseIRError, UnsupportedOpError
from ..ir import DType, Graph, Node, SizeExpr, Sym, TensorType, Value, default_format, dim_attr, unique_name

aten = torch.ops.aten

# ATen overloads that are identities for the IR: their output is their first input.
_IDENTITIES = {aten.contiguous.default, aten.clone.default, aten.alias.default,
               aten.detach.default, aten.lift_fresh_copy.default}
_ASSERTIONS = {aten._assert_tensor_metadata.default, aten._assert_scalar.default,
               aten.sym_constrain_range_for_size.default}
_DTYPE_CASTS = {aten.to.dtype, aten.to.dtype_layout, aten.to.device, aten._to_copy.default,
                aten.type_as.default}

# Overloads that map to a registry op under another name: (op, argument renames).
_ALIASES = {
    aten.view.default: ("reshape", {"size": "shape"}),
    aten.__and__.Tensor: ("bitwise_and", {}),
}


def _overload_table() -> dict[Any, tuple[str, dict[str, str]]]:
    table = {}
    for op in ops.REGISTRY.values():
        table[op.aten] = (op.name, {})
        if op.scalar_aten is not None:
            table[op.scalar_aten] = (op.name, {})
    table.update(_ALIASES)
    return table


_OVERLOADS = _overload_table()


def export(model: torch.nn.Module, example_inputs: tuple | dict = (), *,
           dynamic_dims: dict[str, dict[int, str]] | None = None,
           output_names: list[str] | None = None,
           metadata: dict[str, str] | None = None) -> Graph:
    """Capture ``model`` with torch.export and convert it to a Graph.

    ``example_inputs`` is a tuple (or list) of positional tensors or a dict
    (any mapping, such as a tokenizer's BatchEncoding) of keyword tensors.
    ``dynamic_dims`` maps an input name to ``{axis: dim name}``; by default
    axis 0 of every input is ``batch``. A symbolic axis needs an example
    size of at least 2 (torch.export fixes sizes 0 and 1). Dropout is kept
    as nodes (the model is captured in eval mode, which torch.export records
    with one ``dropout`` per Dropout module).

    Raises ArgumentError for an argument of the wrong kind, MaseIRError for
    a dynamic_dims entry that does not fit the inputs or a model
    torch.export cannot capture (with torch.export's whole explanation),
    and UnsupportedOpError for an op the registry does not hold.
    """
    args, kwargs = _example_arguments(model, example_inputs)
    names = _input_names(model, args, kwargs)
    if dynamic_dims is None:
        dynamic_dims = {name: {0: "batch"} for name in names}
    _check_dynamic_dims(dynamic_dims, dict(zip(names, [*args, *kwargs.values()])))
    _check_strings(output_names, metadata)
    ep = _capture(model, args, kwargs, names, dynamic_dims)
    graph = _Converter(ep, model, dynamic_dims, output_names).run()
    graph.metadata.update(metadata or {})
    return graph


def _example_arguments(model, example_inputs) -> tuple[tuple, dict]:
    """(positional, keyword) example tensors, after checking what the caller passed."""
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"export: model must be a torch.nn.Module (got {describe(model)})")
    if isinstance(example_inputs, torch.Tensor):
        raise ArgumentError("export: example_inputs is a single tensor; pass (tensor,) for one positional "
                            "input, or a dict of name -> tensor")
    if isinstance(example_inputs, (tuple, list)):
        for i, value in enumerate(example_inputs):
            if not isinstance(value, torch.Tensor):
                raise ArgumentError(f"export: example_inputs[{i}] must be a tensor (got {describe(value)})")
        return tuple(example_inputs), {}
    if isinstance(example_inputs, Mapping):
        for key, value in example_inputs.items():
            if not isinstance(key, str):
                raise ArgumentError(f"export: example_inputs keys must be input names (got {describe(key)})")
            if not isinstance(value, torch.Tensor):
                raise ArgumentError(f"export: example_inputs[{key!r}] must be a tensor (got {describe(value)})")
        return (), dict(example_inputs)
    raise ArgumentError("export: example_inputs must be a tuple of tensors or a dict of name -> tensor "
                        f"(got {describe(example_inputs)})")


def _check_dynamic_dims(dynamic_dims, inputs: dict[str, torch.Tensor]) -> None:
    """Every entry names an input, an axis it has, and an example size torch.export keeps symbolic."""
    if not isinstance(dynamic_dims, Mapping):
        raise ArgumentError(f"export: dynamic_dims must be a dict of input name -> {{axis: dim name}} "
                            f"(got {describe(dynamic_dims)})")
    for name, axes in dynamic_dims.items():
        if not isinstance(axes, Mapping) or not all(isinstance(a, int) and not isinstance(a, bool)
                                                    and isinstance(d, str) for a, d in axes.items()):
            raise ArgumentError(f"export: dynamic_dims[{name!r}] must be a dict of axis (int) -> dim name (str) "
                                f"(got {describe(axes)})")
        if name not in inputs:
            raise MaseIRError(f"export: dynamic_dims names {name!r}, which is not an example input "
                              f"(inputs: {', '.join(inputs) or 'none'})")
        shape = tuple(inputs[name].shape)
        for axis, dim in axes.items():
            if not -len(shape) <= axis < len(shape):
                raise MaseIRError(f"export: dynamic_dims[{name!r}] has axis {axis}, but {name} has shape "
                                  f"{list(shape)}")
            if shape[axis] < 2:
                raise MaseIRError(
                    f"export: input {name!r} has size {shape[axis]} on axis {axis} ({dim}) in the example, and "
                    f"torch.export fixes sizes 0 and 1 as constants; use an example {dim} of at least 2 (or leave "
                    f"axis {axis} of {name!r} out of dynamic_dims to keep it fixed)")


def _check_strings(output_names, metadata) -> None:
    if output_names is not None and (isinstance(output_names, str) or not isinstance(output_names, (list, tuple))
                                     or not all(isinstance(n, str) for n in output_names)):
        raise ArgumentError(f"export: output_names must be a list of str (got {describe(output_names)})")
    if metadata is not None and (not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ArgumentError(f"export: metadata must be a dict of str -> str (got {describe(metadata)})")


def _input_names(model, args, kwargs) -> list[str]:
    import inspect
    params = [p.name for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return params[:len(args)] + list(kwargs)


def _capture(model, args, kwargs, names, dynamic_dims) -> ExportedProgram:
    def spec(name, value):
        axes = dynamic_dims.get(name, {})
        return {axis: torch.export.Dim.DYNAMIC for axis in axes} if value.dim() else None

    positional = tuple(spec(n, v) for n, v in zip(names, args))
    keyword = {n: spec(n, v) for n, v in kwargs.items()}
    dynamic_shapes = positional or keyword  # example_inputs is one or the other
    was_training = model.training
    model.train(False)
    config = getattr(model, "config", None)
    cached = getattr(config, "use_cache", None)
    if cached:  # a KV cache is for generating token by token; the graph computes the whole sequence
        config.use_cache = False
    try:
        return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except MaseIRError:
        raise
    except Exception as exc:
        text, cause = _explanation(exc, model)
        raise CaptureError(f"torch.export could not capture {type(model).__name__}: {text}", cause) from exc
    finally:
        model.train(was_training)
        if cached:
            config.use_cache = cached


class CaptureError(MaseIRError):
    """torch.export could not capture a model.

    ``cause`` names a cause maseir recognised and said in terms of what to
    change (``"pad_token_id"``, ``"kv_cache"``, ``"output_type"``,
    ``"data_dependent"``, ``"specialized"``); it is None where the message is
    torch.export's own. The original exception is the ``__cause__``.
    """

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause


def _explanation(exc: Exception, model) -> tuple[str, str | None]:
    """What a torch.export failure means for the user, and its cause's name (see CaptureError).

    Failures worded in torch's internals (pytrees, guards on data-dependent
    expressions) or in transformers' (a missing pad token) are said in terms
    of what to change; any other keeps torch.export's whole message, with what
    it means for maseir's arguments where it is a size the model fixes
    (torch.export words that in terms of its own Dim API).
    """
    text = str(exc).strip() or type(exc).__name__
    name = type(model).__name__
    if "Cannot handle batch sizes > 1 if no padding token is defined" in text:
        eos = getattr(getattr(model, "config", None), "eos_token_id", None)
        hint = f"; its eos_token_id is {eos}" if eos is not None else ""
        return (f"{name} pools each row's last non-padding token, and its config has no pad_token_id, so it "
                "cannot pool a batch of more than one row: set model.config.pad_token_id before export (commonly "
                f"the tokenizer's pad or end-of-sequence token{hint}); `maseir export` sets it to the "
                "eos_token_id itself", "pad_token_id")
    found = re.search(r"Found <class '([\w.]+)'> in output, which is not a known type", text)
    if found:
        kind = found.group(1).rsplit(".", 1)[-1]
        if "Cache" in kind:
            return (f"{name} returns a key/value cache ({kind}), which a graph of the whole sequence does not "
                    "need: call it with use_cache=False (maseir turns model.config.use_cache off for export, but "
                    "this model makes a cache anyway)", "kv_cache")
        return (f"{name} returns a {kind}, which is not a tensor (nor a tuple, list or dict of tensors): make "
                "forward return tensors only", "output_type")
    if "data-dependent" in text and "guard" in text.lower():
        where = re.search(r"The following call raised this error:\s*\n\s*(File .+)", text)
        at = f" ({where.group(1).strip()})" if where else ""
        return (f"{name} branches on the values of a tensor{at}, and a graph is one computation for every "
                "input value: compute both outcomes and choose with torch.where, or decide outside forward",
                "data_dependent")
    if "specialized" in text or "specialised" in text:
        text += ("\n(maseir makes the axes in dynamic_dims symbolic, by default axis 0 of every input as "
                 "'batch'; leave out an axis the model fixes, or pass dynamic_dims={} for fixed sizes)")
        return text, "specialized"
    return text, None


class _Converter:
    """Turns one ExportedProgram into a Graph."""

    def __init__(self, ep: ExportedProgram, model, dynamic_dims, output_names):
        self.ep = ep
        self.model = model
        self.dynamic_dims = dynamic_dims
        self.output_names = output_names
        self.env: dict[torch.fx.Node, Any] = {}  # fx node -> value name, list of names, or a size
                                                 # (int, Sym, SizeExpr) for a SymInt-valued node
        self.symbols: dict[str, str] = {}        # sympy symbol -> dim name
        self.dims: dict[str, tuple[str, int]] = {}
        self.nodes: list[Node] = []
        self.node_names: set[str] = set()
        self.params = {}
        self.inputs: list[Value] = []
        self.order: dict[torch.fx.Node, int] | None = None  # graph position, for in-place ops

    def run(self) -> Graph:
        self._placeholders()
        for fx_node in self.ep.graph.nodes:
            if fx_node.op == "call_function":
                self._call(fx_node)
            elif fx_node.op == "output":
                outputs = self._outputs(fx_node)
        graph = Graph(self.inputs, outputs, self.nodes, dict(sorted(self.params.items())), self.dims)
        return graph

    # --- inputs ---------------------------------------------------------------
    def _placeholders(self) -> None:
        specs = {s.arg.name: s for s in self.ep.graph_signature.input_specs}
        for fx_node in self.ep.graph.nodes:
            if fx_node.op != "placeholder":
                continue
            spec = specs[fx_node.name]
            if spec.kind == InputKind.USER_INPUT:
                self._user_input(fx_node)
                continue
            target = spec.target
            if target in self.ep.state_dict:
                value = self.ep.state_dict[target]
            else:
                value = self.ep.constants[target]
            trainable = spec.kind == InputKind.PARAMETER and bool(getattr(value, "requires_grad", False))
            self.params[target] = tensors.to_ir(target, value, trainable)
            self.env[fx_node] = target

    def _user_input(self, fx_node) -> None:
        name = fx_node.name
        val = fx_node.meta["val"]
        wanted = self.dynamic_dims.get(name, {})
        for axis, size in enumerate(val.shape):
            if isinstance(size, torch.SymInt):
                symbol = str(size.node.expr)
                if symbol not in self.symbols:
                    # Sizes given the same name are the same size (batch of
                    # input_ids and of attention_mask), even where torch.export
                    # kept two symbols; the first input binds the name.
                    dim = wanted.get(axis) or f"{name}_dim{axis}"
                    self.symbols[symbol] = dim
                    self.dims.setdefault(dim, (name, axis))
        self.inputs.append(Value(name, self._type(val, name)))
        self.env[fx_node] = name

    def _type(self, val, where: str) -> TensorType:
        shape = tuple(self._dim(size, where) for size in val.shape)
        dtype = tensors.dtype_name(val.dtype)
        return TensorType(dtype, shape, default_format(dtype))

    def _dim(self, size, where: str):
        """A torch size (an int or a SymInt over the input sizes) as an IR dim."""
        if not isinstance(size, torch.SymInt):
            return int(size)

        def symbol(name: str) -> str:
            if name not in self.symbols:
                raise UnsupportedOpError(f"{where}: size {size.node.expr} uses {name}, which is not the size "
                                         "of an input axis in dynamic_dims (a data-dependent size?)")
            return self.symbols[name]
        try:
            return symbolic.from_sympy(size.node.expr, symbol)
        except ValueError as exc:
            raise UnsupportedOpError(f"{where}: {exc}") from None

    # --- nodes ----------------------------------------------------------------
    def _call(self, fx_node) -> None:
        target = fx_node.target
        if target in _ASSERTIONS:
            return
        val = fx_node.meta.get("val")
        if isinstance(val, torch.SymInt):  # sym_size, and arithmetic on sizes (operator.mul, ...)
            self.env[fx_node] = self._sym_of(val, f"size {fx_node.name} in module '{_scope(fx_node) or '<root>'}'")
            return
        if isinstance(val, torch.SymBool):  # a size check whose assertion is skipped
            self.env[fx_node] = None
            return
        if type(val) is int and target not in _OVERLOADS:  # size arithmetic torch.export did not fold
            self.env[fx_node] = val
            return
        if target is operator.getitem:
            source, index = fx_node.args
            self.env[fx_node] = self.env[source][index]
            return
        if target in _IDENTITIES:
            self.env[fx_node] = self.env[fx_node.args[0]]
            return
        scope = _scope(fx_node)
        if target in _DTYPE_CASTS:
            source = self.env[fx_node.args[0]]
            dtype = tensors.dtype_name(fx_node.meta["val"].dtype)
            if dtype == tensors.dtype_name(fx_node.args[0].meta["val"].dtype):
                self.env[fx_node] = source
                return
            self._emit(fx_node, "to", [source], {"dtype": DType(dtype)}, scope)
            return
        mutated = None
        if target not in _OVERLOADS and _out_of_place(target) is not None:
            mutated = self._mutated(fx_node, scope)
            target = _out_of_place(target)
        if target not in _OVERLOADS:
            name = getattr(target, "__name__", str(target))
            raise UnsupportedOpError(
                f"unsupported op {str(target)!s} ({name}) in module "
                f"'{scope or '<root>'}': it is not in the op registry (see spec/ops.md)")
        op_name, renames = _OVERLOADS[target]
        op = ops.get(op_name)
        named = _named_args(target, fx_node.args, fx_node.kwargs)
        named = {renames.get(k, k): v for k, v in named.items()}
        inputs, attrs = self._operands(op, named, scope)
        if op_name == "split" and len(fx_node.meta["val"]) == 1:  # one piece: the input itself
            self.env[fx_node] = [inputs[0]]
            return
        if op_name == "scaled_dot_product_attention":
            p = _attention_dropout(self.model, scope)
            if p:
                attrs["dropout_p"] = p
        self._emit(fx_node, op_name, inputs, attrs, scope)
        for alias in mutated or ():  # later readers of the updated tensor read the result
            self.env[alias] = self.env[fx_node]

    def _mutated(self, fx_node, scope: str) -> list:
        """The fx nodes that stand for the tensor an in-place op (``x += y``, ``add_``) updates: the
        tensor and the earlier in-place results that alias it. Refused unless updating it is the
        same as rebinding it to the result: an intermediate value that no view shares."""
        chain = [fx_node.args[0]]
        while isinstance(chain[-1], torch.fx.Node) and _is_in_place(chain[-1]):
            chain.append(chain[-1].args[0])
        root = chain[-1]
        name = str(fx_node.target)
        where = f"module '{scope or '<root>'}'"
        if not isinstance(root, torch.fx.Node) or root.op != "call_function":
            raise UnsupportedOpError(f"op {name} in {where} updates a graph input, parameter or buffer in place, "
                                     "which the IR does not represent (export the model in eval mode, or make "
                                     "the update out of place)")
        if self.order is None:
            self.order = {n: i for i, n in enumerate(self.ep.graph.nodes)}
        earlier = [u for n in chain for u in n.users if u is not fx_node and self.order[u] < self.order[fx_node]]
        if _is_view(root) or any(_is_view(u) and not _is_in_place(u) for u in earlier):
            raise UnsupportedOpError(f"op {name} in {where} updates in place a tensor that is a view of another "
                                     "(or has one), which the IR does not represent; make the update out of place")
        return chain

    def _operands(self, op: ops.OpDef, named: dict[str, Any], scope: str):
        inputs: list[str] = []
        attrs: dict[str, Any] = {}
        lists: dict[str, list] = {}  # fixed-length tensor lists, one slot per entry (lstm's hx)
        for targ in op.tensor_args:
            if targ.group is not None:
                entries = lists.setdefault(targ.group, list(named.pop(targ.group, None) or []))
                value = entries.pop(0) if entries else None
            else:
                value = named.pop(targ.name, None)
            if targ.variadic:
                inputs.extend("" if v is None else self.env[v] for v in (value or []))
            elif isinstance(value, torch.fx.Node):
                inputs.append(self.env[value])
            elif value is None:
                inputs.append("")
            else:  # a constant in a tensor slot: stored as an attribute
                inputs.append("")
                attrs[targ.name] = self._attr(value, op, targ.name)
        if any(lists.values()):
            raise UnsupportedOpError(f"op {op.name} in module '{scope or '<root>'}': more tensors in "
                                     f"{', '.join(k for k, v in lists.items() if v)} than it takes")
        while inputs and inputs[-1] == "" and not any(t.variadic for t in op.tensor_args):
            inputs.pop()
        for spec in op.attrs:
            if spec.name not in named:
                continue
            value = self._attr(named.pop(spec.name), op, spec.name)
            if value is None or (not spec.required and value == self._attr(spec.default, op, spec.name)):
                continue
            attrs[spec.name] = value
        named = {k: v for k, v in named.items()
                 if k not in ops._ALWAYS_DROPPED and k != op.training_flag}
        if named:
            raise UnsupportedOpError(f"op {op.name} in module '{scope or '<root>'}': "
                                     f"unexpected arguments {sorted(named)}")
        return inputs, attrs

    def _attr(self, value: Any, op: ops.OpDef, name: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, torch.SymInt):
            return self._sym_of(value)
        if isinstance(value, torch.fx.Node):
            sym = self.env[value]
            if not isinstance(sym, (Sym, SizeExpr, int)) or isinstance(sym, bool):
                raise UnsupportedOpError(f"op {op.name}: argument {name} is a tensor where a constant is expected")
            return sym
        if isinstance(value, torch.dtype):
            return DType(tensors.dtype_name(value))
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, (list, tuple)):
            items = [self._attr(v, op, name) for v in value]
            return tuple(v.name if isinstance(v, Sym) else v for v in items)
        if isinstance(value, (torch.device, torch.layout, torch.memory_format)):
            return None
        raise UnsupportedOpError(f"op {op.name}: argument {name}={value!r} has an unsupported type")

    def _sym_of(self, value: torch.SymInt, where: str = "a symbolic size"):
        """A SymInt as an attribute value: an int, Sym(name) or a SizeExpr."""
        return dim_attr(self._dim(value, where))

    def _emit(self, fx_node, op_name: str, inputs, attrs, scope: str) -> None:
        name = self._fresh(f"{scope}.{op_name}" if scope else op_name)
        val = fx_node.meta["val"]
        if isinstance(val, (tuple, list)):
            outputs = [Value(f"{name}.{i}", self._type(v, name)) for i, v in enumerate(val)]
            self.env[fx_node] = [v.name for v in outputs]
        else:
            outputs = [Value(name, self._type(val, name))]
            self.env[fx_node] = name
        self.nodes.append(Node(name, op_name, list(inputs), outputs, dict(sorted(attrs.items())), scope))

    def _fresh(self, base: str) -> str:
        return unique_name(base, self.node_names, self.params)

    # --- outputs --------------------------------------------------------------
    def _outputs(self, fx_node) -> list[str]:
        results = [self.env[a] for a in fx_node.args[0]]
        names = self.output_names or _output_names(self.ep, len(results))
        renames = {}
        taken = {v.name for v in self.inputs} | set(self.params)
        for value, wanted in zip(results, names):
            if value in renames or value in taken or wanted in self.node_names - {value}:
                continue
            renames[value] = wanted
        for node in self.nodes:
            node.inputs = [renames.get(i, i) for i in node.inputs]
            node.outputs = [Value(renames.get(v.name, v.name), v.type) for v in node.outputs]
        return [renames.get(v, v) for v in results]


def _out_of_place(target):
    """The out-of-place overload of an in-place ATen overload (``add_.Tensor`` -> ``add.Tensor``)
    that the registry holds, or None."""
    schema = getattr(target, "_schema", None)
    if schema is None or not schema.arguments:
        return None
    first = schema.arguments[0].alias_info
    base = schema.name.split("::")[-1]
    if first is None or not first.is_write or not base.endswith("_"):
        return None
    overload = getattr(getattr(aten, base[:-1], None), target._overloadname, None)
    return overload if overload in _OVERLOADS else None


def _is_in_place(fx_node) -> bool:
    """Whether ``fx_node`` is an in-place op (its result is its updated first argument)."""
    schema = getattr(fx_node.target, "_schema", None) if fx_node.op == "call_function" else None
    first = schema.arguments[0].alias_info if schema is not None and schema.arguments else None
    return first is not None and first.is_write


def _is_view(fx_node) -> bool:
    """Whether ``fx_node``'s result may share memory with an input (a view or an alias)."""
    if fx_node.op != "call_function":
        return False
    schema = getattr(fx_node.target, "_schema", None)
    return schema is not None and any(r.alias_info is not None for r in schema.returns)


def _named_args(target, args, kwargs) -> dict[str, Any]:
    named = dict(kwargs)
    for arg, value in zip(target._schema.arguments, args):
        named[arg.name] = value
    return named


def _scope(fx_node) -> str:
    stack = fx_node.meta.get("nn_module_stack") or {}
    for path, _cls in reversed(list(stack.values())):
        if not path.startswith("_empty_nn_module_stack"):
            return path
    return ""


def _attention_dropout(model, scope: str) -> float:
    """The attention dropout an eval-mode capture leaves out.

    Hugging Face attention modules read their ``dropout`` submodule's p (or an
    ``attention_dropout`` float) only in training, so eval-mode export records
    dropout_p=0; the IR keeps the real p, which applies in train() only.
    """
    try:
        module = model.get_submodule(scope) if scope else model
    except AttributeError:
        return 0.0
    drop = getattr(module, "dropout", None)
    if isinstance(drop, torch.nn.Dropout):
        return float(drop.p)
    p = getattr(module, "attention_dropout", None)
    return float(p) if isinstance(p, float) else 0.0


def _output_names(ep: ExportedProgram, count: int) -> list[str]:
    spec = ep.module_call_graph[0].signature.out_spec if ep.module_call_graph else None
    context = getattr(spec, "context", None)
    if isinstance(context, list) and len(context) == count and all(isinstance(c, str) for c in context):
        return context
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]
