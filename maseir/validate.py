"""Graph validation (``maseir check``, ``maseir.check``): every problem, not just the first.

Checks that names are unique, nodes are in topological order and read only
defined values, ops exist with the inputs and attributes their schema asks
for, recorded types agree with the op's type rule, symbolic dims are bound to
real input axes, outputs exist, and (for a loaded file) tensor checksums hold.
"""

from __future__ import annotations

from . import ops, symbolic
from .ir import Graph, TensorType, is_symbolic


def check(graph: Graph, *, checksums: bool = True, types: bool = True) -> list[str]:
    """Every problem found in ``graph``, as readable lines; empty when valid.

    ``types`` runs each op's type rule (ATen's meta kernels: imports torch);
    without it the check is structural only: names, order, schemas, dims,
    outputs. ``checksums`` re-hashes every tensor (skipped for a graph read
    without its weights)."""
    problems: list[str] = []
    problems += _check_dims(graph)
    defined: dict[str, TensorType] = {}
    for value in graph.inputs:
        _define(defined, value.name, value.type, f"input {value.name}", problems)
    for name, tensor in graph.params.items():
        _define(defined, name, tensor.type, f"param {name}", problems)
    node_names: set[str] = set()
    for node in graph.nodes:
        where = f"node {node.name}"
        if node.name in node_names:
            problems.append(f"{where}: name used by an earlier node")
        node_names.add(node.name)
        problems += _check_node(node, defined, where, types)
        for value in node.outputs:
            _define(defined, value.name, value.type, where, problems)
    for name in graph.outputs:
        if name not in defined:
            problems.append(f"output {name}: no such value")
    if checksums and graph.has_weights:
        from .io import verify_checksums
        problems += [f"param {name}: bytes do not match the recorded sha256" for name in verify_checksums(graph)]
    return problems


def _define(defined, name, type, where, problems) -> None:
    if name in defined:
        problems.append(f"{where}: value {name} is defined twice")
    defined[name] = type


def _check_dims(graph: Graph) -> list[str]:
    problems = []
    inputs = {v.name: v for v in graph.inputs}
    for dim, (source, axis) in graph.dims.items():
        value = inputs.get(source)
        if value is None:
            problems.append(f"dim {dim}: bound to {source}, which is not a graph input")
        elif not 0 <= axis < len(value.type.shape) or value.type.shape[axis] != dim:
            problems.append(f"dim {dim}: axis {axis} of input {source} is not {dim}")
    used = frozenset().union(*(symbolic.symbols(d) for v in graph.inputs for d in v.type.shape if is_symbolic(d)))
    problems += [f"dim {d}: used by an input but not bound" for d in sorted(used - set(graph.dims))]
    for node in graph.nodes:  # a size a node computes with must be readable at run time
        unbound = frozenset().union(*(ops.attr_symbols(v) for v in node.attrs.values()),
                                    *(symbolic.symbols(d) for v in node.outputs for d in v.type.shape
                                      if is_symbolic(d))) - set(graph.dims)
        if unbound:
            problems.append(f"node {node.name}: uses symbolic dim{'s' if len(unbound) > 1 else ''} "
                            f"{', '.join(sorted(unbound))}, bound to no graph input")
    return problems


def _check_node(node, defined: dict[str, TensorType], where: str, types: bool = True) -> list[str]:
    if node.op not in ops.REGISTRY:
        return [f"{where}: unknown op {node.op!r}"]
    op = ops.get(node.op)
    problems = []
    input_types = []
    for name in node.inputs:
        if name and name not in defined:
            problems.append(f"{where}: reads {name}, which is not defined before it")
        input_types.append(defined.get(name) if name else None)
    fixed = [t for t in op.tensor_args if not t.variadic]
    if len(node.inputs) > len(fixed) and not any(t.variadic for t in op.tensor_args):
        problems.append(f"{where}: {len(node.inputs)} inputs, {node.op} takes at most {len(fixed)}")
    for i, targ in enumerate(fixed):
        given = i < len(node.inputs) and node.inputs[i]
        if not targ.optional and not given and targ.name not in node.attrs:
            problems.append(f"{where}: {node.op} needs input {targ.name}")
    tensor_names = {t.name for t in op.tensor_args}
    for key in node.attrs:
        if op.attr_spec(key) is None and key not in tensor_names:
            problems.append(f"{where}: {node.op} has no attribute {key}")
    for spec in op.attrs:
        if spec.required and spec.name not in node.attrs:
            problems.append(f"{where}: {node.op} needs attribute {spec.name}")
    if problems or not types:
        return problems
    try:
        inferred = ops.infer_types(op, input_types, node.attrs)
    except ops.TypeRuleError as exc:
        return [f"{where}: {exc}"]
    if len(inferred) != len(node.outputs):
        return [f"{where}: {len(node.outputs)} outputs recorded, {node.op} gives {len(inferred)}"]
    for value, want in zip(node.outputs, inferred):
        got = value.type
        if got.dtype != want.dtype or not ops.shapes_agree(tuple(got.shape), tuple(want.shape)):
            problems.append(f"{where}: output {value.name} is recorded as {_plain(got)}, "
                            f"the {node.op} type rule gives {_plain(want)}")
    return problems


def _plain(t: TensorType) -> str:
    """dtype and shape as the text form shows them (``float32[batch*seq, 128]``)."""
    return f"{t.dtype}[{', '.join(str(d) for d in t.shape)}]"
