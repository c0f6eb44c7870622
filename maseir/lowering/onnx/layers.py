"""ONNX rules for layers: linear algebra, convolution, normalisation, attention,
dropout, pooling and the cross-entropy loss (eval semantics throughout)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from onnx import helper

from .context import ONNX_DTYPES, RuleContext, _pair, _rank, _unsupported, _with_batch, onnx_rule

@onnx_rule("linear")
def _linear(ctx: RuleContext) -> None:
    """``x @ W^T + b``: ``MatMul(x, W^T)`` then ``Add(b)``, with ``W^T`` the initializer
    that holds the weight transposed where the lowering stores it so
    (:func:`~maseir.lowering.onnx.context.transposed_params`): the form ONNX tools
    read as a linear layer, at any input rank (ONNX Runtime's dynamic quantizer
    quantizes MatMul, not Gemm). Otherwise the weight is transposed in the graph
    (``Gemm(transB=1)`` for a 2-D input)."""
    x, w, b = ctx.input("input"), ctx.input("weight"), ctx.input("bias")
    wt = ctx.low.transposed_weight(ctx.node.inputs[1])
    if wt is None and _rank(ctx.type("weight")) == 2:
        if _rank(ctx.type("input")) == 2:
            ctx.final("Gemm", [x, w, b], transB=1)
            return
        wt = ctx.emit("Transpose", [w], perm=[1, 0])
    elif wt is None:
        wt = w  # a 1-D weight: x @ w
    if b is None:
        ctx.final("MatMul", [x, wt])
    else:
        ctx.final("Add", [ctx.emit("MatMul", [x, wt]), b])


@onnx_rule("matmul")
def _matmul(ctx: RuleContext) -> None:
    ctx.final("MatMul", [ctx.input("self"), ctx.input("other")])


@onnx_rule("embedding")
def _embedding(ctx: RuleContext) -> None:
    ctx.final("Gather", [ctx.input("weight"), ctx.input("indices")], axis=0)


@onnx_rule("conv2d")
def _conv2d(ctx: RuleContext) -> None:
    w_type = ctx.type("weight")
    pads = _pair(ctx.attr("padding"))
    attrs = dict(kernel_shape=[int(d) for d in w_type.shape[2:]], strides=_pair(ctx.attr("stride")),
                 pads=pads + pads, dilations=_pair(ctx.attr("dilation")), group=int(ctx.attr("groups")))
    inputs = [ctx.input("weight"), ctx.input("bias")]
    _with_batch(ctx, ctx.input("input"), _rank(ctx.type("input")),
                lambda x, emit: emit("Conv", [x, *inputs], **attrs))


@onnx_rule("layer_norm")
def _layer_norm(ctx: RuleContext) -> None:
    shape = list(ctx.attr("normalized_shape"))
    dtype = ctx.type("input").dtype
    weight = ctx.input("weight") or ctx.const(torch.ones(shape), dtype, "ones")
    ctx.final("LayerNormalization", [ctx.input("input"), weight, ctx.input("bias")],
              axis=-len(shape), epsilon=float(ctx.attr("eps")))


@onnx_rule("batch_norm")
def _batch_norm(ctx: RuleContext) -> None:
    """Eval semantics: the running statistics (ATen refuses eval mode without them)."""
    x, xt = ctx.input("input"), ctx.type("input")
    if not (ctx.input("running_mean") and ctx.input("running_var")):
        raise _unsupported(ctx, "without running statistics")
    channels = xt.shape[1]
    if not isinstance(channels, int):
        raise _unsupported(ctx, "with a symbolic channel count")
    weight = ctx.input("weight") or ctx.const(torch.ones(channels), xt.dtype, "ones")
    bias = ctx.input("bias") or ctx.const(torch.zeros(channels), xt.dtype, "zeros")
    ctx.final("BatchNormalization", [x, weight, bias, ctx.input("running_mean"), ctx.input("running_var")],
              epsilon=float(ctx.attr("eps")))


@onnx_rule("scaled_dot_product_attention")
def _attention(ctx: RuleContext) -> None:
    """softmax(q @ k.T * scale + bias) @ v with eval semantics (no dropout).

    ``bias`` is the mask (bool: 0 where true, -inf where false; float: added
    as it is) plus, with ``is_causal``, -inf above the diagonal. A query row
    that the bias hides entirely (every entry -inf) attends to nothing and
    gives zeros, as ATen computes it (``_safe_softmax`` in the math kernel,
    the CPU flash kernel likewise); a plain Softmax would give NaN there.
    Which rows those are depends on the mask only, so it is computed once
    per mask for every layer (see :func:`_attention_bias`).
    """
    q, k, v = ctx.input("query"), ctx.input("key"), ctx.input("value")
    qt, kt = ctx.type("query"), ctx.type("key")
    rank, dtype = _rank(qt), qt.dtype
    scale = ctx.attr("scale")
    if scale is None:
        if not isinstance(qt.shape[-1], int):
            raise _unsupported(ctx, "with a symbolic head size and no scale")
        scale = 1.0 / math.sqrt(qt.shape[-1])
    if ctx.attr("enable_gqa") and qt.shape[-3] != kt.shape[-3]:
        k, v = (_repeat_heads(ctx, t, qt.shape[-3], kt.shape[-3], rank) for t in (k, v))
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    scores = ctx.emit("MatMul", [ctx.emit("Mul", [q, ctx.const(scale, dtype, "scale")]),
                                 ctx.emit("Transpose", [k], perm=perm)])
    causal = (qt.shape[-2], kt.shape[-2]) if ctx.attr("is_causal") else None
    bias, hidden = _attention_bias(ctx, causal, dtype)
    if bias is not None:
        scores = ctx.emit("Add", [scores, bias])
    if hidden is None:
        ctx.final("MatMul", [ctx.emit("Softmax", [scores], axis=-1), v])
        return
    attended = ctx.emit("MatMul", [ctx.emit("Softmax", [scores], axis=-1), v])
    ctx.final("Where", [hidden, ctx.const(0.0, dtype, "zero"), attended])


def _attention_bias(ctx: RuleContext, causal: tuple | None, dtype: str) -> tuple[str | None, str | None]:
    """(bias, hidden rows) of an attention node, each None where there is none.

    ``bias`` (``dtype``, broadcastable to the scores ``[..., L, S]``) is what
    the scores get added: the mask as a 0 / -inf bias and the causal
    triangle. ``hidden`` (bool ``[..., L, 1]``) is true for the query rows
    whose bias is -inf at every key. Both are shared by every node with the
    same mask, causal sizes and dtype. For finite scores a row is fully -inf
    after the bias exactly when its bias is, so ``hidden`` is the row set
    ATen zeroes. The causal triangle alone hides no row (the first key is
    always visible), so without a mask there is no ``hidden``.
    """
    mask = ctx.input("attn_mask")
    if mask is None and causal is None:
        return None, None
    key = ("attention bias", mask, causal, dtype)
    low = ctx.low
    if key in low.shared:
        return low.shared[key]
    bias = None
    if mask is not None:
        mask_type = ctx.type("attn_mask")
        bias = (_mask_bias(ctx, mask, dtype) if mask_type.dtype == "bool"
                else ctx.cast(mask, mask_type.dtype, dtype))
    if causal is not None:
        triangle = _causal_bias(ctx, causal, dtype)
        if bias is None:
            low.shared[key] = (triangle, None)
            return low.shared[key]
        combined = low.fresh(f"{mask}/causal")
        low.emit("Add", [bias, triangle], [combined], combined)
        bias = combined
    low.shared[key] = (bias, _hidden_rows(low, bias, mask, dtype))
    return low.shared[key]


def _hidden_rows(low, bias: str, hint: str, dtype: str) -> str:
    """bool [..., L, 1]: the rows of ``bias`` that are -inf at every key.

    Visible keys are counted rather than the row maximum taken: the ONNX
    importer reads ReduceSum back, and a NaN in a float mask keeps its row
    visible (so NaN comes out, as in ATen).
    """
    def step(op_type: str, inputs: list[str], part: str, **attrs) -> str:
        name = low.fresh(f"{hint}/{part}")
        low.emit(op_type, inputs, [name], name, **attrs)
        return name

    hidden_keys = step("Equal", [bias, low.constant(-math.inf, dtype, f"{hint}/minus_inf")], "hidden_keys")
    visible = step("Cast", [step("Not", [hidden_keys], "visible_keys")], "visible_keys", to=ONNX_DTYPES[dtype])
    count = step("ReduceSum", [visible, low.constant([-1], "int64", f"{hint}/axes")], "visible_count", keepdims=1)
    return step("Equal", [count, low.constant(0.0, dtype, f"{hint}/zero")], "hidden_rows")


def _mask_bias(ctx: RuleContext, mask: str, dtype: str) -> str:
    """0 where a bool mask is true, -inf elsewhere; computed once per mask for every layer."""
    key = ("mask bias", mask, dtype)
    if key not in ctx.low.shared:
        low = ctx.low
        name = low.fresh(f"{mask}/bias")
        low.emit("Where", [mask, low.constant(0.0, dtype, f"{mask}/zero"),
                           low.constant(-math.inf, dtype, f"{mask}/minus_inf")], [name], name)
        low.shared[key] = name
    return ctx.low.shared[key]


def _causal_bias(ctx: RuleContext, sizes: tuple, dtype: str) -> str:
    """[L, S]: 0 on and below the diagonal, -inf above (ATen's top-left aligned triangle)."""
    low = ctx.low
    key = ("causal bias", sizes, dtype)
    if key not in low.shared:
        hint = f"causal/{sizes[0]}x{sizes[1]}"
        shape = low.shape(sizes, hint)
        ones, lower, upper, name = (low.fresh(f"{hint}/{part}") for part in ("ones", "lower", "upper", "bias"))
        low.emit("ConstantOfShape", [shape], [ones], ones,
                 value=helper.make_tensor("one", ONNX_DTYPES[dtype], [1], [1]))
        low.emit("Trilu", [ones], [lower], lower, upper=0)
        low.emit("Equal", [lower, low.constant(0, dtype, f"{hint}/zero")], [upper], upper)
        low.emit("Where", [upper, low.constant(-math.inf, dtype, f"{hint}/minus_inf"),
                           low.constant(0, dtype, f"{hint}/zero")], [name], name)
        low.shared[key] = name
    return low.shared[key]


def _repeat_heads(ctx: RuleContext, t: str, q_heads, kv_heads, rank: int) -> str:
    if not isinstance(q_heads, int) or not isinstance(kv_heads, int):
        raise _unsupported(ctx, "with grouped-query attention over symbolic head counts")
    groups = q_heads // kv_heads
    expanded = ctx.emit("Unsqueeze", [t, ctx.const([rank - 2], "int64", "axes")])
    shape = ctx.emit("Shape", [expanded])
    target = ctx.emit("ScatterElements", [shape, ctx.const([rank - 2], "int64", "index"),
                                          ctx.const([groups], "int64", "groups")], axis=0)
    expanded = ctx.emit("Expand", [expanded, target])
    merged = ctx.emit("Concat", [ctx.emit("Shape", [t], end=rank - 3), ctx.const([q_heads], "int64", "heads"),
                                 ctx.emit("Shape", [t], start=rank - 2)], axis=0)
    return ctx.emit("Reshape", [expanded, merged])


@onnx_rule("dropout")
def _dropout(ctx: RuleContext) -> None:
    ctx.identity(ctx.input("input"))  # eval semantics


def _pool_attrs(ctx: RuleContext) -> dict:
    kernel = _pair(ctx.attr("kernel_size"))
    stride = _pair(ctx.attr("stride")) if ctx.attr("stride") else kernel
    pads = _pair(ctx.attr("padding"))
    return dict(kernel_shape=kernel, strides=stride, pads=pads + pads, ceil_mode=int(bool(ctx.attr("ceil_mode"))))


@onnx_rule("max_pool2d")
def _max_pool2d(ctx: RuleContext) -> None:
    attrs = dict(_pool_attrs(ctx), dilations=_pair(ctx.attr("dilation")))
    _with_batch(ctx, ctx.input("self"), _rank(ctx.type("self")), lambda x, emit: emit("MaxPool", [x], **attrs))


@onnx_rule("avg_pool2d")
def _avg_pool2d(ctx: RuleContext) -> None:
    attrs = dict(_pool_attrs(ctx), count_include_pad=int(bool(ctx.attr("count_include_pad"))))
    divisor = ctx.attr("divisor_override")
    dtype = ctx.type("self").dtype

    def build(x: str, emit: Callable):
        if not divisor:
            return emit("AveragePool", [x], **attrs)
        k = attrs["kernel_shape"]
        return emit("Mul", [ctx.emit("AveragePool", [x], **attrs), ctx.const(k[0] * k[1] / divisor, dtype, "divisor")])
    _with_batch(ctx, ctx.input("self"), _rank(ctx.type("self")), build)


@onnx_rule("adaptive_avg_pool2d")
def _adaptive_avg_pool2d(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    out_h, out_w = _pair(ctx.attr("output_size"))
    in_h, in_w = xt.shape[-2], xt.shape[-1]
    if (out_h, out_w) == (1, 1):
        _with_batch(ctx, ctx.input("self"), _rank(xt), lambda x, emit: emit("GlobalAveragePool", [x]))
        return
    if not isinstance(in_h, int) or not isinstance(in_w, int):
        raise _unsupported(ctx, "to a size other than 1x1 over symbolic spatial sizes")
    # Adaptive average pooling is linear: out = P_h @ x @ P_w.T with averaging matrices.
    p_h, p_w = _averaging_matrix(out_h, in_h), _averaging_matrix(out_w, in_w)
    rows = ctx.emit("MatMul", [ctx.const(p_h, xt.dtype, "rows"), ctx.input("self")])
    ctx.final("MatMul", [rows, ctx.const(p_w.T.contiguous(), xt.dtype, "cols")])


def _averaging_matrix(out: int, size: int) -> torch.Tensor:
    m = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


@onnx_rule("cross_entropy")
def _cross_entropy(ctx: RuleContext) -> None:
    if ctx.attr("label_smoothing"):
        raise _unsupported(ctx, "with label_smoothing")
    target_type = ctx.type("target")
    if target_type.dtype not in ("int64", "int32"):
        raise _unsupported(ctx, "with class-probability targets")
    reduction = {0: "none", 1: "mean", 2: "sum"}[int(ctx.attr("reduction"))]
    scores, target = ctx.input("self"), ctx.input("target")
    unbatched = _rank(ctx.type("self")) == 1
    if unbatched:
        axes = ctx.const([0], "int64", "axes")
        scores, target = ctx.emit("Unsqueeze", [scores, axes]), ctx.emit("Unsqueeze", [target, axes])
    inputs = [scores, target, ctx.input("weight")]
    attrs = dict(reduction=reduction, ignore_index=int(ctx.attr("ignore_index")))
    if unbatched and reduction == "none":
        ctx.final("Squeeze", [ctx.emit("SoftmaxCrossEntropyLoss", inputs, **attrs), ctx.const([0], "int64", "axes")])
    else:
        ctx.final("SoftmaxCrossEntropyLoss", inputs, **attrs)


@onnx_rule("addmm")
def _addmm(ctx: RuleContext) -> None:
    """Gemm: alpha * mat1 @ mat2 + beta * self (self broadcast to the product's shape)."""
    dtype = ctx.out_type.dtype
    beta, alpha = ctx.attr("beta"), ctx.attr("alpha")
    inputs = [ctx.operand("mat1", dtype), ctx.operand("mat2", dtype), ctx.operand("self", dtype)]
    if beta == 0:  # ATen ignores self then, NaN and inf included
        inputs = inputs[:2]
    ctx.final("Gemm", inputs, alpha=float(alpha), beta=float(beta if beta != 0 else 1.0))
