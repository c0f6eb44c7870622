"""``prune``: set the least important weights to exactly zero, and say so in the file.

Unstructured (``granularity=weight``): magnitude pruning (``method=l1``, Han
et al. 2015, "Learning both Weights and Connections", arXiv:1506.02626) or
``method=random`` of the weights of the selected ops (default ``linear``).
``scope=local`` prunes round(sparsity * n) weights of every tensor;
``scope=global`` ranks all selected weights together and prunes
round(sparsity * total) of them, so the overall sparsity is exact to within
one element. Ranking is by score, ties broken by position (tensor order, then
flat index), so a seed gives one mask. Weights that are already zero rank
first, so pruning a pruned tensor to a higher sparsity keeps its zeros.

Structured (``granularity=neuron``): whole output neurons of linears, ranked
by the l1 (``norm=l1``) or l2 norm of their weight rows (Li et al. 2017,
"Pruning Filters for Efficient ConvNets", arXiv:1608.08710), or at random.
``targets=ffn`` takes the feed-forward blocks (the first linear's rows and the
matching columns of the second, maseir/passes/prune/groups.py);
``targets=heads`` whole attention heads (the rows of Q, K and V and the
output projection's columns of a head, ranked by the norm of the Q, K and V
rows); without targets, the rows of every selected linear except the task
head's (its output neurons are the logits). ``compact`` then removes what was
pruned.

A pruned param is annotated (``prune.method``, ``prune.granularity``,
``prune.sparsity``: the requested fraction) and its zeros are its mask. In
structured pruning that is the weight matrices (rows and columns); the
pruned units' biases are zeroed but not masked, so they may train again
while the masked weights keep those units cut off.
"""

from __future__ import annotations

from ...errors import MaseIRError
from ...ir import Graph
from ..lora import OF
from ..registry import ArgSpec, PassResult, PassSpec, StepArgs, register
from ..selection import Selection, select
from .groups import attention_blocks, neuron_pairs, head_node_names

METHOD, GRANULARITY, SPARSITY = "prune.method", "prune.granularity", "prune.sparsity"


class PruneError(MaseIRError):
    """A prune step that does not fit this graph."""


def is_pruned(tensor) -> bool:
    """Whether a param carries pruning annotations (its zeros are then a mask)."""
    return any(k.startswith("prune.") for k in tensor.annotations)


def _scores(values, method: str, rng):
    """Importance of every element: |w| (l1), or uniform random; zeros rank lowest."""
    import numpy as np
    scores = np.abs(values) if method == "l1" else rng.random(values.shape)
    return np.where(values == 0, -1.0, scores)


def _lowest(scores, k: int):
    """A boolean mask of the ``k`` lowest scores, ties broken by position (the first
    ones go): the k-th smallest score by selection (linear time), then every score
    below it and as many of those equal to it as are still needed."""
    import numpy as np
    flat = scores.reshape(-1)
    mask = np.zeros(flat.size, dtype=bool)
    if k >= flat.size:
        mask[:] = True
    elif k > 0:
        kth = np.partition(flat, k - 1)[k - 1]
        mask = flat < kth
        mask[np.flatnonzero(flat == kth)[:k - int(mask.sum())]] = True
    return mask.reshape(scores.shape)


def prune_weights(graph: Graph, names: list[str], sparsity: float, method: str, scope: str,
                  seed: int) -> dict[str, object]:
    """Masks (True = pruned) of unstructured pruning over the params ``names``."""
    import numpy as np

    from ...arrays import to_numpy
    rng = np.random.default_rng(seed)
    values = {n: to_numpy(graph.params[n]).astype(np.float64) for n in names}
    scores = {n: _scores(v, method, rng) for n, v in values.items()}
    if scope == "local":
        return {n: _lowest(s, int(round(sparsity * s.size))) for n, s in scores.items()}
    flat = np.concatenate([s.reshape(-1) for s in scores.values()])
    chosen = _lowest(flat, int(round(sparsity * flat.size)))
    masks, start = {}, 0
    for n, s in scores.items():
        masks[n] = chosen[start:start + s.size].reshape(s.shape)
        start += s.size
    return masks


def _row_scores(rows, norm: str, method: str, rng):
    """One score per row of a [rows, ...] array: its l1 or l2 norm, or random."""
    import numpy as np
    if method == "random":
        return rng.random(rows.shape[0])
    flat = rows.reshape(rows.shape[0], -1)
    return np.abs(flat).sum(axis=1) if norm == "l1" else np.sqrt((flat ** 2).sum(axis=1))


def _units(graph: Graph, targets: str | None, selection: Selection):
    """The prunable units: list of (group name, [(param, axis, slice per unit)], units, score rows)."""
    import numpy as np

    from ...arrays import to_numpy
    groups = []
    if targets == "ffn":
        head = head_node_names(graph)
        pairs = [p for p in neuron_pairs(graph) if p.second.name not in head]
        if not pairs:
            raise PruneError("targets=ffn: the graph has no feed-forward blocks (linear -> activation -> linear)")
        for pair in pairs:
            w1 = pair.first.inputs[1]
            members = [(w1, 0, 1)] + ([(pair.first.inputs[2], 0, 1)] if _bias(pair.first) else []) \
                + [(pair.second.inputs[1], 1, 1)]
            groups.append((pair.first.name, members, graph.params[w1].type.shape[0],
                           to_numpy(graph.params[w1])))
    elif targets == "heads":
        blocks = attention_blocks(graph)
        if not blocks:
            raise PruneError("targets=heads: the graph has no attention blocks of the recognised layout "
                             "(Q, K, V linears -> scaled_dot_product_attention -> output linear)")
        for block in blocks:
            members = []
            for lin in (block.query, block.key, block.value):
                members.append((lin.inputs[1], 0, block.head_dim))
                if _bias(lin):
                    members.append((lin.inputs[2], 0, block.head_dim))
            members.append((block.output.inputs[1], 1, block.head_dim))
            rows = np.concatenate([to_numpy(graph.params[lin.inputs[1]]).reshape(block.heads, -1)
                                   for lin in (block.query, block.key, block.value)], axis=1)
            groups.append((block.attention.name, members, block.heads, rows))
    else:
        # the task head's output neurons are the logits (a pruned one is a class removed), so it is left out
        head = head_node_names(graph)
        nodes = [n for n in _model_nodes(select(graph, selection)) if n.name not in head]
        if not nodes:
            raise PruneError(f"granularity=neuron: {selection.describe()} selects only the task head "
                             f"({', '.join(sorted(head))}), whose output neurons are the logits; nothing to prune")
        if any(n.op != "linear" for n in nodes):
            bad = sorted({n.op for n in nodes if n.op != "linear"})
            raise PruneError(f"granularity=neuron prunes the output neurons of linear layers; "
                             f"{', '.join(bad)} has none (use granularity=weight)")
        for node in nodes:
            w = node.inputs[1]
            members = [(w, 0, 1)] + ([(node.inputs[2], 0, 1)] if _bias(node) else [])
            groups.append((node.name, members, graph.params[w].type.shape[0], to_numpy(graph.params[w])))
    return groups


def _model_nodes(nodes) -> list:
    """``nodes`` without LoRA adapter nodes (see the module docstring)."""
    return [n for n in nodes if OF not in n.annotations]


def _bias(node) -> bool:
    return len(node.inputs) > 2 and bool(node.inputs[2])


def prune_units(graph: Graph, sparsity: float, method: str, norm: str, scope: str, targets: str | None,
                selection: Selection, seed: int) -> tuple[dict[str, object], dict]:
    """Masks (True = pruned) of structured pruning, and a report of units pruned per group."""
    import numpy as np
    rng = np.random.default_rng(seed)
    groups = _units(graph, targets, selection)
    scores = [_row_scores(np.asarray(rows, dtype=np.float64), norm, method, rng) for _, _, _, rows in groups]
    if scope == "local":
        chosen = [_lowest(s, int(round(sparsity * s.size))) for s in scores]
    else:
        flat = _lowest(np.concatenate(scores), int(round(sparsity * sum(s.size for s in scores))))
        chosen, start = [], 0
        for s in scores:
            chosen.append(flat[start:start + s.size])
            start += s.size
    masks: dict[str, object] = {}
    report = {}
    for (name, members, units, _), pruned in zip(groups, chosen):
        report[name] = {"units": int(units), "pruned": int(pruned.sum())}
        for param, axis, width in members:
            shape = [int(d) for d in graph.params[param].type.shape]
            unit_mask = np.repeat(pruned, width)
            mask = masks.get(param, np.zeros(shape, dtype=bool))
            mask = mask | (unit_mask.reshape([-1 if a == axis else 1 for a in range(len(shape))])
                           if len(shape) > 1 else unit_mask)
            masks[param] = np.broadcast_to(mask, shape).copy()
    return masks, report


def apply_masks(graph: Graph, masks: dict, annotations: dict[str, str], annotate=None) -> Graph:
    """A copy of ``graph`` with the masked weights set to exactly zero (their stored
    bytes zeroed, so a fixed-point code becomes 0 too) and the params in ``annotate``
    (default: all of them) annotated: their zeros are then a mask that training keeps."""
    from ...sparse import zero_elements
    new = graph.copy()
    for name, mask in masks.items():
        old = graph.params[name]
        note = annotations if annotate is None or name in annotate else {}
        new.params[name] = zero_elements(old, mask).replace(annotations={**old.annotations, **note})
    return new


def sparsity_of(graph: Graph, names) -> dict[str, float]:
    """Fraction of exact zeros of each named param."""
    import numpy as np

    from ...arrays import to_numpy
    return {n: float(np.count_nonzero(to_numpy(graph.params[n]) == 0) / max(1, graph.params[n].type.numel()))
            for n in names}


def _prune(graph: Graph, args: StepArgs) -> PassResult:
    sparsity, method, scope = args["sparsity"], args["method"], args["scope"]
    granularity, targets = args["granularity"], args["targets"]
    seed = args["seed"] if args["seed"] is not None else args.seed
    selection = Selection(ops=tuple(args["ops"]), scope_regex=args["scope_regex"])
    if targets is not None and granularity != "neuron":
        raise PruneError(f"targets={targets} prunes whole neurons or heads: give granularity=neuron")
    note = {METHOD: method if granularity == "weight" or method == "random" else args["norm"],
            GRANULARITY: granularity if targets is None else f"{granularity}:{targets}",
            SPARSITY: repr(float(sparsity))}
    if granularity == "weight":
        nodes = _model_nodes(select(graph, selection))
        names = list(dict.fromkeys(n.inputs[_weight_slot(n)] for n in nodes if n.inputs[_weight_slot(n)] in graph.params))
        if not names:
            raise PruneError(f"{selection.describe()}: the selected nodes have no weight params")
        masks = prune_weights(graph, names, sparsity, method, scope, seed)
        units = {}
    else:
        masks, units = prune_units(graph, sparsity, method, args["norm"], scope, targets, selection, seed)
    # Structured pruning masks the weight matrices only: a pruned neuron's (or head's) bias is zeroed but
    # free to train (its weights' zero rows and columns keep it cut off), so no bias that happens to be
    # zero, such as a zero-initialised one of a kept neuron, is frozen.
    annotate = None if granularity == "weight" else {n for n in masks if len(graph.params[n].type.shape) > 1}
    new = apply_masks(graph, masks, note, annotate)
    weights = [n for n in masks if len(new.params[n].type.shape) > 1]
    reached = sparsity_of(new, weights)
    total = sum(new.params[n].type.numel() for n in weights)
    overall = sum(reached[n] * new.params[n].type.numel() for n in weights) / max(1, total)
    report = {"sparsity": sparsity, "method": method, "scope": scope, "granularity": granularity,
              "targets": targets, "tensors": reached, "overall": overall, "units": units}
    what = f"{len(weights)} weight tensors" if not units else \
        f"{sum(u['pruned'] for u in units.values())} of {sum(u['units'] for u in units.values())} " \
        f"{'heads' if targets == 'heads' else 'neurons'} in {len(units)} blocks"
    return PassResult(new, report, f"{what}: sparsity {overall:.4f} ({method}, {scope})")


def _weight_slot(node) -> int:
    return 0 if node.op == "embedding" else 1


register(PassSpec("prune", _prune, "set the least important weights (or whole neurons / attention heads) to "
                  "exactly zero; the zeros are the mask, kept by finetune and stored sparsely", args=(
                      ArgSpec("sparsity", "float", 0.5, "fraction of weights (or neurons, heads) to prune",
                              min=0.0, max=1.0),
                      ArgSpec("method", "str", "l1", "l1: smallest magnitude (or norm) first; random",
                              choices=("l1", "random")),
                      ArgSpec("scope", "str", "local", "local: each tensor (block) reaches the sparsity; global: "
                                                       "one ranking over all of them", choices=("local", "global")),
                      ArgSpec("granularity", "str", "weight", "weight: unstructured; neuron: whole output "
                                                              "neurons (rows)", choices=("weight", "neuron")),
                      ArgSpec("targets", "str", None, "with granularity=neuron: ffn (feed-forward blocks) or "
                                                      "heads (attention heads)", choices=("ffn", "heads")),
                      ArgSpec("norm", "str", "l1", "how neurons and heads are ranked: l1 or l2 norm of their rows",
                              choices=("l1", "l2")),
                      ArgSpec("ops", "list", ("linear",), "the ops whose weights are pruned",
                              choices=("linear", "conv2d", "embedding", "matmul")),
                      ArgSpec("scope_regex", "str", None, "only nodes whose scope this regular expression finds"),
                      ArgSpec("seed", "int", None, "seed for method=random (default: apply --seed)", min=0),
                  )))
