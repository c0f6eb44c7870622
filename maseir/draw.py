"""Graph pictures: a graph as Graphviz DOT text (``maseir draw``), rendered by Graphviz's ``dot``.

``to_dot(graph, scope=None, collapse=None, sparsity=False)`` returns DOT text; Graphviz
does the layout (maseir has no layout code of its own) and ``render`` runs the ``dot``
program (Debian package ``graphviz``) to turn it into SVG, PNG or PDF.

What the picture shows:

- **nodes**: one box per node, labelled with its op (bold), its name within its module
  scope where that is not just the op, the type of every output (dtype, shape, and the
  number format where it is not the dtype's own, e.g. ``float32[batch, seq, 384]
  fixed<8,4>``), and one row per param it reads (name within the scope, type);
- **module scopes** as nested clusters, one per scope prefix (``bert`` >
  ``bert.encoder`` > ``bert.encoder.layer`` > ``bert.encoder.layer.0`` > ...): a node
  is drawn in the cluster of its own scope;
- **marks**, each in its own colour (see the legend cluster in every picture):
  *quantized* (a value or param whose format is fixed point, scaled int or dynamic:
  ``maseir.formats.is_quantized``), *LoRA* (nodes and params annotated ``lora.of``,
  with their ``lora.role``), *pruned* (params with an annotation starting ``prune.``,
  with their measured sparsity: the fraction of elements that are exactly zero);
- **graph inputs and outputs** as their own shapes (an inverted house for an input, a
  house for an output), with their types.

``scope="bert.encoder.layer.0"`` draws one part: the nodes whose scope is that scope or
lies inside it (scopes match by whole dot-separated parts, so ``layer.1`` does not match
``layer.10``). Values the part reads from outside it are drawn as dashed inputs, values
it hands to the rest of the graph as dashed outputs.

``collapse=N`` folds the scopes deeper than N parts: every node whose scope has more
than N parts is drawn inside one box for the first N+1 parts of its scope, labelled with
its node count, its most common ops, its parameter count, the types leaving it and its
marks (so ``collapse=3`` draws each ``bert.encoder.layer.K`` of a BERT as one box).
Depth counts from the graph's root, with or without ``scope``; a part that lies inside a
folded scope is drawn as one box.

The text is deterministic (graph order throughout, nothing from the clock or the
machine). Every identifier is a quoted string (``"node:NAME"``, ``"input:NAME"``,
``"output:NAME"``, ``"scope:SCOPE"``, clusters ``"cluster:SCOPE"``) with ``\\`` and
``"`` escaped and control characters and line separators written as ``\\xNN`` (or
``\\uNNNN``); every label is an HTML-like label with ``& < > "`` written as entities,
so names with dots, quotes or angle brackets (``fixed<8,4>``) are safe. One statement
per line.

It reads the graph and never changes it (DESIGN.md: pictures read graphs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from .errors import MaseIRError
from .formats import is_quantized
from .ir import Graph, Node, Tensor, TensorType
from .passes.lora import OF as LORA_OF
from .passes.lora import ROLE as LORA_ROLE

PRUNE_PREFIX = "prune."
"""A param with an annotation key starting with this was pruned (spec/format.md lists the keys)."""
PRUNE_METHOD = "prune.method"

RENDERED_FORMATS = ("svg", "png", "pdf")
"""Picture formats ``dot`` renders, named by the output's extension."""
TEXT_FORMATS = ("dot", "gv")
"""Extensions for which the DOT text itself is written."""

GET_DOT = ("install Graphviz, which provides dot (Debian/Ubuntu: apt-get install graphviz; "
           "macOS: brew install graphviz; others: https://graphviz.org/download/)")
"""How to get the ``dot`` program, in one line."""

COLORS = {
    "quantized": "#cfe2ff",  # blue
    "lora": "#d1e7dd",       # green
    "pruned": "#f8d7da",     # red
    "collapsed": "#fff3cd",  # yellow
    "io": "#e9ecef",         # grey
}
_MUTED = "#6c757d"
_MARK_NAMES = {"quantized": "quantized (fixed point, int, dynamic)", "lora": "LoRA adapter",
               "pruned": "pruned param (sparsity: fraction of zeros)"}
_MAX_OPS_IN_BOX = 4


class DrawError(MaseIRError):
    """A picture that cannot be drawn as asked (a scope that matches nothing, no ``dot``)."""


# --- the public functions -----------------------------------------------------------------
def to_dot(graph: Graph, *, scope: str | None = None, collapse: int | None = None,
           sparsity: bool = False) -> str:
    """The graph as Graphviz DOT text (see the module docstring for what it shows).

    ``scope``: draw only the nodes in this module scope (whole dot-separated parts).
    ``collapse``: fold the scopes deeper than this many parts (0 or more) into one box
    each. ``sparsity``: show the measured sparsity of every drawn param, not only the
    pruned ones (needs the weights; a graph read without them, ``io.load_structure``,
    says "not measured").

    Raises DrawError when ``scope`` matches no node; ArgumentError (a TypeError) for an
    argument of the wrong kind or a negative ``collapse``.
    """
    from .arguments import describe, require_graph
    from .errors import ArgumentError

    require_graph(graph, "to_dot")
    if scope is not None and not isinstance(scope, str):
        raise ArgumentError(f"to_dot: scope must be a str or None (got {describe(scope)})")
    if collapse is not None and (isinstance(collapse, bool) or not isinstance(collapse, int) or collapse < 0):
        raise ArgumentError(f"to_dot: collapse must be an int >= 0 or None (got {describe(collapse)})")
    nodes = nodes_in_scope(graph, scope)
    return _Drawer(graph, nodes, scope, collapse, sparsity).dot()


def nodes_in_scope(graph: Graph, scope: str | None) -> list[Node]:
    """The nodes (in graph order) whose scope is ``scope`` or lies inside it, all of them
    for None. Raises DrawError, naming the closest scopes, when none matches."""
    if scope is None:
        return list(graph.nodes)
    if not scope:
        raise DrawError("scope is empty; give a module scope such as " + _example_scope(graph))
    nodes = [n for n in graph.nodes if in_scope(n.scope, scope)]
    if not nodes:
        import difflib
        scopes = sorted(all_scopes(graph))
        close = difflib.get_close_matches(scope, scopes, n=3, cutoff=0.6)
        top = sorted({s.split(".")[0] for s in scopes})
        hint = f"closest: {', '.join(close)}" if close else f"top-level scopes: {', '.join(top) or '(none)'}"
        raise DrawError(f"scope {scope} matches no node ({hint})")
    return nodes


def in_scope(node_scope: str, scope: str) -> bool:
    """Whether ``node_scope`` is ``scope`` or inside it, by whole dot-separated parts."""
    return node_scope == scope or node_scope.startswith(scope + ".")


def all_scopes(graph: Graph) -> set[str]:
    """Every scope and scope prefix of the graph's nodes (``bert``, ``bert.encoder``, ...)."""
    out = set()
    for node in graph.nodes:
        parts = node.scope.split(".") if node.scope else []
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def sparsity(tensor: Tensor) -> float:
    """The fraction of ``tensor``'s elements that are exactly zero (0.0 for no elements).

    Raises GraphError for a tensor read without its bytes."""
    from .arrays import to_numpy
    import numpy as np

    values = to_numpy(tensor)
    return float(np.count_nonzero(values == 0)) / values.size if values.size else 0.0


def is_pruned(tensor: Tensor) -> bool:
    """Whether a pruning pass annotated ``tensor`` (a key starting with ``prune.``)."""
    return any(key.startswith(PRUNE_PREFIX) for key in tensor.annotations)


def output_format(path: str | os.PathLike) -> str:
    """What a picture file is written as, from its extension: ``dot`` for .dot/.gv,
    else one of RENDERED_FORMATS. ``-`` (standard output) is DOT. Raises DrawError."""
    name = os.fspath(path)
    if name == "-":
        return "dot"
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    if ext in TEXT_FORMATS:
        return "dot"
    if ext in RENDERED_FORMATS:
        return ext
    known = ", ".join("." + e for e in TEXT_FORMATS + RENDERED_FORMATS)
    raise DrawError(f"{name}: a picture is written as {known} (by its extension)")


def find_dot() -> str | None:
    """The path of Graphviz's ``dot`` program on PATH, or None."""
    return shutil.which("dot")


def render(dot_text: str, fmt: str, dot: str | None = None) -> bytes:
    """``dot_text`` laid out and rendered by Graphviz's ``dot`` as ``fmt`` (svg, png, pdf).

    Raises DrawError when ``dot`` is missing (with how to get it) or fails (with its
    message: e.g. a build without the PNG renderer)."""
    if fmt not in RENDERED_FORMATS:
        raise DrawError(f"cannot render {fmt}: dot renders {', '.join(RENDERED_FORMATS)} here")
    dot = dot or find_dot()
    if dot is None:
        raise DrawError(f"Graphviz's dot is not installed: {GET_DOT}")
    try:
        done = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              check=False)
    except OSError as exc:
        raise DrawError(f"cannot run {dot}: {exc.strerror or exc}") from None
    if done.returncode != 0 or not done.stdout:
        message = " ".join(done.stderr.decode("utf-8", "replace").split()) or f"exit status {done.returncode}"
        raise DrawError(f"dot -T{fmt} failed: {message}")
    return done.stdout


# --- escaping -----------------------------------------------------------------------------------
def quote_id(text: str) -> str:
    """``text`` as a DOT quoted identifier: ``\\`` and ``"`` escaped, control characters as
    ``\\xNN`` (distinct names stay distinct identifiers)."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif _is_control(ch):
            out.append(_shown(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _is_control(ch: str) -> bool:
    """A control character or a line or paragraph separator (which Python's splitlines
    would break a line at)."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def _shown(ch: str) -> str:
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def esc_string(text: str) -> str:
    """``text`` inside a quoted attribute that Graphviz reads as an escString (a tooltip),
    shown as written: ``\\`` and ``"`` escaped, control characters as the text ``\\xNN``."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif _is_control(ch):
            out.append("\\" + _shown(ch))
        else:
            out.append(ch)
    return "".join(out)


def html_text(text: str) -> str:
    """``text`` for an HTML-like label: ``& < > "`` as entities, control characters shown
    as ``\\xNN``."""
    out = []
    for ch in str(text):
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;")
        elif _is_control(ch):
            out.append(_shown(ch))
        else:
            out.append(ch)
    return "".join(out)


# --- the drawing ---------------------------------------------------------------------------------
@dataclass
class _Box:
    """A folded scope: the nodes drawn as one box."""

    scope: str
    cluster: str
    nodes: list[Node] = field(default_factory=list)


@dataclass
class _Cluster:
    """A module scope drawn as a cluster."""

    scope: str
    items: list[str] = field(default_factory=list)      # DOT statements of its nodes and boxes
    children: list[str] = field(default_factory=list)   # child cluster scopes, in order of appearance


class _Drawer:
    """One drawing of ``nodes`` (a part of ``graph``, or all of it); ``dot()`` writes it."""

    def __init__(self, graph: Graph, nodes: list[Node], scope: str | None, collapse: int | None,
                 sparsity: bool):
        self.graph, self.nodes, self.scope, self.collapse, self.show_sparsity = (
            graph, nodes, scope, collapse, sparsity)
        self.types = graph.value_types()
        self.marks_used: set[str] = set()
        self._sparsity: dict[str, float | None] = {}

    # where each node goes ----------------------------------------------------------------------
    def _placement(self, node: Node) -> tuple[str, str | None]:
        """(cluster scope, box scope or None) of ``node``."""
        parts = node.scope.split(".") if node.scope else []
        if self.collapse is not None and len(parts) > self.collapse:
            depth = self.collapse + 1
            if self.scope is not None:  # a part inside a folded scope is one box: the part
                depth = max(depth, self.scope.count(".") + 1)
            return ".".join(parts[:depth - 1]), ".".join(parts[:depth])
        return node.scope, None

    def dot(self) -> str:
        graph = self.graph
        root = self._root_scope()
        ident_of: dict[int, str] = {}         # id(node) -> DOT id of what draws it
        item_of: dict[str, str] = {}          # value name -> DOT id of what draws its producer
        boxes: dict[str, _Box] = {}
        placed: list[tuple[str, str, object]] = []  # (cluster, id, node or box), first appearance
        for node in self.nodes:
            cluster, box = self._placement(node)
            if box is None:
                ident = quote_id("node:" + node.name)
                placed.append((cluster, ident, node))
            else:
                ident = quote_id("scope:" + box)
                if box not in boxes:
                    boxes[box] = _Box(box, cluster)
                    placed.append((cluster, ident, boxes[box]))
                boxes[box].nodes.append(node)
            ident_of[id(node)] = ident
            for value in node.outputs:
                item_of[value.name] = ident
        users = graph.users()
        outputs = set(graph.outputs)

        head: list[str] = []   # inputs and outside sources, before the clusters
        tail: list[str] = []   # outputs, after them
        graph_inputs = {v.name for v in graph.inputs}
        source_of: dict[str, str] = {}
        used = {name for n in self.nodes for name in n.inputs}
        for value in graph.inputs:
            if self.scope is None or value.name in used:
                ident = quote_id("input:" + value.name)
                source_of[value.name] = ident
                head.append(self._io_node(ident, "input", value.name, value.type, "invhouse", dashed=False))
        for node in self.nodes:  # values a part reads from outside it
            for name in node.inputs:
                if name and name not in item_of and name not in source_of and name not in graph.params:
                    ident = quote_id("input:" + name)
                    source_of[name] = ident
                    head.append(self._io_node(ident, "from", name, self.types.get(name), "invhouse",
                                              dashed=name not in graph_inputs))

        edges: list[tuple[str, str]] = []
        seen_edges: set[tuple[str, str]] = set()

        def edge(src: str, dst: str) -> None:
            if src != dst and (src, dst) not in seen_edges:
                seen_edges.add((src, dst))
                edges.append((src, dst))

        for node in self.nodes:
            for name in node.inputs:
                if name and name not in graph.params:
                    edge(item_of.get(name) or source_of[name], ident_of[id(node)])
        for name in dict.fromkeys(graph.outputs):
            src = item_of.get(name) or source_of.get(name)
            if src is None:  # produced outside the part
                continue
            ident = quote_id("output:" + name)
            tail.append(self._io_node(ident, "output", name, self.types.get(name), "house", dashed=False))
            edge(src, ident)
        if self.scope is not None:  # values the part hands to the rest of the graph
            drawn = set(ident_of)
            for node in self.nodes:
                for value in node.outputs:
                    outside = [u for u in users.get(value.name, ()) if id(u) not in drawn]
                    if outside and value.name not in outputs:
                        ident = quote_id("output:" + value.name)
                        readers = f"to {_plural(len(outside), 'node')} outside"
                        tail.append(self._io_node(ident, readers, value.name, value.type, "house", dashed=True))
                        edge(item_of[value.name], ident)

        clusters: dict[str, _Cluster] = {root: _Cluster(root)}
        for cluster, ident, what in placed:
            self._ensure_cluster(clusters, cluster)
            statement = (self._node_statement(ident, what) if isinstance(what, Node)
                         else self._box_statement(ident, what, outputs, users, root))
            clusters[cluster].items.append(statement)

        lines = ["digraph maseir {"]
        lines += ["  " + s for s in self._graph_attributes()]
        lines += ["  " + s for s in head]
        lines += self._cluster_lines(clusters, root, 1, root)
        lines += ["  " + s for s in tail]
        lines += [f"  {a} -> {b};" for a, b in edges]
        lines += self._legend(bool(boxes))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _root_scope(self) -> str:
        """The scope whose cluster is the picture itself: "" for the whole graph, the scope
        just above a part (clusters outside the part would hold nothing but it)."""
        return "" if self.scope is None else _parent(self.scope)

    @staticmethod
    def _ensure_cluster(clusters: dict[str, _Cluster], scope: str) -> None:
        """Make the cluster of ``scope`` and those of its parents up to the root's."""
        if scope in clusters:
            return
        parent = _parent(scope)
        _Drawer._ensure_cluster(clusters, parent)
        clusters[scope] = _Cluster(scope)
        clusters[parent].children.append(scope)

    def _label_of(self, scope: str, parent: str, root: str) -> str:
        """A cluster's or a box's title: the full scope at the top of a part, else its
        scope within its parent."""
        if self.scope is not None and parent == root:
            return scope
        return _cluster_label(scope, parent)

    def _cluster_lines(self, clusters: dict[str, _Cluster], scope: str, depth: int, root: str) -> list[str]:
        pad = "  " * depth
        cluster = clusters[scope]
        lines = [pad + statement for statement in cluster.items]
        for child in cluster.children:
            lines.append(f"{pad}subgraph {quote_id('cluster:' + child)} {{")
            lines.append(f'{pad}  label=<{html_text(self._label_of(child, scope, root))}>; '
                         f'tooltip="{esc_string(child)}";')
            lines += self._cluster_lines(clusters, child, depth + 1, root)
            lines.append(pad + "}")
        return lines

    # statements ---------------------------------------------------------------------------
    def _graph_attributes(self) -> list[str]:
        graph = self.graph
        title = graph.metadata.get("source", "")
        facts = [f"{len(graph.nodes):,} nodes", f"{_count(_param_elements(graph.params.values()))} parameters"]
        if self.scope is not None:
            facts.append(f"scope {self.scope}: {len(self.nodes):,} nodes")
        if self.collapse is not None:
            facts.append(f"scopes deeper than {self.collapse} folded")
        rows = [f"<B>{html_text(title)}</B>"] if title else []
        rows.append(html_text("; ".join(facts)))
        if graph.history:
            steps = [e.step if len(e.step) <= 60 else e.step[:57] + "..." for e in graph.history]
            head = f"history ({len(steps)} steps): ...;" if len(steps) > 3 else "history:"
            rows.append(html_text(f"{head} {'; '.join(steps[-3:])}"))
        title_label = "".join(row + '<BR ALIGN="LEFT"/>' for row in rows)
        return [
            f"graph [label=<{title_label}>, labelloc=t, labeljust=l, fontname=\"Helvetica\", "
            "fontsize=11, newrank=true, rankdir=TB, nodesep=0.25, ranksep=0.3, style=rounded, "
            "color=\"#adb5bd\"];",
            "node [shape=box, style=\"rounded,filled\", fillcolor=white, color=\"#495057\", "
            "fontname=\"Helvetica\", fontsize=10, margin=\"0.06,0.03\"];",
            "edge [color=\"#495057\", arrowsize=0.6];",
        ]

    def _io_node(self, ident: str, what: str, name: str, type_: TensorType | None, shape: str,
                 dashed: bool) -> str:
        rows = [f"<B>{html_text(what)}</B> {html_text(name)}"]
        cell = ""
        if type_ is not None:
            if is_quantized(type_.format):
                self.marks_used.add("quantized")
                cell = f' BGCOLOR="{COLORS["quantized"]}"'
            rows.append(html_text(str(type_)))
        label = "".join(f"<TR><TD{cell if i else ''}>{r}</TD></TR>" for i, r in enumerate(rows))
        style = "dashed,filled" if dashed else "filled"
        return (f"{ident} [shape={shape}, style=\"{style}\", fillcolor=\"{COLORS['io']}\", "
                f"label=<<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"0\">{label}</TABLE>>];")

    def _node_statement(self, ident: str, node: Node) -> str:
        local = _local_name(node.name, node.scope)
        head = f"<B>{html_text(node.op)}</B>"
        if local != node.op:
            head += f' <FONT COLOR="{_MUTED}">{html_text(local)}</FONT>'
        head_color = ""
        if LORA_OF in node.annotations:
            self.marks_used.add("lora")
            head_color = COLORS["lora"]
            role = node.annotations.get(LORA_ROLE, "")
            head += f' <FONT COLOR="{_MUTED}">LoRA{" " + html_text(role) if role else ""}</FONT>'
        rows = [_row(head, head_color)]
        for value in node.outputs:
            text = html_text(str(value.type))
            if len(node.outputs) > 1 or value.name != node.name:
                text = f"{html_text(_local_name(value.name, node.scope))}: {text}"
            color = ""
            if is_quantized(value.type.format):
                self.marks_used.add("quantized")
                color = COLORS["quantized"]
            rows.append(_row(text, color))
        for name in node.inputs:
            if name and name in self.graph.params:
                rows.append(self._param_row(name, node.scope))
        return f"{ident} [label=<{_table(rows)}>];"

    def _param_row(self, name: str, scope: str) -> str:
        tensor = self.graph.params[name]
        text = f"{html_text(_local_name(name, scope))} {html_text(str(tensor.type))}"
        colors = []
        if is_quantized(tensor.type.format):
            self.marks_used.add("quantized")
            colors.append(COLORS["quantized"])
        if LORA_OF in tensor.annotations:
            self.marks_used.add("lora")
            colors.append(COLORS["lora"])
            role = tensor.annotations.get(LORA_ROLE, "")
            text += f" · LoRA{' ' + html_text(role) if role else ''}"
        pruned = is_pruned(tensor)
        if pruned:
            self.marks_used.add("pruned")
            colors.append(COLORS["pruned"])
            method = tensor.annotations.get(PRUNE_METHOD)
            text += f" · pruned{' ' + html_text(method) if method else ''}"
        if pruned or self.show_sparsity:
            text += f", {self._sparsity_text(tensor)}"
        # one colour per cell: the strongest mark (pruned > LoRA > quantized); the text names the rest
        return _row(f'<FONT POINT-SIZE="9">{text}</FONT>', colors[-1] if colors else "", left=True)

    def _sparsity_of(self, tensor: Tensor) -> float | None:
        if tensor.name not in self._sparsity:
            self._sparsity[tensor.name] = sparsity(tensor) if tensor.data is not None else None
        return self._sparsity[tensor.name]

    def _sparsity_text(self, tensor: Tensor) -> str:
        value = self._sparsity_of(tensor)
        return "sparsity not measured (weights not loaded)" if value is None else f"sparsity {value:.1%}"

    def _box_statement(self, ident: str, box: _Box, outputs: set[str], users: dict[str, list[Node]],
                       root: str) -> str:
        inside = {id(n) for n in box.nodes}
        ops = Counter(n.op for n in box.nodes)
        common = sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))
        op_text = ", ".join(f"{k} {op}" for op, k in common[:_MAX_OPS_IN_BOX])
        if len(common) > _MAX_OPS_IN_BOX:
            op_text += ", ..."
        names = list(dict.fromkeys(p for n in box.nodes for p in n.inputs if p in self.graph.params))
        params = [self.graph.params[p] for p in names]
        leaving = []
        for node in box.nodes:
            for value in node.outputs:
                readers = users.get(value.name, ())
                if value.name in outputs or any(id(u) not in inside for u in readers):
                    leaving.append(str(value.type))
        leaving = list(dict.fromkeys(leaving))
        rows = [_row(f"<B>{html_text(self._label_of(box.scope, box.cluster, root))}</B>"),
                _row(html_text(f"{_plural(len(box.nodes), 'node')}: {op_text}"))]
        if params:
            rows.append(_row(html_text(f"{_plural(len(params), 'param')}, "
                                       f"{_count(_param_elements(params))} parameters")))
        for text in leaving[:3]:
            rows.append(_row(html_text("out " + text)))
        if len(leaving) > 3:
            rows.append(_row(html_text(f"and {len(leaving) - 3} more outputs")))
        quantized = [n for n in box.nodes if any(is_quantized(v.type.format) for v in n.outputs)]
        quantized_params = [t for t in params if is_quantized(t.type.format)]
        if quantized or quantized_params:
            self.marks_used.add("quantized")
            formats = sorted({str(v.type.format) for n in quantized for v in n.outputs if is_quantized(v.type.format)}
                             | {str(t.type.format) for t in quantized_params})
            shown = ", ".join(formats[:3]) + (", ..." if len(formats) > 3 else "")
            counts = [_plural(n, what) for n, what in ((len(quantized), "value"), (len(quantized_params), "param"))
                      if n]
            rows.append(_row(html_text(f"quantized: {', '.join(counts)} ({shown})"), COLORS["quantized"]))
        adapters = sorted({n.annotations[LORA_OF] for n in box.nodes if LORA_OF in n.annotations})
        if adapters:
            self.marks_used.add("lora")
            rows.append(_row(html_text(f"LoRA: {_plural(len(adapters), 'adapter')}"),
                             COLORS["lora"]))
        pruned = [t for t in params if is_pruned(t)]
        if pruned:
            self.marks_used.add("pruned")
            rows.append(_row(html_text(f"pruned: {_plural(len(pruned), 'param')}, {self._overall_sparsity(pruned)}"),
                             COLORS["pruned"]))
        if self.show_sparsity and params:
            rows.append(_row(html_text(f"all params: {self._overall_sparsity(params)}")))
        tooltip = esc_string(box.scope)
        return (f"{ident} [shape=box3d, style=filled, fillcolor=\"{COLORS['collapsed']}\", margin=\"0.1,0.08\", "
                f"tooltip=\"{tooltip}\", label=<{_table(rows)}>];")

    def _overall_sparsity(self, params: list[Tensor]) -> str:
        """Zeros over elements across ``params`` (each measured once)."""
        zeros = total = 0
        for tensor in params:
            value = self._sparsity_of(tensor)
            if value is None:
                return "sparsity not measured (weights not loaded)"
            n = tensor.type.numel()
            zeros += round(value * n)
            total += n
        return f"sparsity {zeros / total:.1%}" if total else "sparsity 0.0%"

    def _legend(self, has_boxes: bool) -> list[str]:
        rows = [_row("<B>legend</B>"),
                _row("op (output types, params)", "#ffffff"),
                _row("graph input / output", COLORS["io"])]
        if has_boxes:
            rows.append(_row("folded scope", COLORS["collapsed"]))
        for mark in ("quantized", "lora", "pruned"):
            if mark in self.marks_used:
                rows.append(_row(html_text(_MARK_NAMES[mark]), COLORS[mark]))
        table = (f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" COLOR="#adb5bd">'
                 f'{"".join(rows)}</TABLE>')
        return ['  subgraph "cluster:legend" {',
                '    label=""; style=invis;',
                f'    "legend" [shape=plaintext, style="", label=<{table}>];',
                "  }"]


# --- small helpers ----------------------------------------------------------------------------------
def _row(content: str, color: str = "", left: bool = False) -> str:
    attrs = (f' BGCOLOR="{color}"' if color else "") + (' ALIGN="LEFT"' if left else "")
    return f"<TR><TD{attrs}>{content}</TD></TR>"


def _table(rows: list[str]) -> str:
    return f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{"".join(rows)}</TABLE>'


def _local_name(name: str, scope: str) -> str:
    """``name`` within ``scope``: the part after ``scope.`` where it starts so, else the name."""
    if scope and name.startswith(scope + ".") and len(name) > len(scope) + 1:
        return name[len(scope) + 1:]
    return name


def _parent(scope: str) -> str:
    return scope.rsplit(".", 1)[0] if "." in scope else ""


def _cluster_label(scope: str, parent: str) -> str:
    """A cluster's title: its scope within ``parent``, with the part before a number
    kept (``layer.0``, not ``0``)."""
    local = _local_name(scope, parent) if parent else scope
    parts = scope.split(".")
    if local == parts[-1] and parts[-1].isdigit() and len(parts) > 1:
        return ".".join(parts[-2:])
    return local


def _param_elements(params) -> int:
    total = 0
    for tensor in params:
        if tensor.type.is_static:
            total += tensor.type.numel()
    return total


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _count(n: int) -> str:
    """A parameter count as people write it: 22.7M, 1.5K, 312."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}K"
    return f"{n:,}"


def _example_scope(graph: Graph) -> str:
    scopes = sorted(all_scopes(graph), key=lambda s: (s.count("."), s))
    return scopes[0] if scopes else "bert.encoder.layer.0"
