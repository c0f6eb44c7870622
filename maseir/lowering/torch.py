"""Mase IR -> torch.fx.GraphModule.

``to_torch(graph)`` gives a module called with the graph's inputs in order,
returning the graph's output (a tuple when there are several). Its
parameters carry the IR param names with ``requires_grad = trainable``, so it
trains. Values and params with a number format are rounded to it where they
are computed or read (``maseir.formats.fake_quantize``: the format's exact
rounding forward, a straight-through gradient backward, so training a
quantized graph is quantization-aware training); a fixed-point param's
parameter holds its real values (codes times the step); ops whose behaviour follows the module mode (dropout, attention
dropout, batch norm) are small submodules under ``_ops`` so switching the
module between train and eval mode reaches them.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from .. import formats, ops, symbolic, tensors
from ..ir import Graph
from .inputs import check_inputs, input_signature

aten = torch.ops.aten


class ModeAwareOp(nn.Module):
    """One node of an op whose ATen call depends on train or eval mode."""

    def __init__(self, op: ops.OpDef, attrs: dict):
        super().__init__()
        self.op = op
        self.attrs = dict(attrs)

    def forward(self, *inputs, **sizes):
        overload, args, kwargs = self.op.call_args(list(inputs), self.attrs,
                                                   lambda d: symbolic.evaluate(d, sizes), training=self.training)
        return overload(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.op.name}, {self.attrs}"


def to_torch(graph: Graph) -> fx.GraphModule:
    """A GraphModule computing ``graph``, in eval mode.

    Called with inputs that do not fit the graph's input types (rank, dtype,
    a fixed size, one size per symbolic dim across inputs) it raises
    :class:`maseir.errors.InputError`, one line naming the input
    (``maseir.lowering.inputs``)."""
    root = nn.Module()
    fx_graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for value in graph.inputs:
        env[value.name] = fx_graph.placeholder(_identifier(value.name))
        env[value.name].meta["maseir_value"] = value.name
    # inputs that do not fit the graph's input types fail here, naming the input, not deep inside an op
    fx_graph.call_function(check_inputs, (input_signature(graph), *(env[v.name] for v in graph.inputs)))
    sizes: dict = {}

    def size_of(dim) -> fx.Node:
        """The node computing a symbolic dim: aten.sym_size of the input axis a symbol is
        bound to, and Python int arithmetic on those for an expression (as torch.export writes)."""
        if dim not in sizes:
            if isinstance(dim, str):
                source, axis = graph.dims[dim]
                sizes[dim] = fx_graph.call_function(aten.sym_size.int, (env[source], axis))
            else:
                def apply(fn):
                    return lambda a, b: fx_graph.call_function(fn, (a, b))
                sizes[dim] = symbolic.fold(dim, lambda x: size_of(x) if isinstance(x, str) else x,
                                           apply(operator.add), apply(operator.sub), apply(operator.mul),
                                           apply(operator.floordiv), recurse=size_or_int)
        return sizes[dim]

    def size_or_int(dim):
        return dim if isinstance(dim, int) else size_of(dim)

    def rounded(node: fx.Node, type_) -> fx.Node:
        """``node`` rounded to ``type_``'s number format (fake quantization, STE)."""
        if not formats.needs_rounding(type_):
            return node
        return fx_graph.call_function(formats.fake_quantize_as, (node, *formats.format_args(type_.format)))

    def value_of(name: str):
        if not name:
            return None
        if name not in env:  # a param, read where first used: in its format, so QAT trains through it
            env[name] = rounded(fx_graph.get_attr(name), graph.params[name].type)
        return env[name]

    for value in graph.inputs:
        env[value.name] = rounded(env[value.name], value.type)
    for name, tensor in graph.params.items():
        _install(root, name, _as_module_state(tensor))
    used_modules = 0
    for node in graph.nodes:
        op = ops.get(node.op)
        inputs = [value_of(n) for n in node.inputs]
        if op.mode_dependent:
            target = f"_ops.n{used_modules}_{_identifier(node.name)}"
            used_modules += 1
            _install(root, target, ModeAwareOp(op, node.attrs))
            symbols = sorted(frozenset().union(*(ops.attr_symbols(v) for v in node.attrs.values())))
            result = fx_graph.call_module(target, tuple(inputs), {s: size_of(s) for s in symbols})
        else:
            overload, args, kwargs = op.call_args(inputs, node.attrs, size_of)
            result = fx_graph.call_function(overload, args, kwargs)
        result.name = _identifier(node.name)
        if len(node.outputs) == 1:
            result.meta["maseir_value"] = node.outputs[0].name  # the op's own result, before its format
            env[node.outputs[0].name] = rounded(result, node.outputs[0].type)
        else:
            for i, out in enumerate(node.outputs):
                env[out.name] = rounded(fx_graph.call_function(operator.getitem, (result, i)), out.type)
    outputs = [value_of(n) for n in graph.outputs]
    fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    module = fx.GraphModule(root, fx_graph, class_name="MaseIRModule")
    for name, tensor in graph.params.items():  # GraphModule copies only the params it reads
        if not _has(module, name):
            _install(module, name, _as_module_state(tensor))
    return module.train(False)


def _as_module_state(tensor):
    value = tensors.to_torch(tensor)
    if value.is_floating_point() or value.is_complex():
        return nn.Parameter(value, requires_grad=tensor.trainable)
    return _Buffer(value)


class _Buffer:
    """Marks a non-float tensor to be registered as a buffer."""

    def __init__(self, value: torch.Tensor):
        self.value = value


def _install(module: nn.Module, path: str, obj) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        child = getattr(module, part, None)
        if not isinstance(child, nn.Module):
            child = nn.Module()
            module.add_module(part, child)
        module = child
    if isinstance(obj, _Buffer):
        module.register_buffer(leaf, obj.value)
    elif isinstance(obj, nn.Parameter):
        module.register_parameter(leaf, obj)
    else:
        module.add_module(leaf, obj)


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_parameter(path)
        return True
    except AttributeError:
        try:
            module.get_buffer(path)
            return True
        except AttributeError:
            return False


def _identifier(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return out if out and not out[0].isdigit() else f"_{out}"
