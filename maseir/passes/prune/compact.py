"""``compact``: physically remove pruned neurons and attention heads, so matrices get smaller.

- An attention head whose output projection columns are all zero is never
  read, and one whose value rows and value bias are all zero outputs zeros
  (its attention weights sum to one over zero values), whatever its query and
  key: either way its Q, K and V rows and the output projection's columns go.
- A neuron j of a neuron pair (L1 -> unary ops -> L2) whose L1 row and bias
  are zero outputs the constant c = chain(0) (0 for GELU and ReLU, 0.5 for a
  sigmoid): row j of L1 and column j of L2 go, and c times that column is
  added to L2's bias. c follows the quantize nodes between the linears; a
  neuron with c != 0 stays when L2 has no bias, when its fixed-point bias
  cannot hold the sum exactly, or when c goes through dynamic quantization.

Everything else is unchanged, so the compacted graph computes what the
pruned one did (up to float rounding of the folded constants). Value types
are re-derived from the op type rules; fixed-point params keep their
formats (per-channel fracs follow their channels). A graph with nothing to
remove is returned as it is, with a note.
"""

from __future__ import annotations

from ... import ops
from ...ir import Graph, NumberFormat, TensorType, Value
from ..registry import PassResult, PassSpec, StepArgs, register
from .groups import AttentionBlock, NeuronPair, attention_blocks, neuron_pairs


def compact(graph: Graph) -> tuple[Graph, dict]:
    """A copy of ``graph`` without its pruned neurons and heads, and a report."""
    import numpy as np

    from ...arrays import to_numpy
    new = graph.copy()
    report = {"heads": {}, "neurons": {}}
    for block in attention_blocks(new):
        value_rows = to_numpy(new.params[block.value.inputs[1]]).reshape(block.heads, -1)
        dead = ~value_rows.any(axis=1)
        if len(block.value.inputs) > 2 and block.value.inputs[2]:
            dead &= ~to_numpy(new.params[block.value.inputs[2]]).reshape(block.heads, -1).any(axis=1)
        columns = to_numpy(new.params[block.output.inputs[1]])  # [out, heads * head_dim]
        dead |= ~columns.reshape(columns.shape[0], block.heads, block.head_dim).any(axis=(0, 2))
        if dead.any() and not dead.all():
            _remove_heads(new, block, np.flatnonzero(~dead))
            report["heads"][block.attention.name] = {"removed": int(dead.sum()), "kept": int((~dead).sum())}
    for pair in neuron_pairs(new):
        first = to_numpy(new.params[pair.first.inputs[1]])
        silent = ~first.any(axis=1)  # outputs the constant chain(bias)
        has_bias = len(pair.first.inputs) > 2 and bool(pair.first.inputs[2])
        if has_bias:
            silent &= to_numpy(new.params[pair.first.inputs[2]]) == 0
        unread = ~to_numpy(new.params[pair.second.inputs[1]]).any(axis=0)  # L2 ignores it, whatever it outputs
        folded = silent & ~unread  # constant neurons L2 reads: their constant goes into L2's bias
        bias = None
        if folded.any():
            constant = _chain_of_zero(pair)
            if constant is None:
                folded[:] = False  # the constant depends on the run
            elif constant != 0:
                bias = _folded_bias(new, pair, folded, constant)
                if bias is None:
                    folded[:] = False  # the constant has nowhere to go exactly
        dead = unread | folded
        if not dead.any() or dead.all():
            continue
        _remove_neurons(new, pair, np.flatnonzero(~dead), bias)
        report["neurons"][pair.first.name] = {"removed": int(dead.sum()), "kept": int((~dead).sum())}
    if not report["heads"] and not report["neurons"]:
        return graph, report
    _retype(new)
    report["bytes_before"] = sum(t.nbytes for t in graph.params.values())
    report["bytes_after"] = sum(t.nbytes for t in new.params.values())
    return new, report


def _chain_of_zero(pair: NeuronPair) -> float | None:
    """What the unary ops between the two linears make of a 0 (eval mode), rounded by
    the quantize nodes among them; None when that depends on the run (a non-zero
    constant through dynamic or per-channel quantization)."""
    import torch

    from ...formats import round_to
    x = torch.zeros(1, dtype=torch.float64)
    for node in pair.chain:
        if node.op == "dropout":
            continue  # the identity in eval mode
        if node.op == "quantize":
            fmt = node.outputs[0].type.format
            if float(x[0]) == 0:
                continue  # 0 is on every grid
            if fmt.kind == "dynamic" or fmt.fracs:
                return None
            x = round_to(x, fmt)
            continue
        overload, args, kwargs = ops.get(node.op).call_args([x], node.attrs, lambda name: 1)
        x = overload(*args, **kwargs)
    return float(x[0])


def _folded_bias(graph: Graph, pair: NeuronPair, dead, constant: float):
    """The second linear's bias plus ``constant`` times its columns of the ``dead`` neurons,
    or None when it has no bias or its format cannot hold the sum exactly."""
    import numpy as np
    import torch

    from ... import tensors
    from ...arrays import to_numpy
    from ...formats import is_stored_as_codes, round_to
    if len(pair.second.inputs) < 3 or not pair.second.inputs[2]:
        return None
    old = graph.params[pair.second.inputs[2]]
    columns = to_numpy(graph.params[pair.second.inputs[1]]).astype(np.float64)[:, dead]
    values = to_numpy(old).astype(np.float64) + constant * columns.sum(axis=1)
    if is_stored_as_codes(old.type.format) and not np.array_equal(round_to(values, old.type.format), values):
        return None  # a fixed-point bias would round the folded constant
    return tensors.to_ir(old.name, torch.from_numpy(values).to(tensors.torch_dtype(old.type.dtype)), old.trainable,
                         old.type.format).replace(annotations=old.annotations)


def _keep(graph: Graph, name: str, axis: int, keep) -> None:
    """Replace param ``name`` by its slices ``keep`` along ``axis`` (same format)."""
    import torch

    from ... import tensors
    old = graph.params[name]
    values = torch.index_select(tensors.to_torch(old), axis, torch.as_tensor(keep, dtype=torch.long))
    fmt = old.type.format
    if fmt is not None and fmt.fracs and fmt.axis == axis:
        fmt = NumberFormat(fmt.kind, fmt.width, fmt.frac, fmt.scale, tuple(fmt.fracs[i] for i in keep), fmt.axis)
    graph.params[name] = tensors.to_ir(name, values, old.trainable, fmt).replace(annotations=old.annotations)


def _remove_neurons(graph: Graph, pair: NeuronPair, keep, bias) -> None:
    if bias is not None:
        graph.params[bias.name] = bias
    _keep(graph, pair.first.inputs[1], 0, keep)
    if len(pair.first.inputs) > 2 and pair.first.inputs[2]:
        _keep(graph, pair.first.inputs[2], 0, keep)
    _keep(graph, pair.second.inputs[1], 1, keep)


def _remove_heads(graph: Graph, block: AttentionBlock, kept_heads) -> None:
    import numpy as np
    rows = np.concatenate([np.arange(h * block.head_dim, (h + 1) * block.head_dim) for h in kept_heads])
    for lin in (block.query, block.key, block.value):
        _keep(graph, lin.inputs[1], 0, rows)
        if len(lin.inputs) > 2 and lin.inputs[2]:
            _keep(graph, lin.inputs[2], 0, rows)
    _keep(graph, block.output.inputs[1], 1, rows)
    old_heads, new_heads = block.heads, len(kept_heads)
    old_width, new_width = old_heads * block.head_dim, new_heads * block.head_dim
    axes = _reshape_head_axes(graph, block)
    for node in graph.nodes:
        if node.name not in axes:
            continue
        axis, shape = axes[node.name], list(node.attrs["shape"])
        if axis is None:  # merged heads [..., heads * head_dim]
            if shape[-1] == old_width:
                shape[-1] = new_width
        elif shape[axis] == old_heads:  # by position: head_dim or a fixed batch may be the same number
            shape[axis] = new_heads
        node.attrs["shape"] = tuple(shape)


def _reshape_head_axes(graph: Graph, block: AttentionBlock) -> dict:
    """The name of each reshape between the projections and the attention (and on to the
    output linear), with the axis of its output that counts the heads, or None where the
    heads are merged into the last axis. Found by following the attention's heads axis
    ([..., heads, seq, head_dim]) through the transposes and permutes on the way."""
    producers, types = graph.producers(), graph.value_types()
    found = {}
    for start in block.attention.inputs[:3]:  # back from the attention to each projection
        axis, node = -3, producers.get(start)
        while node is not None and node.op in ("reshape", "transpose", "permute", "quantize"):
            rank = len(node.outputs[0].type.shape)
            axis = None if axis is None else axis % rank
            if node.op == "reshape":
                found[node.name] = axis
                axis = None
            elif node.op == "transpose" and axis is not None:
                axis = _swap(axis, node.attrs["dim0"] % rank, node.attrs["dim1"] % rank)
            elif node.op == "permute" and axis is not None:
                axis = node.attrs["dims"][axis] % rank
            node = producers.get(node.inputs[0])
    chain, node = [], producers.get(block.output.inputs[0])  # forward from the attention to the output linear
    while node is not None and node.name != block.attention.name:
        chain.append(node)
        node = producers.get(node.inputs[0])
    axis = len(block.attention.outputs[0].type.shape) - 3
    for node in reversed(chain):
        rank = len(node.outputs[0].type.shape)
        if node.op == "reshape":
            axis = axis if axis is not None and rank == len(types[node.inputs[0]].shape) else None
            found[node.name] = axis
        elif node.op == "transpose" and axis is not None:
            axis = _swap(axis, node.attrs["dim0"] % rank, node.attrs["dim1"] % rank)
        elif node.op == "permute" and axis is not None:
            axis = [d % rank for d in node.attrs["dims"]].index(axis)
    return found


def _swap(axis: int, a: int, b: int) -> int:
    return b if axis == a else a if axis == b else axis


def _retype(graph: Graph) -> None:
    """Re-derive every node's output types from its inputs (formats kept)."""
    types = {v.name: v.type for v in graph.inputs}
    types.update({n: t.type for n, t in graph.params.items()})
    for node in graph.nodes:
        inferred = ops.infer_types(ops.get(node.op), [types.get(i) if i else None for i in node.inputs], node.attrs)
        node.outputs = [Value(v.name, TensorType(t.dtype, t.shape, v.type.format))
                        for v, t in zip(node.outputs, inferred)]
        types.update({v.name: v.type for v in node.outputs})


def _compact(graph: Graph, args: StepArgs) -> PassResult:
    new, report = compact(graph)
    if new is graph:
        return PassResult(graph, report, "nothing to compact: no pruned neurons or heads (prune granularity=neuron "
                                         "targets=ffn|heads first)")
    heads = sum(v["removed"] for v in report["heads"].values())
    neurons = sum(v["removed"] for v in report["neurons"].values())
    summary = (f"removed {neurons} neurons in {len(report['neurons'])} blocks and {heads} attention heads in "
               f"{len(report['heads'])} layers; params {report['bytes_before'] / 1e6:.1f} -> "
               f"{report['bytes_after'] / 1e6:.1f} MB")
    return PassResult(new, report, summary)


register(PassSpec("compact", _compact, "physically remove pruned neurons and attention heads (smaller matrices, "
                  "same outputs)"))
