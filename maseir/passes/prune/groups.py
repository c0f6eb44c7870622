"""The structures structured pruning works on, found in the dataflow of a graph.

- A *neuron pair* (a feed-forward block): a linear L1 whose output reaches a
  second linear L2's input only through elementwise unary ops (an
  activation): output neuron j of L1 is input feature j of L2, so pruning the
  neuron means row j of L1 (and its bias) and column j of L2.
- An *attention block*: a ``scaled_dot_product_attention`` whose query, key
  and value come from linears through reshape/transpose (splitting their
  features into heads of ``head_dim``) and whose output reaches an output
  linear through transpose/reshape (merging the heads back): head h is
  features [h * head_dim, (h + 1) * head_dim) of Q, K and V's outputs and of
  the output linear's input. Blocks with grouped or other layouts are not
  recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir import Graph, Node
from ..lora import OF

UNARY = ("gelu", "relu", "silu", "tanh", "sigmoid", "leaky_relu", "hardtanh", "dropout", "quantize")
"""Elementwise ops a neuron passes through between the two linears of a pair."""
_MOVES = ("reshape", "transpose", "permute", "quantize")


@dataclass(frozen=True)
class NeuronPair:
    """L1 -> unary ops -> L2: L1's output neurons are L2's input features."""

    first: Node
    chain: tuple[Node, ...]
    second: Node


@dataclass(frozen=True)
class AttentionBlock:
    """Q, K, V linears -> heads -> sdpa -> merged heads -> output linear."""

    query: Node
    key: Node
    value: Node
    attention: Node
    output: Node
    heads: int
    head_dim: int


def _users(graph: Graph) -> dict[str, list[Node]]:
    users = graph.users()
    for name in graph.outputs:
        users.setdefault(name, []).append(None)  # a graph output is a reader that is not a node
    return users


def neuron_pairs(graph: Graph) -> list[NeuronPair]:
    """Every L1 -> unary* -> L2 pair, in graph order of L1."""
    users = _users(graph)
    pairs = []
    for node in graph.nodes:
        if node.op != "linear" or OF in node.annotations:
            continue
        chain, value = [], node.outputs[0].name
        while True:
            readers = users.get(value, [])
            if len(readers) != 1 or readers[0] is None:
                break
            reader = readers[0]
            if reader.op in UNARY and reader.inputs[0] == value:
                chain.append(reader)
                value = reader.outputs[0].name
                continue
            if reader.op == "linear" and reader.inputs[0] == value:
                pairs.append(NeuronPair(node, tuple(chain), reader))
            break
    return pairs


def attention_blocks(graph: Graph) -> list[AttentionBlock]:
    """Every attention block of the recognised layout, in graph order."""
    producers = graph.producers()
    users = _users(graph)
    blocks = []
    for node in graph.nodes:
        if node.op != "scaled_dot_product_attention" or len(node.inputs) < 3:
            continue
        linears = [_back_to_linear(producers, node.inputs[i]) for i in range(3)]
        out = _forward_to_linear(users, node.outputs[0].name)
        shape = node.outputs[0].type.shape
        if None in linears or out is None or len(shape) < 3 or node.attrs.get("enable_gqa"):
            continue
        heads, head_dim = shape[-3], shape[-1]
        if not (isinstance(heads, int) and isinstance(head_dim, int)):
            continue
        width = heads * head_dim
        weights = [graph.params.get(lin.inputs[1]) for lin in (*linears, out)]
        if None in weights:
            continue
        if any(w.type.shape[0] != width for w in weights[:3]) or weights[3].type.shape[1] != width:
            continue
        blocks.append(AttentionBlock(*linears, node, out, heads, head_dim))
    return blocks


def _back_to_linear(producers, value: str) -> Node | None:
    node = producers.get(value)
    while node is not None and node.op in _MOVES:
        node = producers.get(node.inputs[0])
    return node if node is not None and node.op == "linear" else None


def _forward_to_linear(users, value: str) -> Node | None:
    while True:
        readers = users.get(value, [])
        if len(readers) != 1 or readers[0] is None:
            return None
        reader = readers[0]
        if reader.op == "linear" and reader.inputs[0] == value:
            return reader
        if reader.op not in _MOVES:
            return None
        value = reader.outputs[0].name


def head_node_names(graph: Graph) -> set[str]:
    """Names of the graph's head linears (maseir.passes.selection.head_nodes)."""
    from ..selection import head_nodes
    return {n.name for n in head_nodes(graph)}
