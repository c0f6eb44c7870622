"""ONNX rules for the recurrent layers ``lstm`` and ``gru`` (eval semantics: no
dropout between layers).

ATen's op runs every layer and direction in one call; ONNX's LSTM and GRU run
one layer (both directions). So each layer is one ONNX node, its output
``Y (seq, dirs, batch, hidden)`` reshaped to the next layer's input
``(seq, batch, dirs * hidden)``, and the final states of the layers are
concatenated. Weights are ATen's, their gate blocks reordered into ONNX's
order (LSTM: ATen i, f, g, o -> ONNX i, o, f, c; GRU: ATen r, z, n -> ONNX
z, r, h) with Split and Concat, which ONNX Runtime folds once. PyTorch's GRU
applies the reset gate after the hidden projection: ONNX's
``linear_before_reset=1``.
"""

from __future__ import annotations

from .context import RuleContext, onnx_rule

# ONNX's gate order as indices into ATen's gate blocks.
_GATES = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}


def _reorder(ctx: RuleContext, value: str, kind: str) -> str:
    """``value``'s gate blocks (along axis 0) in ONNX's order."""
    order = _GATES[kind]
    blocks = ctx.emit("Split", [value], n_outputs=len(order), axis=0, num_outputs=len(order))
    return ctx.emit("Concat", [blocks[i] for i in order], axis=0)


def _stack(ctx: RuleContext, values: list[str]) -> str:
    """(dirs, ...) from one value per direction."""
    axes = ctx.const([0], "int64", "axes")
    parts = [ctx.emit("Unsqueeze", [v, axes]) for v in values]
    return parts[0] if len(parts) == 1 else ctx.emit("Concat", parts, axis=0)


def _recurrent(ctx: RuleContext, kind: str, states: list[str]) -> None:
    """One ONNX ``kind`` node per layer; ``states`` are the initial states (h0, and c0 for LSTM)."""
    has_biases, layers = bool(ctx.attr("has_biases")), int(ctx.attr("num_layers"))
    dirs = 2 if ctx.attr("bidirectional") else 1
    batch_first = bool(ctx.attr("batch_first"))
    params = [ctx.low.value(name) for name in ctx.variadic]
    per = 4 if has_biases else 2
    hidden = int(ctx.value_type(ctx.variadic[1]).shape[1])  # w_hh: (gates * hidden, hidden)
    x = ctx.input("input")
    if batch_first:
        x = ctx.emit("Transpose", [x], perm=[1, 0, 2])
    finals: list[list[str]] = [[] for _ in states]
    for layer in range(layers):
        weights, recurrences, biases = [], [], []
        for d in range(dirs):
            w_ih, w_hh, *b = params[(layer * dirs + d) * per:(layer * dirs + d + 1) * per]
            weights.append(_reorder(ctx, w_ih, kind))
            recurrences.append(_reorder(ctx, w_hh, kind))
            if has_biases:
                biases.append(ctx.emit("Concat", [_reorder(ctx, b[0], kind), _reorder(ctx, b[1], kind)], axis=0))
        bounds = [ctx.const([layer * dirs], "int64", "start"), ctx.const([(layer + 1) * dirs], "int64", "end"),
                  ctx.const([0], "int64", "axes")]
        initial = [ctx.emit("Slice", [s, *bounds]) for s in states]
        attrs = dict(hidden_size=hidden, direction="bidirectional" if dirs == 2 else "forward")
        if kind == "GRU":
            attrs["linear_before_reset"] = 1
        inputs = [x, _stack(ctx, weights), _stack(ctx, recurrences), _stack(ctx, biases) if has_biases else None,
                  None, *initial]
        name = ctx.low.fresh(f"{ctx.node.name}/{kind}")
        # A single layer's final states are the IR outputs themselves.
        outs = [name] + (list(ctx.outputs[1:]) if layers == 1 else
                         [ctx.low.fresh(f"{name}:{i}") for i in range(1, 1 + len(states))])
        ctx.low.emit(kind, inputs, outs, name, **attrs)
        for final, out in zip(finals, outs[1:]):
            final.append(out)
        x = ctx.emit("Transpose", [outs[0]], perm=[0, 2, 1, 3])   # (seq, batch, dirs, hidden)
        shape = ctx.const([0, 0, -1], "int64", "shape")
        if layer < layers - 1 or batch_first:
            x = ctx.emit("Reshape", [x, shape])
        else:
            _produce(ctx, 0, "Reshape", [x, shape])
    if batch_first:
        _produce(ctx, 0, "Transpose", [x], perm=[1, 0, 2])
    if layers > 1:
        for i, final in enumerate(finals, start=1):
            _produce(ctx, i, "Concat", final, axis=0)


def _produce(ctx: RuleContext, index: int, op_type: str, inputs: list[str], **attrs) -> None:
    """The node producing IR output ``index`` (the first is named after the IR node)."""
    name = ctx.node.name if index == 0 else ctx.low.fresh(f"{ctx.node.name}/{op_type}")
    ctx.low.emit(op_type, inputs, [ctx.outputs[index]], name, **attrs)


@onnx_rule("lstm")
def _lstm(ctx: RuleContext) -> None:
    _recurrent(ctx, "LSTM", [ctx.input("hx[0]"), ctx.input("hx[1]")])


@onnx_rule("gru")
def _gru(ctx: RuleContext) -> None:
    _recurrent(ctx, "GRU", [ctx.input("hx")])

