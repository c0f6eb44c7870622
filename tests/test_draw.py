"""maseir draw / maseir.to_dot: the DOT text's structure (every node once, clusters nesting as the
scopes do, what --collapse and --scope draw), escaping, marks, and rendering by Graphviz's dot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maseir
from maseir import draw, dsl, passes
from maseir.cli.main import main
from maseir.draw import COLORS, DrawError, to_dot
from maseir.errors import ArgumentError
from maseir.ir import Graph, Node, Tensor, TensorType, Value
from maseir.text import show

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed (Debian: apt-get install "
                                                   "graphviz; `make test` installs it where it can)")


# --- a reader of the DOT text maseir writes (one statement per line) -----------------------------
ID = r'"(?:[^"\\]|\\.)*"'


def unquote(quoted: str) -> str:
    """The name a quoted identifier of draw.quote_id stands for."""
    return re.sub(r'\\(["\\]|x[0-9a-f]{2}|u[0-9a-f]{4})',
                  lambda m: m[1] if len(m[1]) == 1 else chr(int(m[1][1:], 16)), quoted[1:-1])


@dataclass
class Dot:
    items: dict[str, tuple[str, ...]] = field(default_factory=dict)   # id -> enclosing clusters, outermost first
    attrs: dict[str, str] = field(default_factory=dict)               # id -> its attribute text
    clusters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # cluster -> its enclosing clusters
    edges: list[tuple[str, str]] = field(default_factory=list)

    def of(self, kind: str) -> dict[str, tuple[str, ...]]:
        """Items of one kind ("node", "scope", "input", "output") by name, with their clusters
        as scopes."""
        return {i.split(":", 1)[1]: tuple(c.split(":", 1)[1] for c in cs)
                for i, cs in self.items.items() if i.startswith(kind + ":")}


def html_labels(attrs: str) -> list[str]:
    """The HTML-like labels in an attribute list (``label=<...>``, matched by nesting)."""
    out, start = [], 0
    while (i := attrs.find("label=<", start)) >= 0:
        depth, j = 0, i + len("label=")
        while True:
            depth += {"<": 1, ">": -1}.get(attrs[j], 0)
            j += 1
            if depth == 0:
                break
        out.append(attrs[i + len("label=<"):j - 1])
        start = j
    return out


def parse(text: str) -> Dot:
    """The structure of maseir's DOT text; fails on any line it does not understand, on an item
    declared twice and on an HTML label that is not well-formed XML."""
    lines = text.splitlines()
    assert lines[0] == "digraph maseir {" and lines[-1] == "}"
    dot, stack = Dot(), []
    for line in lines[1:-1]:
        s = line.strip()
        if m := re.fullmatch(rf"subgraph ({ID}) {{", s):
            name = unquote(m[1])
            assert name not in dot.clusters
            dot.clusters[name] = tuple(stack)
            stack.append(name)
        elif s == "}":
            stack.pop()
        elif m := re.fullmatch(rf"({ID}) -> ({ID});", s):
            dot.edges.append((unquote(m[1]), unquote(m[2])))
        elif m := re.fullmatch(rf"({ID}) \[(.*)\];", s):
            name = unquote(m[1])
            assert name not in dot.items, f"{name} declared twice"
            dot.items[name] = tuple(stack)
            dot.attrs[name] = m[2]
            for label in html_labels(m[2]):
                ET.fromstring(f"<x>{label}</x>")
        elif s.startswith(("graph [", "node [", "edge [", "label=")):
            for label in html_labels(s):
                ET.fromstring(f"<x>{label}</x>")
        else:
            raise AssertionError(f"unexpected line: {line!r}")
    assert stack == []
    declared = set(dot.items)
    assert all(a in declared and b in declared for a, b in dot.edges), "an edge to an undeclared item"
    assert len(set(dot.edges)) == len(dot.edges) and all(a != b for a, b in dot.edges)
    return dot


def prefixes(scope: str) -> tuple[str, ...]:
    parts = scope.split(".") if scope else []
    return tuple(".".join(parts[:i]) for i in range(1, len(parts) + 1))


def value_edges(graph: Graph, collapse: int | None = None) -> set[tuple[str, str]]:
    """The edges a whole-graph drawing must have: producer -> reader for every value read
    (params aside) and producer -> output, each end the item that draws it."""
    item = {}
    for node in graph.nodes:
        scopes = prefixes(node.scope)
        ident = ("scope:" + scopes[collapse] if collapse is not None and len(scopes) > collapse
                 else "node:" + node.name)
        item.update({v.name: ident for v in node.outputs})
    item.update({v.name: "input:" + v.name for v in graph.inputs})
    edges = set()
    for node in graph.nodes:
        for name in node.inputs:
            if name and name not in graph.params:
                edges.add((item[name], item[node.outputs[0].name]))
    for name in graph.outputs:
        edges.add((item[name], "output:" + name))
    return {(a, b) for a, b in edges if a != b}


# --- graphs ----------------------------------------------------------------------------------------
T = TensorType("float32", (2, 4))


def chain(named: list[tuple[str, str]], params: bool = False) -> Graph:
    """x -> relu -> relu ... with the given (name, scope) per node; with ``params``, every
    node also reads a param of its own (name.weight)."""
    nodes, prev, tensors = [], "x", {}
    for name, scope in named:
        inputs = [prev]
        if params:
            tensors[name + ".weight"] = Tensor(name + ".weight", T, np.ones((2, 4), np.float32).tobytes())
            inputs.append(name + ".weight")
        nodes.append(Node(name, "relu", inputs, [Value(name, T)], scope=scope))
        prev = name
    return Graph([Value("x", T)], [prev], nodes, tensors)


@pytest.fixture(scope="module")
def marked():
    """An MLP with a LoRA adapter on layer 0, fixed<8,4> everywhere, then layer 2's weight
    pruned by hand: half of its elements set to zero, annotated prune.method=l1."""
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    graph = maseir.export(mlp, (torch.randn(2, 4),))
    graph, _ = passes.run_pipeline(graph, dsl.parse('lora rank=2 targets="0"\nquantize bits=8 frac=4'))
    weight = graph.params["2.weight"]
    signs = np.where(np.arange(24) % 4 < 2, 1, -1)
    values = (np.arange(1, 25) * signs / 8).astype(np.float32).reshape(3, 8)
    values.reshape(-1)[::2] = 0  # 12 of 24 exactly zero; 6 of the others negative
    pruned = Tensor("2.weight", TensorType("float32", (3, 8)), values.tobytes(), weight.trainable,
                    annotations={"prune.method": "l1", "prune.sparsity": "0.5"})
    graph.params["2.weight"] = pruned
    return graph


# --- structure -------------------------------------------------------------------------------------
def test_every_node_appears_once_in_the_cluster_of_its_scope(tiny_bert):
    _, graph = tiny_bert
    dot = parse(to_dot(graph))
    nodes = dot.of("node")
    assert sorted(nodes) == sorted(n.name for n in graph.nodes)
    for node in graph.nodes:
        assert nodes[node.name] == prefixes(node.scope), node.name
    # clusters nest as the scopes do: every scope prefix once, inside its parent
    scopes = {p for n in graph.nodes for p in prefixes(n.scope)}
    assert set(dot.clusters) == {"cluster:" + s for s in scopes} | {"cluster:legend"}
    for cluster, outer in dot.clusters.items():
        if cluster != "cluster:legend":
            assert outer == tuple("cluster:" + p for p in prefixes(cluster.split(":", 1)[1])[:-1])
    # graph inputs and outputs marked, outside every cluster
    assert dot.of("input") == {v.name: () for v in graph.inputs}
    assert dot.of("output") == {name: () for name in graph.outputs}
    assert set(dot.edges) == value_edges(graph)


def test_labels_show_op_output_type_and_params(tiny_bert):
    _, graph = tiny_bert
    dot = parse(to_dot(graph))
    attrs = dot.attrs["node:bert.encoder.layer.0.attention.self.query.linear"]
    assert "<B>linear</B>" in attrs and "float32[batch, seq, 128]" in attrs
    assert "weight float32[128, 128]" in attrs and "bias float32[128]" in attrs
    head = dot.attrs["node:classifier.linear"]
    assert "logits: float32[batch, 2]" in head  # an output named otherwise than its node is named


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4])
def test_collapse_folds_the_scopes_deeper_than_n_into_one_box_each(tiny_bert, depth):
    _, graph = tiny_bert
    dot = parse(to_dot(graph, collapse=depth))
    deep = [n for n in graph.nodes if len(prefixes(n.scope)) > depth]
    assert sorted(dot.of("node")) == sorted(n.name for n in graph.nodes if n not in deep)
    boxes = {prefixes(n.scope)[depth] for n in deep}
    assert set(dot.of("scope")) == boxes
    for box, outer in dot.of("scope").items():
        assert outer == prefixes(box)[:-1]
    assert all(len(prefixes(c.split(":", 1)[1])) <= depth for c in dot.clusters if c != "cluster:legend")
    assert set(dot.edges) == value_edges(graph, depth)
    if depth == 3:  # a BERT's layers, one box each, in order
        assert boxes == {"bert.encoder.layer.0", "bert.encoder.layer.1"}
        assert ("scope:bert.encoder.layer.0", "scope:bert.encoder.layer.1") in dot.edges
        label = dot.attrs["scope:bert.encoder.layer.0"]
        count = sum(n.scope.startswith("bert.encoder.layer.0.") for n in graph.nodes)
        assert f"{count} nodes: " in label and "6 linear" in label and "out float32[batch, seq, 128]" in label


def test_scope_draws_one_part_with_its_boundary(tiny_bert):
    _, graph = tiny_bert
    part = "bert.encoder.layer.1"
    dot = parse(to_dot(graph, scope=part))
    inside = [n for n in graph.nodes if n.scope == part or n.scope.startswith(part + ".")]
    nodes = dot.of("node")
    assert sorted(nodes) == sorted(n.name for n in inside)
    for node in inside:  # clusters start at the part
        assert nodes[node.name] == prefixes(node.scope)[3:]
    produced = {v.name for n in inside for v in n.outputs}
    read = {i for n in inside for i in n.inputs if i and i not in graph.params}
    assert set(dot.of("input")) == read - produced  # values from outside the part
    outside_readers = {i for n in graph.nodes if n not in inside for i in n.inputs}
    assert set(dot.of("output")) == (produced & outside_readers) | (produced & set(graph.outputs))
    assert "from</B>" in dot.attrs["input:bert.encoder.layer.0.output.LayerNorm.layer_norm"]


def test_scope_with_collapse(tiny_bert):
    _, graph = tiny_bert
    part = "bert.encoder.layer.1"
    dot = parse(to_dot(graph, scope=part, collapse=4))
    assert set(dot.of("scope")) == {f"{part}.attention", f"{part}.intermediate", f"{part}.output"}
    assert dot.of("node") == {}
    dot = parse(to_dot(graph, scope=part + ".attention", collapse=2))  # the part lies inside a folded scope
    assert dot.of("scope") == {part + ".attention": ()} and dot.of("node") == {}


def test_scope_matches_whole_parts():
    graph = chain([("a", "m.layer.1"), ("b", "m.layer.10"), ("c", "m.layer.1.x")])
    dot = parse(to_dot(graph, scope="m.layer.1"))
    assert sorted(dot.of("node")) == ["a", "c"]
    assert set(dot.of("output")) == {"a", "c"}  # a is read by b, outside the part; c is the graph's output


def test_a_scope_that_matches_nothing_is_refused(tiny_bert):
    _, graph = tiny_bert
    with pytest.raises(DrawError, match=r"scope bert\.encoder\.layer\.7 matches no node \(closest: "
                                        r"bert\.encoder\.layer\.[01]"):
        to_dot(graph, scope="bert.encoder.layer.7")
    with pytest.raises(DrawError, match="matches no node"):
        to_dot(graph, scope="bert.encoder.lay")  # not a whole part
    with pytest.raises(DrawError, match="scope is empty"):
        to_dot(graph, scope="")
    with pytest.raises(ArgumentError, match="collapse must be an int >= 0"):
        to_dot(graph, collapse=-1)
    with pytest.raises(ArgumentError, match="graph must be a maseir.Graph"):
        maseir.to_dot("m.mir")


def test_deterministic_and_the_graph_is_left_alone(tiny_bert):
    _, graph = tiny_bert
    before = show(graph)
    text = maseir.to_dot(graph, collapse=3)
    assert to_dot(graph.copy(), collapse=3) == text == to_dot(graph, collapse=3)
    assert show(graph) == before


# --- escaping ----------------------------------------------------------------------------------------
AWKWARD = [('say "hi"', 'q"s'), ("back\\slash\\", "b\\s"), ("a<b>&c", "tag<x>"), ("new\nline", ""),
           ("fixed<8,4>", "fmt.&amp;")]


def test_awkward_names_are_escaped():
    graph = chain(AWKWARD, params=True)
    node = graph.nodes[-1]
    node.outputs = [Value(node.name, TensorType("float32", (2, 4), maseir.formats.fixed(8, 4)))]
    dot = parse(to_dot(graph))
    assert sorted(dot.of("node")) == sorted(name for name, _ in AWKWARD)  # the ids read back to the names
    assert dot.of("node")["a<b>&c"] == ("tag<x>",)
    assert dot.of("node")["fixed<8,4>"] == ("fmt", "fmt.&amp;")
    assert "fixed&lt;8,4&gt;" in dot.attrs["node:fixed<8,4>"]


@st.composite
def named_chains(draw_):
    part = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="."), min_size=1, max_size=6)
    scopes = st.lists(part, max_size=3).map(".".join)
    names = draw_(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8),
                           min_size=1, max_size=5, unique=True).filter(lambda ns: "x" not in ns))
    return [(name, draw_(scopes)) for name in names]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(named_chains())
def test_any_names_and_scopes_give_dot_of_the_same_structure(named):
    graph = chain(named, params=True)
    dot = parse(to_dot(graph))
    nodes = dot.of("node")
    assert sorted(nodes) == sorted(name for name, _ in named)
    for name, scope in named:
        assert nodes[name] == prefixes(scope)
    assert to_dot(graph) == to_dot(graph.copy())


# --- marks ---------------------------------------------------------------------------------------------
def test_quantized_lora_and_pruned_are_marked(marked):
    dot = parse(to_dot(marked))
    lora_a = dot.attrs["node:0.lora_A.linear"]
    assert f'BGCOLOR="{COLORS["lora"]}"><B>linear</B>' in lora_a and "LoRA A" in lora_a
    assert "lora_A.weight float32[2, 4] fixed&lt;8,4&gt; · LoRA A" in lora_a
    quantize = dot.attrs["node:input.quantize"]
    assert f'<TD BGCOLOR="{COLORS["quantized"]}">float32[batch, 4] fixed&lt;8,4&gt;</TD>' in quantize
    pruned = dot.attrs["node:2.linear"]
    assert f'BGCOLOR="{COLORS["pruned"]}"' in pruned and "weight float32[3, 8] · pruned l1, sparsity 50.0%" in pruned
    assert "bias float32[3] fixed&lt;8,4&gt;</FONT>" in pruned  # the bias: quantized, not pruned, no sparsity
    plain = dot.attrs["node:1.relu"]
    assert not any(color in plain for color in COLORS.values())
    legend = dot.attrs["legend"]
    assert all(COLORS[m] in legend for m in ("quantized", "lora", "pruned"))
    unmarked = parse(to_dot(chain([("a", "s")]))).attrs["legend"]
    assert not any(COLORS[m] in unmarked for m in ("quantized", "lora", "pruned"))


def test_folded_boxes_sum_up_their_marks(marked):
    dot = parse(to_dot(marked, collapse=0))
    assert set(dot.of("scope")) == {"0", "1", "2"}
    layer0, layer2 = dot.attrs["scope:0"], dot.attrs["scope:2"]
    assert "LoRA: 1 adapter" in layer0 and "quantized: 1 value, 4 params (fixed&lt;8,4&gt;)" in layer0
    assert "pruned: 1 param, sparsity 50.0%" in layer2


def test_sparsity_of_every_param_and_without_weights(marked, tmp_path):
    dot = parse(to_dot(marked, sparsity=True))
    assert "bias float32[8] fixed&lt;8,4&gt;, sparsity " in dot.attrs["node:0.linear"]
    assert draw.sparsity(marked.params["2.weight"]) == 0.5
    maseir.save(marked, tmp_path / "m.mir")
    structure, _ = maseir.io.load_structure(tmp_path / "m.mir")
    assert "sparsity not measured (weights not loaded)" in to_dot(structure)


# --- rendering -------------------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("options", [{}, {"collapse": 3}, {"scope": "bert.encoder.layer.0"}])
def test_dot_parses_it_with_the_same_structure(tiny_bert, options):
    _, graph = tiny_bert
    text = to_dot(graph, **options)
    mine = parse(text)
    svg = subprocess.run([DOT, "-Tsvg"], input=text.encode(), capture_output=True, check=True)
    assert svg.stderr == b"" and b"</svg>" in svg.stdout
    laid = json.loads(subprocess.run([DOT, "-Tjson"], input=text.encode(), capture_output=True,
                                     check=True).stdout)
    objects = laid["objects"]
    clusters = {o["name"]: o for o in objects if "nodes" in o}
    assert set(clusters) == set(mine.clusters)
    names = [o["name"] for o in objects if "nodes" not in o]
    assert sorted(names) == sorted(mine.items)
    for cluster, outer in mine.clusters.items():  # dot sees the same nesting
        inner = {objects[i]["name"] for i in clusters[cluster]["nodes"]}
        assert inner == {i for i, cs in mine.items.items() if cluster in cs}
    assert len(laid.get("edges", [])) == len(mine.edges)


@needs_dot
def test_dot_renders_awkward_names(marked):
    graph = chain(AWKWARD, params=True)
    svg = draw.render(to_dot(graph), "svg").decode()
    assert "a&lt;b&gt;&amp;c" in svg and "say &quot;hi&quot;" in svg or 'say "hi"' in svg
    assert draw.render(to_dot(marked), "png").startswith(b"\x89PNG")
    assert draw.render(to_dot(marked), "pdf").startswith(b"%PDF")


# --- the command -------------------------------------------------------------------------------------------
@pytest.fixture()
def mir(tmp_path, tiny_bert):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "m.mir")
    return tmp_path


def test_draw_writes_the_dot_text(mir, capfd):
    before = (mir / "m.mir").read_bytes()
    assert main(["draw", str(mir / "m.mir"), "-o", str(mir / "m.dot"), "--collapse", "3"]) == 0
    assert (mir / "m.dot").read_text() == to_dot(maseir.load(mir / "m.mir"), collapse=3)
    assert capfd.readouterr().out.startswith(f"wrote {mir / 'm.dot'} (")
    assert (mir / "m.mir").read_bytes() == before
    assert main(["draw", str(mir / "m.mir"), "-o", "-", "--scope", "bert.encoder.layer.0"]) == 0
    out = capfd.readouterr()
    assert out.out == to_dot(maseir.load(mir / "m.mir"), scope="bert.encoder.layer.0")
    assert out.err.startswith("wrote - (")  # the report goes to stderr when the DOT is on stdout


@needs_dot
@pytest.mark.parametrize("ext, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_draw_renders_by_extension(mir, ext, magic):
    assert main(["draw", str(mir / "m.mir"), "-o", str(mir / f"m.{ext}"), "--scope", "bert.encoder.layer.0"]) == 0
    assert (mir / f"m.{ext}").read_bytes().startswith(magic)


def test_without_dot_draw_writes_the_dot_and_says_how_to_get_dot(mir, capsys, monkeypatch):
    monkeypatch.setattr(draw, "find_dot", lambda: None)
    assert main(["draw", str(mir / "m.mir"), "-o", str(mir / "m.svg")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "not rendered: Graphviz's dot is not installed" in err[0]
    assert "apt-get install graphviz" in err[0] and f"dot -Tsvg {mir / 'm.dot'} -o {mir / 'm.svg'}" in err[0]
    assert not (mir / "m.svg").exists()
    assert (mir / "m.dot").read_text() == to_dot(maseir.load(mir / "m.mir"))


def test_draw_bad_input_is_one_line_exit_2(mir, capsys):
    m = str(mir / "m.mir")
    (mir / "pics.svg").mkdir()
    cases = [
        (["--scope", "bert.encoder.layer.9", "-o", str(mir / "x.svg")],
         f"maseir: error: {m}: --scope bert.encoder.layer.9 matches no node (closest: bert.encoder.layer."),
        (["-o", str(mir / "x.jpg")], f"maseir: error: {mir / 'x.jpg'}: a picture is written as .dot, .gv, .svg"),
        (["-o", str(mir / "pics.svg")], f"maseir: error: {mir / 'pics.svg'}: is a directory"),
        (["-o", m + ".dot", "--collapse", "x"], "maseir: error: draw: argument --collapse"),
    ]
    for args, first in cases:
        try:
            code = main(["draw", m, *args])
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith(first) and err.count("\n") == 1, err
    assert main(["draw", str(mir / "missing.mir"), "-o", str(mir / "pics.svg")]) == 2  # the output first
    assert "is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in mir.iterdir()) == ["m.mir", "pics.svg"]


def test_draw_measures_pruned_params_from_the_file(marked, tmp_path, capsys):
    maseir.save(marked, tmp_path / "p.mir")
    assert main(["draw", str(tmp_path / "p.mir"), "-o", str(tmp_path / "p.dot")]) == 0
    assert "pruned l1, sparsity 50.0%" in (tmp_path / "p.dot").read_text()


def test_a_failing_dot_is_reported_with_its_message(tmp_path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Format: \"png\" not recognized. Use one of: svg' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(DrawError, match=r'^dot -Tpng failed: Format: "png" not recognized\. Use one of: svg$'):
        draw.render(to_dot(chain([("a", "s")])), "png", dot=str(fake))
    with pytest.raises(DrawError, match="cannot render jpg"):
        draw.render("digraph {}", "jpg")


def test_draw_writes_through_a_symlink_and_into_a_fifo(mir, capsys):
    import os
    import threading

    m = str(mir / "m.mir")
    expected = to_dot(maseir.load(mir / "m.mir"), collapse=2)
    (mir / "real.dot").write_text("old")
    (mir / "link.dot").symlink_to("real.dot")
    assert main(["draw", m, "-o", str(mir / "link.dot"), "--collapse", "2"]) == 0
    assert (mir / "link.dot").is_symlink() and (mir / "real.dot").read_text() == expected
    os.mkfifo(mir / "pipe.dot")
    got = []
    reader = threading.Thread(target=lambda: got.append((mir / "pipe.dot").read_text()))
    reader.start()
    assert main(["draw", m, "-o", str(mir / "pipe.dot"), "--collapse", "2"]) == 0
    reader.join(timeout=60)
    assert got == [expected]
