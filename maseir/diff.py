"""Structural diff of two graphs (``maseir diff``).

Nodes and params are matched by name, which rewrites keep stable, so a diff
lists exactly what a rewrite touched: nodes added, removed and changed (op,
inputs, attributes, output types, scope), params added, removed and changed
(with the max abs difference of their values), interface changes (inputs,
outputs, dims), metadata, tokenizer and history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Graph, Node, Tensor
from .text import format_attr, format_node, format_type


@dataclass
class GraphDiff:
    """The differences from graph A to graph B; ``empty`` when they are the same."""

    interface: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    nodes_added: list[str] = field(default_factory=list)      # text lines of the new nodes
    nodes_removed: list[str] = field(default_factory=list)    # text lines of the old nodes
    nodes_changed: dict[str, list[str]] = field(default_factory=dict)  # node -> what changed
    params_added: list[str] = field(default_factory=list)
    params_removed: list[str] = field(default_factory=list)
    params_changed: dict[str, dict] = field(default_factory=dict)
    history_added: list[str] = field(default_factory=list)
    history_removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(vars(self).values())

    def to_json(self) -> dict:
        return dict(vars(self), same=self.empty)

    def lines(self) -> list[str]:
        out = [f"! {line}" for line in self.interface + self.metadata]
        out += [f"- {line}" for line in self.nodes_removed]
        out += [f"+ {line}" for line in self.nodes_added]
        for name, changes in self.nodes_changed.items():
            out.append(f"~ node {name}: " + "; ".join(changes))
        out += [f"- param {p}" for p in self.params_removed]
        out += [f"+ param {p}" for p in self.params_added]
        for name, change in self.params_changed.items():
            out.append(f"~ param {name}: {change['what']}")
        out += [f"- history {h}" for h in self.history_removed]
        out += [f"+ history {h}" for h in self.history_added]
        return out

    def summary(self) -> str:
        if self.empty:
            return "same"
        return (f"nodes: {len(self.nodes_removed)} removed, {len(self.nodes_added)} added, "
                f"{len(self.nodes_changed)} changed; params: {len(self.params_removed)} removed, "
                f"{len(self.params_added)} added, {len(self.params_changed)} changed; "
                f"history: {len(self.history_added)} added, {len(self.history_removed)} removed")


def diff(a: Graph, b: Graph) -> GraphDiff:
    d = GraphDiff()
    _interface(a, b, d)
    for key in sorted(set(a.metadata) | set(b.metadata)):
        if a.metadata.get(key) != b.metadata.get(key):
            d.metadata.append(f"metadata {key}: {a.metadata.get(key)!r} -> {b.metadata.get(key)!r}")
    if a.tokenizer_json != b.tokenizer_json:
        d.metadata.append("tokenizer changed")
    nodes_a = {n.name: n for n in a.nodes}
    nodes_b = {n.name: n for n in b.nodes}
    d.nodes_removed = [format_node(n) for n in a.nodes if n.name not in nodes_b]
    d.nodes_added = [format_node(n) for n in b.nodes if n.name not in nodes_a]
    for node in b.nodes:
        if node.name in nodes_a:
            changes = _node_changes(nodes_a[node.name], node)
            if changes:
                d.nodes_changed[node.name] = changes
    d.params_removed = [p for p in a.params if p not in b.params]
    d.params_added = [p for p in b.params if p not in a.params]
    for name, tensor in b.params.items():
        if name in a.params and a.params[name] != tensor:
            d.params_changed[name] = _param_change(a.params[name], tensor)
    common = 0
    while (common < min(len(a.history), len(b.history)) and a.history[common] == b.history[common]):
        common += 1
    d.history_removed = [e.step for e in a.history[common:]]
    d.history_added = [e.step for e in b.history[common:]]
    return d


def _interface(a: Graph, b: Graph, d: GraphDiff) -> None:
    ins_a = [f"{v.name}: {format_type(v.type)}" for v in a.inputs]
    ins_b = [f"{v.name}: {format_type(v.type)}" for v in b.inputs]
    if ins_a != ins_b:
        d.interface.append(f"inputs: [{', '.join(ins_a)}] -> [{', '.join(ins_b)}]")
    if a.outputs != b.outputs:
        d.interface.append(f"outputs: {a.outputs} -> {b.outputs}")
    if a.dims != b.dims:
        d.interface.append(f"dims: {a.dims} -> {b.dims}")


def _node_changes(a: Node, b: Node) -> list[str]:
    changes = []
    if a.op != b.op:
        changes.append(f"op {a.op} -> {b.op}")
    if len(a.inputs) == len(b.inputs):
        changes += [f"input {i} {old or '_'} -> {new or '_'}"
                    for i, (old, new) in enumerate(zip(a.inputs, b.inputs)) if old != new]
    else:
        changes.append(f"inputs ({', '.join(a.inputs)}) -> ({', '.join(b.inputs)})")
    for key in sorted(set(a.attrs) | set(b.attrs)):
        old, new = a.attrs.get(key), b.attrs.get(key)
        if old != new or type(old) is not type(new):
            show = lambda v: "(default)" if v is None else format_attr(v)  # noqa: E731
            changes.append(f"{key} {show(old)} -> {show(new)}")
    outs_a = [f"{v.name}: {format_type(v.type)}" for v in a.outputs]
    outs_b = [f"{v.name}: {format_type(v.type)}" for v in b.outputs]
    if outs_a != outs_b:
        changes.append(f"outputs {', '.join(outs_a)} -> {', '.join(outs_b)}")
    if a.scope != b.scope:
        changes.append(f"scope {a.scope!r} -> {b.scope!r}")
    changes += _annotation_changes(a.annotations, b.annotations)
    return changes


def _annotation_changes(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [f"annotation {key} {a.get(key, '(none)')} -> {b.get(key, '(none)')}"
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _param_change(a: Tensor, b: Tensor) -> dict:
    change: dict = {"what": ""}
    parts = []
    if a.type != b.type:
        parts.append(f"{format_type(a.type)} -> {format_type(b.type)}")
    if a.trainable != b.trainable:
        parts.append(f"trainable {a.trainable} -> {b.trainable}")
    parts += _annotation_changes(a.annotations, b.annotations)
    if a.sha256 != b.sha256:
        if a.type.shape == b.type.shape and a.has_data and b.has_data:
            import numpy as np

            from .arrays import to_numpy
            va, vb = (to_numpy(t).astype(np.float64) for t in (a, b))
            change["max_abs_diff"] = float(np.abs(va - vb).max()) if va.size else 0.0
            parts.append(f"values differ (max abs diff {change['max_abs_diff']:.6g})")
        else:
            parts.append("values differ" + ("" if a.has_data and b.has_data else " (by sha256)"))
    change["what"] = "; ".join(parts)
    return change
