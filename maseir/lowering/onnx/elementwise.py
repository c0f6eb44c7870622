"""ONNX rules for elementwise ops: activations, arithmetic, comparisons, bitwise
ops, selection and casts, computed in the result dtype as ATen does; and the
reductions."""

from __future__ import annotations

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
    ctx.final("Gelu", [ctx.input("self")], approximate=str(ctx.attr("approximate")))


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
        axes = ctx.const([int(d) for d in dims], "int64", "axes") if dims else None
        ctx.final(onnx_op, [x, axes], keepdims=int(bool(ctx.attr("keepdim"))))


_reduction("mean", "ReduceMean")
_reduction("sum", "ReduceSum")


@onnx_rule("hardsigmoid")
def _hardsigmoid(ctx: RuleContext) -> None:
    """ATen's clamp(x / 6 + 1/2, 0, 1) is ONNX's HardSigmoid with alpha 1/6, beta 1/2."""
    ctx.final("HardSigmoid", [ctx.input("self")], alpha=1.0 / 6.0, beta=0.5)
