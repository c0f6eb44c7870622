"""ONNX rules for elementwise ops: activations, arithmetic, comparisons, bitwise
ops, selection and casts, computed in the result dtype as ATen does; and the
reductions."""

from __future__ import annotations

import math

from onnx import TensorProto, helper

from .context import ONNX_DTYPES, RuleContext, _promote, onnx_rule

_FLOATS = ("float32", "float16", "bfloat16", "float64")


# --- activations ----------------------------------------------------------------------
def _unary(name: str, onnx_op: str) -> None:
    """An elementwise op computed in its result dtype (ATen's sqrt of an int is a float)."""
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, ctx.out_type.dtype)
        ctx.final(onnx_op, [x])


for _name, _onnx_op in (("relu", "Relu"), ("tanh", "Tanh"), ("sigmoid", "Sigmoid"), ("erf", "Erf"),
                        ("neg", "Neg"), ("sqrt", "Sqrt"), ("exp", "Exp"), ("log", "Log"), ("abs", "Abs"),
                        ("reciprocal", "Reciprocal")):
    _unary(_name, _onnx_op)


@onnx_rule("rsqrt")
def _rsqrt(ctx: RuleContext) -> None:
    x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, ctx.out_type.dtype)
    ctx.final("Reciprocal", [ctx.emit("Sqrt", [x])])


@onnx_rule("gelu")
def _gelu(ctx: RuleContext) -> None:
    """Gelu from opset 20; before it, ATen's formula: x/2 (1 + erf(x/sqrt 2)), or with
    approximate="tanh", x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x, approximate = ctx.input("self"), str(ctx.attr("approximate"))
    if ctx.low.opset >= 20:
        ctx.final("Gelu", [x], approximate=approximate)
        return
    dtype = ctx.type("self").dtype
    if approximate == "tanh":
        cube = ctx.emit("Mul", [ctx.emit("Mul", [x, x]), x])
        inner = ctx.emit("Add", [x, ctx.emit("Mul", [cube, ctx.const(0.044715, dtype, "c")])])
        core = ctx.emit("Tanh", [ctx.emit("Mul", [inner, ctx.const(math.sqrt(2 / math.pi), dtype, "k")])])
    else:
        core = ctx.emit("Erf", [ctx.emit("Mul", [x, ctx.const(1 / math.sqrt(2), dtype, "k")])])
    half_x = ctx.emit("Mul", [x, ctx.const(0.5, dtype, "half")])
    ctx.final("Mul", [half_x, ctx.emit("Add", [core, ctx.const(1.0, dtype, "one")])])


@onnx_rule("silu")
def _silu(ctx: RuleContext) -> None:
    x = ctx.input("self")
    ctx.final("Mul", [x, ctx.emit("Sigmoid", [x])])


@onnx_rule("leaky_relu")
def _leaky_relu(ctx: RuleContext) -> None:
    ctx.final("LeakyRelu", [ctx.input("self")], alpha=float(ctx.attr("negative_slope")))


@onnx_rule("hardtanh")
def _hardtanh(ctx: RuleContext) -> None:
    dtype = ctx.type("self").dtype
    ctx.final("Clip", [ctx.input("self"), ctx.const(ctx.attr("min_val"), dtype, "min"),
                       ctx.const(ctx.attr("max_val"), dtype, "max")])


@onnx_rule("clamp")
def _clamp(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    low, high = ctx.attr("min"), ctx.attr("max")
    ctx.final("Clip", [ctx.cast(ctx.input("self"), ctx.type("self").dtype, dtype),
                       None if low is None else ctx.const(low, dtype, "min"),
                       None if high is None else ctx.const(high, dtype, "max")])


def _softmax_like(name: str, onnx_op: str) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, ctx.out_type.dtype)
        ctx.final(onnx_op, [x], axis=int(ctx.attr("dim")))


_softmax_like("softmax", "Softmax")
_softmax_like("log_softmax", "LogSoftmax")


# --- elementwise arithmetic and comparison ------------------------------------------------
def _arithmetic(name: str, onnx_op: str, bool_op: str | None = None) -> None:
    """self OP other computed in the result dtype (ATen promotion), with add/sub's alpha."""
    other_slot = "exponent" if name == "pow" else "other"

    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        dtype = ctx.out_type.dtype
        a, b = ctx.operand("self", dtype), ctx.operand(other_slot, dtype)
        alpha = ctx.attr("alpha")
        if alpha is not None and alpha != 1:
            b = ctx.emit("Mul", [b, ctx.const(alpha, dtype, "alpha")])
        ctx.final(bool_op if dtype == "bool" and bool_op else onnx_op, [a, b])


_arithmetic("add", "Add", "Or")
_arithmetic("sub", "Sub")
_arithmetic("mul", "Mul", "And")
_arithmetic("div", "Div")
_arithmetic("pow", "Pow")
_arithmetic("maximum", "Max", "Or")
_arithmetic("minimum", "Min", "And")


def _comparison(name: str, onnx_op: str, negate: bool = False) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        dtype = _promote(ctx.operand_type("self"), ctx.operand_type("other"))
        inputs = [ctx.operand("self", dtype), ctx.operand("other", dtype)]
        if negate:
            ctx.final("Not", [ctx.emit(onnx_op, inputs)])
        else:
            ctx.final(onnx_op, inputs)


_comparison("eq", "Equal")
_comparison("ne", "Equal", negate=True)
_comparison("ge", "GreaterOrEqual")
_comparison("gt", "Greater")
_comparison("lt", "Less")
_comparison("le", "LessOrEqual")


def _bitwise(name: str, logical: str, bitwise: str) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        dtype = ctx.out_type.dtype
        ctx.final(logical if dtype == "bool" else bitwise, [ctx.operand("self", dtype), ctx.operand("other", dtype)])


_bitwise("bitwise_and", "And", "BitwiseAnd")
_bitwise("bitwise_or", "Or", "BitwiseOr")


@onnx_rule("bitwise_not")
def _bitwise_not(ctx: RuleContext) -> None:
    ctx.final("Not" if ctx.out_type.dtype == "bool" else "BitwiseNot", [ctx.input("self")])


@onnx_rule("isnan")
def _isnan(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    if xt.dtype in _FLOATS:
        ctx.final("IsNaN", [ctx.input("self")])
    else:  # integers are never NaN
        ctx.final("ConstantOfShape", [ctx.emit("Shape", [ctx.input("self")])],
                  value=helper.make_tensor("false", TensorProto.BOOL, [1], [False]))


@onnx_rule("where")
def _where(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    ctx.final("Where", [ctx.input("condition"), ctx.operand("self", dtype), ctx.operand("other", dtype)])


@onnx_rule("masked_fill")
def _masked_fill(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    value = ctx.low.scalar(ctx.attr("value"), dtype, f"{ctx.node.name}/value")
    ctx.final("Where", [ctx.input("mask"), value, ctx.input("self")])


@onnx_rule("to")
def _to(ctx: RuleContext) -> None:
    x, source = ctx.input("self"), ctx.type("self").dtype
    target = ctx.attr("dtype").name
    if source == target:
        ctx.identity(x)
    else:
        ctx.final("Cast", [x], to=ONNX_DTYPES[target])


@onnx_rule("quantize")
def _quantize(ctx: RuleContext) -> None:
    """An identity: the output value's format rule does the rounding (QuantizeLinear/DequantizeLinear)."""
    ctx.identity(ctx.input("self"))


# --- reductions ---------------------------------------------------------------------
def _reduction(name: str, onnx_op: str) -> None:
    @onnx_rule(name)
    def rule(ctx: RuleContext) -> None:
        xt = ctx.type("self")
        x = ctx.cast(ctx.input("self"), xt.dtype, ctx.out_type.dtype)
        dims = ctx.attr("dim")
        keepdims = int(bool(ctx.attr("keepdim")))
        if onnx_op != "ReduceSum" and ctx.low.opset < 18:  # axes became an input in opset 18 (ReduceSum: 13)
            attrs = {"axes": [int(d) for d in dims]} if dims else {}
            ctx.final(onnx_op, [x], keepdims=keepdims, **attrs)
            return
        axes = ctx.const([int(d) for d in dims], "int64", "axes") if dims else None
        ctx.final(onnx_op, [x, axes], keepdims=keepdims)


_reduction("mean", "ReduceMean")
_reduction("sum", "ReduceSum")


# --- ops the model families need: rotary embeddings, position ids, last-token pooling --------
for _name, _onnx_op in (("cos", "Cos"), ("sin", "Sin")):
    _unary(_name, _onnx_op)


@onnx_rule("cumsum")
def _cumsum(ctx: RuleContext) -> None:
    """CumSum in the result dtype (ATen sums bool and integers as int64); ONNX Runtime's CumSum
    takes 32- and 64-bit types only, so narrower floats are summed in float32."""
    dtype = ctx.out_type.dtype
    work = "float32" if dtype in ("float16", "bfloat16") else dtype
    x = ctx.cast(ctx.input("self"), ctx.type("self").dtype, work)
    axis = ctx.const(int(ctx.attr("dim")), "int64", "axis")
    if work == dtype:
        ctx.final("CumSum", [x, axis])
    else:
        ctx.final("Cast", [ctx.emit("CumSum", [x, axis])], to=ONNX_DTYPES[dtype])


@onnx_rule("argmax")
def _argmax(ctx: RuleContext) -> None:
    """ArgMax picking the first maximum, as ATen does; without dim, of the flattened input."""
    x, xt = ctx.input("self"), ctx.type("self")
    dim, keepdim = ctx.attr("dim"), bool(ctx.attr("keepdim"))
    if xt.dtype == "bool":
        x = ctx.cast(x, "bool", "int32")
    if dim is None:
        flat = ctx.emit("Reshape", [x, ctx.const([-1], "int64", "flat")])
        if not keepdim:
            ctx.final("ArgMax", [flat], axis=0, keepdims=0)
            return
        shape = ctx.const([1] * len(xt.shape), "int64", "ones")
        ctx.final("Reshape", [ctx.emit("ArgMax", [flat], axis=0, keepdims=1), shape])
        return
    ctx.final("ArgMax", [x], axis=int(dim), keepdims=int(keepdim), select_last_index=0)


@onnx_rule("hardsigmoid")
def _hardsigmoid(ctx: RuleContext) -> None:
    """ATen's clamp(x / 6 + 1/2, 0, 1) is ONNX's HardSigmoid with alpha 1/6, beta 1/2."""
    ctx.final("HardSigmoid", [ctx.input("self")], alpha=1.0 / 6.0, beta=0.5)
