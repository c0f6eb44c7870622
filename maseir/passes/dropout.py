"""``remove dropout``: drop the dropout nodes for inference.

Dropout is the identity in eval mode, so removing it keeps every eval-mode
output. Consumers are rewired to the dropout's input. The attention dropout
inside scaled_dot_product_attention is not a node; its dropout_p is set to 0
and counted separately. Other ops are not identities at inference and are
refused.
"""

from __future__ import annotations

from .. import ops
from ..ir import Graph
from .registry import PassResult, PassSpec, StepArgs, register


def remove_dropout(graph: Graph, args: StepArgs) -> PassResult:
    new = graph.copy()
    replacement: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in replacement:
            name = replacement[name]
        return name

    kept = []
    attention = 0
    for node in new.nodes:
        if node.op == "dropout":
            replacement[node.outputs[0].name] = node.inputs[0]
            continue
        node.inputs = [resolve(i) if i else i for i in node.inputs]
        if node.op == "scaled_dot_product_attention" and node.attrs.get("dropout_p", 0.0):
            del node.attrs["dropout_p"]  # 0.0 is the default, stored by omission
            attention += 1
        kept.append(node)
    new.nodes = kept
    new.outputs = [resolve(o) for o in new.outputs]
    removed = len(graph.nodes) - len(kept)
    summary = f"removed {removed} node{'s' if removed != 1 else ''}"
    if attention:
        summary += f"; set dropout_p=0 in {attention} attention node{'s' if attention != 1 else ''}"
    return PassResult(new, {"removed": removed, "attention_dropout_zeroed": attention}, summary)


def _why_not_removable(op: str) -> str | None:
    if op in ops.REGISTRY:
        return f"{op} is not an identity at inference, so removing it would change the outputs"
    return None


register(PassSpec("remove", remove_dropout, "remove the dropout nodes (identities at inference)",
                  object="dropout", explain_object=_why_not_removable))
