"""ONNX rules for padding, resampling and transposed convolution: ``pad`` (Pad),
``upsample_nearest2d`` and ``upsample_bilinear2d`` (Resize), ``conv_transpose2d``
(ConvTranspose)."""

from __future__ import annotations

from .context import RuleContext, _pair, _rank, _unsupported, _with_batch, onnx_rule

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@onnx_rule("pad")
def _pad(ctx: RuleContext) -> None:
    """ATen's pad lists (before, after) pairs from the last dim backwards; ONNX's
    Pad takes every dim's before, then every dim's after, first dim first."""
    xt = ctx.type("self")
    rank = _rank(xt)
    pad = [int(p) for p in ctx.attr("pad")]
    mode = str(ctx.attr("mode"))
    if mode not in _PAD_MODES:
        raise _unsupported(ctx, f"in mode {mode!r}")
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):
        begins[rank - 1 - i], ends[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
    inputs = [ctx.input("self"), ctx.const(begins + ends, "int64", "pads")]
    if mode == "constant":
        value = ctx.attr("value")
        inputs.append(ctx.const(0 if value is None else value, xt.dtype, "value"))
    ctx.final("Pad", inputs, mode=_PAD_MODES[mode])


def _resize(ctx: RuleContext, **attrs) -> None:
    """Resize of the last two dims, to ``output_size`` (sizes over axes 2, 3) or by
    ``scale_factors`` (ONNX computes floor(size * scale), as ATen does)."""
    xt = ctx.type("input")
    if _rank(xt) != 4:
        raise _unsupported(ctx, "of an input that is not (N, C, H, W)")
    size, scales = ctx.attr("output_size"), ctx.attr("scale_factors")
    x = ctx.input("input")
    if size is not None:
        ctx.final("Resize", [x, None, None, ctx.low.shape(tuple(size), ctx.node.name)], axes=[2, 3], **attrs)
    elif scales is not None:
        ctx.final("Resize", [x, None, ctx.const([float(s) for s in _pair(scales)], "float32", "scales")],
                  axes=[2, 3], **attrs)
    else:
        raise _unsupported(ctx, "with neither output_size nor scale_factors")


@onnx_rule("upsample_nearest2d")
def _upsample_nearest2d(ctx: RuleContext) -> None:
    """ATen's nearest picks source index floor(dst / scale): ONNX's asymmetric transform, rounded down."""
    _resize(ctx, mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")


@onnx_rule("upsample_bilinear2d")
def _upsample_bilinear2d(ctx: RuleContext) -> None:
    """Source coordinate (dst + 0.5) / scale - 0.5 (ONNX half_pixel, which ATen also uses for an
    output size of 1), or dst * (in - 1) / (out - 1) with align_corners."""
    mode = "align_corners" if ctx.attr("align_corners") else "half_pixel"
    _resize(ctx, mode="linear", coordinate_transformation_mode=mode)


@onnx_rule("conv_transpose2d")
def _conv_transpose2d(ctx: RuleContext) -> None:
    """ConvTranspose. ATen takes an output_padding below the stride or the dilation; ONNX
    Runtime only below the stride. There the output grows at the end by a smaller end pad
    instead, and past the full transposed convolution (where no input reaches) by zeros
    plus the bias."""
    w_type = ctx.type("weight")
    pads, strides = _pair(ctx.attr("padding")), _pair(ctx.attr("stride"))
    output_padding = _pair(ctx.attr("output_padding"))
    ends, grow = list(pads), [0, 0]
    for i in range(2):
        if output_padding[i] >= strides[i]:
            ends[i], grow[i] = max(pads[i] - output_padding[i], 0), max(output_padding[i] - pads[i], 0)
            output_padding[i] = 0
    attrs = dict(kernel_shape=[int(d) for d in w_type.shape[2:]], strides=strides, pads=pads + ends,
                 output_padding=output_padding, dilations=_pair(ctx.attr("dilation")), group=int(ctx.attr("groups")))
    weight, bias = ctx.input("weight"), ctx.input("bias")

    def build(x, emit):
        if not any(grow):
            return emit("ConvTranspose", [x, weight, bias], **attrs)
        y = ctx.emit("ConvTranspose", [x, weight], **attrs)
        grown = ctx.const([0, 0, 0, 0, 0, 0, *grow], "int64", "pads")
        if bias is None:
            return emit("Pad", [y, grown])
        y = ctx.emit("Pad", [y, grown])
        return emit("Add", [y, ctx.emit("Unsqueeze", [bias, ctx.const([1, 2], "int64", "axes")])])

    _with_batch(ctx, ctx.input("input"), _rank(ctx.type("input")), build)
