"""Choosing the nodes a rewrite works on, the same way for every pass family.

LoRA, quantization and pruning all take a node selection: an op list
(``ops=linear,matmul``), module-name targets (``targets=query,value``, PEFT's
``target_modules``: the last part of a node's scope), and a scope regular
expression (``scope_regex="encoder\\.layer\\.[0-2]\\."``, searched in the
scope). A selection that matches nothing is an error that names it.

The *head* of a graph is the set of linear nodes nearest its outputs (a
classifier): the first linear on every path walked back from a graph output.
PEFT's sequence-classification models train it in full (``modules_to_save``)
instead of adapting it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MaseIRError
from ..ir import Graph, Node


class SelectionError(MaseIRError):
    """A node selection that matches nothing, or a malformed one."""


@dataclass(frozen=True)
class Selection:
    """Which nodes a pass rewrites: ``ops`` (op names), ``targets`` (last scope
    components; None = any) and ``scope_regex`` (searched in the scope; None =
    any). ``exclude_head`` leaves out the head linears unless a target names them."""

    ops: tuple[str, ...] = ("linear",)
    targets: tuple[str, ...] | None = None
    scope_regex: str | None = None
    exclude_head: bool = False

    def describe(self) -> str:
        parts = [f"ops={','.join(self.ops)}"]
        if self.targets:
            parts.append(f"targets={','.join(self.targets)}")
        if self.scope_regex is not None:
            parts.append(f"scope_regex={self.scope_regex!r}")
        return " ".join(parts)


def compile_regex(pattern: str | None) -> re.Pattern | None:
    """``pattern`` compiled, or SelectionError saying why it is not a regular expression."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise SelectionError(f"scope_regex={pattern!r} is not a regular expression: {exc}") from None


def last_scope_part(node: Node) -> str:
    """``query`` for a node of scope ``bert.encoder.layer.0.attention.self.query``."""
    return node.scope.rsplit(".", 1)[-1] if node.scope else ""


def select(graph: Graph, selection: Selection) -> list[Node]:
    """The nodes of ``graph`` that ``selection`` picks, in graph order.

    Raises SelectionError when it picks none, naming what was asked and what
    the graph has (the target names of nodes with the selected ops)."""
    regex = compile_regex(selection.scope_regex)
    head = {n.name for n in head_nodes(graph)} if selection.exclude_head else set()
    candidates = [n for n in graph.nodes if n.op in selection.ops]
    if not candidates:
        have = sorted({n.op for n in graph.nodes})
        raise SelectionError(f"no node has op {' or '.join(selection.ops)}; the graph's ops: {', '.join(have)}")
    chosen = []
    for node in candidates:
        part = last_scope_part(node)
        if selection.targets is not None and part not in selection.targets:
            continue
        if selection.targets is None and node.name in head:
            continue
        if regex is not None and not regex.search(node.scope):
            continue
        chosen.append(node)
    if not chosen:
        names = sorted({last_scope_part(n) for n in candidates if last_scope_part(n)})
        raise SelectionError(f"{selection.describe()} matches no node; target names of "
                             f"{'/'.join(selection.ops)} nodes here: {', '.join(names) or '(none)'}")
    return chosen


def head_nodes(graph: Graph) -> list[Node]:
    """The linear nodes nearest the graph's outputs: walking back from each output,
    the first linear met on every path (a classification head)."""
    producers = graph.producers()
    found: dict[str, Node] = {}
    seen: set[str] = set()
    stack = list(graph.outputs)
    while stack:
        name = stack.pop()
        if name in seen or name not in producers:
            continue
        seen.add(name)
        node = producers[name]
        if node.op == "linear":
            found[node.name] = node
            continue
        stack.extend(i for i in node.inputs if i)
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    return sorted(found.values(), key=lambda n: order[n.name])


def node_params(graph: Graph, node: Node) -> list[str]:
    """The names of the params ``node`` reads (its weight, bias...)."""
    return [i for i in node.inputs if i and i in graph.params]
