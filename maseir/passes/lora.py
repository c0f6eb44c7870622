"""LoRA: ``lora`` inserts low-rank adapters into linear layers; ``fuse lora``
folds them back into the base weights.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
arXiv:2106.09685), with PEFT's conventions (peft/tuners/lora/layer.py): for a
linear layer ``y = x W^T + b`` with W of shape (out, in), an adapter adds
``scale * B(A(dropout(x)))`` with A of shape (r, in), initialised
kaiming-uniform (a = sqrt(5), so uniform in +-1/sqrt(in)), B of shape
(out, r), initialised to zeros, and ``scale = alpha / r``. So inserting an
adapter changes no output. The base weights and biases are frozen, the
adapters are trainable, and, with ``train_head`` (the default), so is the
task head (PEFT's ``modules_to_save`` for sequence classification).

In the graph an adapter of the linear node N (scope S) is five nodes, all
annotated ``lora.of=N`` with their ``lora.role``::

    S.lora_dropout.dropout  = dropout(x) p=...          (only with dropout > 0)
    S.lora_A.linear         = linear(x, S.lora_A.weight)    role A
    S.lora_B.linear         = linear(a, S.lora_B.weight)    role B
    S.lora.mul              = mul(b, other=alpha/r)         role scale (+ lora.rank, lora.alpha)
    S.lora.add              = add(N, S.lora.mul)            role add: N's consumers read this

The params carry the same annotations; a param the pass froze carries
``lora.frozen=true`` so ``fuse lora`` can make it trainable again. Nothing
outside the file records any of this (spec/format.md lists the keys).

``fuse lora`` sets ``W = W + scale * B @ A`` (in float32, as PEFT's merge
does) and removes the adapter nodes and params: the fused graph has exactly
the op set of the original. A base weight keeps its number format (a
quantized one is rounded to it again) and, when pruned, its zeros (the
update is masked there).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MaseIRError
from ..ir import Graph, Node, Tensor, TensorType, Value, default_format, unique_name
from .registry import ArgSpec, PassResult, PassSpec, StepArgs, register
from .selection import Selection, head_nodes, node_params, select

OF = "lora.of"
ROLE = "lora.role"
RANK = "lora.rank"
ALPHA = "lora.alpha"
FROZEN = "lora.frozen"
ROLES = ("dropout", "A", "B", "scale", "add")


class LoRAError(MaseIRError):
    """A LoRA step that cannot be applied to this graph."""


@dataclass(frozen=True)
class LoRAConfig:
    """The adapter settings: rank r >= 1, alpha > 0 (scale = alpha / r), dropout
    probability on the adapter's input, and whether the head trains in full."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    train_head: bool = True

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def adapted_nodes(graph: Graph) -> dict[str, dict[str, Node]]:
    """For every base linear with an adapter: its adapter nodes by role."""
    out: dict[str, dict[str, Node]] = {}
    for node in graph.nodes:
        if OF in node.annotations:
            out.setdefault(node.annotations[OF], {})[node.annotations.get(ROLE, "")] = node
    return out


def insert_lora(graph: Graph, selection: Selection, config: LoRAConfig, seed: int = 0) -> tuple[Graph, dict]:
    """A copy of ``graph`` with an adapter on every selected linear node.

    Returns the new graph and a report (adapted layers, trainable and total
    parameter counts). Raises LoRAError for a node that already has an
    adapter, SelectionError when the selection matches nothing."""
    import math

    import torch

    from .. import tensors

    existing = adapted_nodes(graph)
    chosen = [n for n in select(graph, selection) if OF not in n.annotations]
    again = [n.name for n in chosen if n.name in existing]
    if again:
        raise LoRAError(f"{again[0]} already has a LoRA adapter (fuse lora first)")
    new = graph.copy()
    types = new.value_types()
    taken_nodes = {n.name for n in new.nodes}
    taken_params = set(new.params)
    generator = torch.Generator().manual_seed(seed)
    replacement: dict[str, str] = {}
    by_name = {n.name: n for n in new.nodes}
    inserted: dict[str, list[Node]] = {}
    for base in chosen:
        base = by_name[base.name]
        x, weight = base.inputs[0], new.params.get(base.inputs[1])
        if weight is None or len(weight.type.shape) != 2:
            raise LoRAError(f"{base.name}: its weight is not a 2-D param, so it cannot take an adapter")
        out_features, in_features = weight.type.shape
        x_type, y_type = types[x], base.outputs[0].type
        scope = base.scope or base.name
        note = {OF: base.name}

        def param(suffix: str, value, role: str) -> str:
            name = unique_name(f"{scope}.{suffix}", taken_params, taken_nodes)
            new.params[name] = tensors.to_ir(name, value, trainable=True).replace(
                annotations={**note, ROLE: role})
            return name

        def node(suffix: str, op: str, inputs: list[str], out_type: TensorType, role: str, **attrs) -> Node:
            name = unique_name(f"{scope}.{suffix}", taken_nodes, taken_params)
            made = Node(name, op, inputs, [Value(name, out_type)], attrs, scope, {**note, ROLE: role})
            taken_nodes.add(name)
            return made

        bound = 1.0 / math.sqrt(in_features)  # kaiming_uniform_(a=sqrt(5)) on an (r, in) matrix
        a_value = torch.empty(config.rank, in_features).uniform_(-bound, bound, generator=generator)
        a_name = param("lora_A.weight", a_value.to(_torch_dtype(weight)), "A")
        b_name = param("lora_B.weight", torch.zeros(out_features, config.rank, dtype=_torch_dtype(weight)), "B")
        r_type = TensorType(x_type.dtype, tuple(x_type.shape[:-1]) + (config.rank,), default_format(x_type.dtype))
        chain = []
        source = x
        if config.dropout > 0:
            chain.append(node("lora_dropout.dropout", "dropout", [x], x_type, "dropout", p=config.dropout))
            source = chain[-1].name
        chain.append(node("lora_A.linear", "linear", [source, a_name], r_type, "A"))
        chain.append(node("lora_B.linear", "linear", [chain[-1].name, b_name], y_type, "B"))
        scaled = node("lora.mul", "mul", [chain[-1].name, ""], y_type, "scale", other=config.scale)
        scaled.annotations.update({RANK: str(config.rank), ALPHA: repr(float(config.alpha))})
        chain.append(scaled)
        chain.append(node("lora.add", "add", [base.outputs[0].name, scaled.name], y_type, "add"))
        inserted[base.name] = chain
        replacement[base.outputs[0].name] = chain[-1].name
    nodes = []
    for node_ in new.nodes:
        own = {n.outputs[0].name for n in inserted.get(node_.name, ())}
        if node_.name not in inserted:  # readers of an adapted output read the adapter's sum
            node_.inputs = [replacement.get(i, i) if i and node_.name not in own else i for i in node_.inputs]
        nodes.append(node_)
        nodes.extend(inserted.get(node_.name, ()))
    for chain in inserted.values():
        chain[-1].inputs = [chain[-1].inputs[0], chain[-2].name]
    new.nodes = nodes
    new.outputs = [replacement.get(o, o) for o in new.outputs]
    _freeze(new, config.train_head)
    from .analysis import parameter_counts
    total, trainable = parameter_counts(new)
    report = {"adapted": len(inserted), "rank": config.rank, "alpha": config.alpha, "scale": config.scale,
              "layers": list(inserted), "trainable_parameters": trainable, "parameters": total,
              "head": [n.name for n in head_nodes(new)] if config.train_head else []}
    return new, report


def _torch_dtype(tensor: Tensor):
    from ..tensors import torch_dtype
    return torch_dtype(tensor.type.dtype)


def _freeze(graph: Graph, train_head: bool) -> None:
    """Only adapters (and, with ``train_head``, the head's params) stay trainable;
    every param this freezes is marked so ``fuse lora`` can thaw it."""
    head = {p for n in head_nodes(graph) if OF not in n.annotations for p in node_params(graph, n)}
    for name, tensor in graph.params.items():
        if ROLE in tensor.annotations:
            continue
        keep = train_head and name in head
        if tensor.trainable and not keep:
            graph.params[name] = tensor.replace(trainable=False, annotations={**tensor.annotations, FROZEN: "true"})


def fuse_lora(graph: Graph) -> tuple[Graph, dict]:
    """A copy of ``graph`` with every adapter folded into its base weight,
    ``W + scale * B @ A``, and the adapter nodes and params removed; params the
    adapters froze are trainable again. Raises LoRAError when there are none."""
    import torch

    from .. import tensors

    adapters = adapted_nodes(graph)
    if not adapters:
        raise LoRAError("the graph has no LoRA adapters to fuse (insert them with 'lora')")
    new = graph.copy()
    by_name = {n.name: n for n in new.nodes}
    removed_nodes: set[str] = set()
    replacement: dict[str, str] = {}
    for base_name, roles in adapters.items():
        base = by_name.get(base_name)
        missing = [r for r in ("A", "B", "scale", "add") if r not in roles]
        if base is None or missing:
            raise LoRAError(f"the adapter of {base_name} is incomplete (missing: {', '.join(missing) or base_name})")
        a = tensors.to_torch(new.params[roles["A"].inputs[1]])
        b = tensors.to_torch(new.params[roles["B"].inputs[1]])
        scale = float(roles["scale"].attrs["other"])
        weight_name = base.inputs[1]
        weight = new.params[weight_name]
        base_values = tensors.to_torch(weight)
        delta = (b @ a) * scale
        if any(k.startswith("prune.") for k in weight.annotations):
            delta = delta * (base_values != 0)  # a pruned weight's zeros are its mask: they stay zero
        fused = base_values + delta
        new.params[weight_name] = tensors.to_ir(weight_name, fused.to(tensors.torch_dtype(weight.type.dtype)),
                                                weight.trainable, weight.type.format  # a quantized base stays so
                                                ).replace(annotations=weight.annotations)
        for role_node in roles.values():
            removed_nodes.add(role_node.name)
            for p in node_params(new, role_node):
                del new.params[p]
        replacement[roles["add"].outputs[0].name] = base.outputs[0].name
    new.nodes = [n for n in new.nodes if n.name not in removed_nodes]
    for node in new.nodes:
        node.inputs = [replacement.get(i, i) if i else i for i in node.inputs]
    new.outputs = [replacement.get(o, o) for o in new.outputs]
    for name, tensor in list(new.params.items()):
        if tensor.annotations.get(FROZEN):
            annotations = {k: v for k, v in tensor.annotations.items() if k != FROZEN}
            new.params[name] = tensor.replace(trainable=True, annotations=annotations)
    return new, {"fused": len(adapters), "layers": list(adapters)}


# --- the passes ---------------------------------------------------------------------
def _lora(graph: Graph, args: StepArgs) -> PassResult:
    targets = args["targets"]
    ops = args["ops"]
    if targets is not None and ops is not None:
        raise LoRAError("give targets= or ops=, not both")
    selection = Selection(ops=tuple(ops or ("linear",)), targets=None if ops else tuple(targets or ("query", "value")),
                          scope_regex=args["scope"], exclude_head=True)
    config = LoRAConfig(args["rank"], args["alpha"], args["dropout"], args["train_head"])
    new, report = insert_lora(graph, selection, config, args.seed)
    summary = (f"{report['adapted']} adapters (r={config.rank}, alpha={config.alpha:g}, scale={config.scale:g}); "
               f"{report['trainable_parameters']:,} of {report['parameters']:,} parameters trainable")
    return PassResult(new, report, summary)


def _fuse(graph: Graph, args: StepArgs) -> PassResult:
    new, report = fuse_lora(graph)
    return PassResult(new, report, f"fused {report['fused']} adapters into their base weights")


register(PassSpec("lora", _lora, "insert LoRA adapters (PEFT semantics: A kaiming-uniform, B zeros, scale alpha/r); "
                  "base weights frozen", args=(
                      ArgSpec("rank", "int", 8, "adapter rank r", min=1, max=4096),
                      ArgSpec("alpha", "float", 16.0, "scale numerator: scale = alpha / rank", min=1e-9),
                      ArgSpec("dropout", "float", 0.0, "dropout probability on the adapter's input", min=0.0,
                              max=0.999),
                      ArgSpec("targets", "list", None, "last module-name parts of the linears to adapt "
                                                       "(PEFT target_modules; default query,value)"),
                      ArgSpec("ops", "list", None, "adapt every node of these ops instead (e.g. linear), "
                                                   "except the head", choices=("linear",)),
                      ArgSpec("scope", "str", None, "regular expression searched in each node's scope"),
                      ArgSpec("train_head", "bool", True, "train the task head in full (PEFT modules_to_save)"),
                  )))
register(PassSpec("fuse", _fuse, "fold LoRA adapters into their base weights (W + alpha/r * B @ A)",
                  object="lora"))
