"""Importer handlers for elementwise ONNX ops: activations, casts, arithmetic and
comparisons (folded on constants and size vectors), Where, Clip."""

from __future__ import annotations

import numpy as np

from ... import ops, symbolic
from ...ir import DType, Value, attr_dim, dim_attr
from .reader import _DTYPES, _numpy_dtype
from .handlers import declare, handles
from .values import Const, Sizes, _f32, _is_scalar, _python_scalar, _sizes


class ElementwiseOps:
    """Mixed into the importer: the ``_op_<OpType>`` handlers of elementwise ops."""

    def _unary(self, op_name, node, ins, attrs=None, fold=None):
        x = ins[0]
        if fold is not None and isinstance(x, Const):
            return [self.const(fold(x.array), node.output[0])]
        return [self.emit(op_name, [x], attrs or {}, out=self.out(node))]

    @handles("Gelu", ops=("gelu",), takes="approximate")
    def _op_Gelu(self, node, ins, attrs):
        return self._unary("gelu", node, ins, {"approximate": attrs.get("approximate", "none")})

    @handles("LeakyRelu", ops=("leaky_relu",), since=6, takes="alpha")
    def _op_LeakyRelu(self, node, ins, attrs):
        return self._unary("leaky_relu", node, ins, {"negative_slope": _f32(attrs.get("alpha", 0.01))})

    @handles("Softmax", ops=("softmax",), takes="axis (before opset 13 only the last axis)")
    def _op_Softmax(self, node, ins, attrs):
        return self._softmax("softmax", node, ins, attrs)

    @handles("LogSoftmax", ops=("log_softmax",), takes="axis (before opset 13 only the last axis)")
    def _op_LogSoftmax(self, node, ins, attrs):
        return self._softmax("log_softmax", node, ins, attrs)

    def _softmax(self, op_name, node, ins, attrs):
        rank = self.rank(ins[0])
        axis = attrs.get("axis", -1 if self.opset >= 13 else 1)
        if self.opset < 13 and axis not in (-1, rank - 1):
            raise self._error("before opset 13 Softmax flattens to 2-D; only the last axis is supported")
        return [self.emit(op_name, [ins[0]], {"dim": axis}, out=self.out(node))]

    @handles("Identity", ops=(), takes="-")
    def _op_Identity(self, node, ins, attrs):
        return [ins[0]]

    @handles("Dropout", ops=("dropout",), since=7,
             takes="ratio (attribute, then a constant input); not training mode, not the mask output")
    def _op_Dropout(self, node, ins, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise self._error("its mask output is used")
        ratio = self.scalar(ins[1]) if len(ins) > 1 and ins[1] is not None else attrs.get("ratio", 0.5)
        if not isinstance(ratio, (int, float)):
            raise self._error("its ratio is not a constant")
        if len(ins) > 2 and ins[2] is not None and self.scalar(ins[2]):
            raise self._error("runs in training mode")
        return [self.emit("dropout", [ins[0]], {"p": _f32(ratio)}, out=self.out(node))]

    @handles("Cast", ops=("to",), since=6, takes="to")
    def _op_Cast(self, node, ins, attrs):
        return self._cast(node, ins[0], _DTYPES.get(attrs["to"]))

    @handles("CastLike", ops=("to",), takes="-")
    def _op_CastLike(self, node, ins, attrs):
        return self._cast(node, ins[0], self.type_of(ins[1]).dtype)

    def _cast(self, node, x, dtype):
        if dtype is None:
            raise self._error("casts to a type the IR does not hold")
        if isinstance(x, Const):
            if dtype == "bfloat16" or x.dtype == "bfloat16":
                return [self.emit("to", [x], {"dtype": DType(dtype)}, out=self.out(node))]
            return [self.const(x.array.astype(_numpy_dtype(dtype)), node.output[0], x.weight)]
        if isinstance(x, Sizes):
            return [Sizes(x.items, x.scalar, dtype)]
        if self.type_of(x).dtype == dtype:
            return [x]
        return [self.emit("to", [x], {"dtype": DType(dtype)}, out=self.out(node))]

    _ARITHMETIC = {"Add": ("add", np.add, True), "Sub": ("sub", np.subtract, False),
                   "Mul": ("mul", np.multiply, True), "Div": ("div", None, False),
                   "Pow": ("pow", np.power, False), "Equal": ("eq", np.equal, True),
                   "Greater": ("gt", np.greater, False), "Less": ("lt", np.less, False),
                   "GreaterOrEqual": ("ge", np.greater_equal, False), "LessOrEqual": ("le", np.less_equal, False),
                   "And": ("bitwise_and", np.logical_and, True), "Or": ("bitwise_or", np.logical_or, True),
                   "Max": ("maximum", np.maximum, True), "Min": ("minimum", np.minimum, True)}
    _SWAPPED = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}

    def _binary(self, node, a, b, final: bool = True):
        """An elementwise binary op: folded on constants and sizes, a Scalar argument for a
        one-element constant, else the registry op on two tensors."""
        op_name, fold, commutative = self._ARITHMETIC[node.op_type]
        out = self.out(node) if final else None
        if (isinstance(a, Sizes) or isinstance(b, Sizes)) and not (isinstance(a, str) or isinstance(b, str)) \
                and self.rank(a) <= 1 and self.rank(b) <= 1:  # size vectors are 1-D; else it is a tensor op
            return self._sizes_binary(node, a, b)
        if isinstance(a, Const) and isinstance(b, Const):
            if node.op_type == "Div":
                result = _divide(a.array, b.array)
            else:
                result = fold(a.array, b.array)
                if result.dtype != np.bool_:
                    result = result.astype(a.array.dtype)
            return [self.const(result, node.output[0] if final else None, a.weight or b.weight)]
        if node.op_type == "Add" and final:
            folded = self._bias(node, a, b)
            if folded is not None:
                return [folded]
        if node.op_type == "Div" and not self.type_of(a).dtype.startswith(("float", "bfloat")):
            return [self._integer_divide(a, b, out)]
        op = ops.get(op_name)
        if op.scalar_aten is not None:  # a one-element constant becomes ATen's Scalar argument
            slot = op.tensor_args[1].name
            if self._as_scalar(b, a) is not None:
                return [self.emit(op_name, [a], {slot: self._as_scalar(b, a)}, out=out)]
            swapped = op_name if commutative else self._SWAPPED.get(op_name)
            if swapped and self._as_scalar(a, b) is not None:
                return [self.emit(swapped, [b], {slot: self._as_scalar(a, b)}, out=out)]
        return [self.emit(op_name, [a, b], {}, out=out)]

    def _as_scalar(self, value, other):
        """``value`` as an ATen Scalar next to tensor ``other`` (a number, or Sym or
        SizeExpr for a symbolic size), where that changes nothing."""
        if isinstance(value, Sizes) and len(value.items) == 1:
            if (0 if value.scalar else 1) > self.rank(other):
                return None
            return dim_attr(value.items[0])
        if not isinstance(value, Const) or value.array.size != 1:
            return None
        if value.array.ndim > self.rank(other):
            return None  # broadcasting would add dims
        return _python_scalar(value.array)

    def _integer_divide(self, a, b, out):
        """ONNX Div of integers truncates; ATen's div is true division."""
        dtype = self.type_of(a).dtype
        wide = [self.emit("to", [v], {"dtype": DType("float64")}) for v in (a, b)]
        quotient = self.emit("div", wide, {})
        return self.emit("to", [quotient], {"dtype": DType(dtype)}, out=out)

    def _bias(self, node, a, b):
        """MatMul + Add of a 1-D constant right after it: the bias of the linear layer."""
        for x, bias in ((a, b), (b, a)):
            if isinstance(x, str) and x in self.biasless and isinstance(bias, Const) and bias.array.ndim == 1:
                linear, onnx_name = self.biasless[x]
                out_features = self.types[linear.inputs[1]].shape[0]
                if bias.array.shape[0] == out_features and self.uses.get(onnx_name, 0) == 1:
                    linear.inputs = [linear.inputs[0], linear.inputs[1], self.tensor(bias)]
                    del self.biasless[x]
                    # The linear node now stands for the Add too: it takes the Add's names.
                    out = node.output[0]
                    value = out if out not in self.taken else self._fresh(out)
                    self.taken.add(value)
                    linear.name = self._fresh_node(self.cur_name)
                    linear.outputs = [Value(value, linear.outputs[0].type)]
                    self.types[value] = self.types.pop(x)
                    return value
        return None

    def _sizes_binary(self, node, a, b):
        xs, ys = self.sizes(a, "an operand"), self.sizes(b, "an operand")
        scalar = all(isinstance(v, Sizes) and v.scalar or isinstance(v, Const) and v.array.ndim == 0
                     for v in (a, b))
        if len(xs) != len(ys):
            if len(xs) == 1:
                xs = xs * len(ys)
            elif len(ys) == 1:
                ys = ys * len(xs)
            else:
                raise self._error("broadcasts size vectors of different lengths")
        dtype = next(v.dtype for v in (a, b) if isinstance(v, Sizes))
        items = tuple(self._dim_op(node.op_type, x, y, dtype) for x, y in zip(xs, ys))
        if node.op_type in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"):
            return [self.const(np.array(items, dtype=bool).reshape(() if scalar else (len(items),)), node.output[0])]
        return [_sizes(items, scalar)]

    _INT_OPS = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y,
                "Div": lambda x, y: int(x / y), "Pow": lambda x, y: x ** y, "Max": max, "Min": min,
                "Equal": lambda x, y: x == y, "Greater": lambda x, y: x > y, "Less": lambda x, y: x < y,
                "GreaterOrEqual": lambda x, y: x >= y, "LessOrEqual": lambda x, y: x <= y}

    def _dim_op(self, op: str, x, y, dtype: str = "int64"):
        """One entry of a size-vector computation: ints compute; symbolic dims give size
        expressions (``batch*seq``, ``seq+1``, ``seq//4``) or simplify."""
        if isinstance(x, int) and isinstance(y, int):
            if op not in self._INT_OPS or (op == "Div" and y == 0):
                raise self._error(f"computes {x} {op} {y} on sizes")
            return self._INT_OPS[op](x, y)
        if op == "Add":
            return symbolic.add(x, y)
        if op == "Sub":
            return symbolic.sub(x, y)
        if op == "Mul":
            return symbolic.mul(x, y)
        if op == "Div" and x == y:
            return 1
        if op == "Div" and not dtype.startswith(("float", "bfloat")):
            # ONNX's integer Div truncates toward zero: floor division where x is not negative.
            if not symbolic.is_nonnegative(x) or isinstance(y, int) and y < 1:
                raise self._error(f"divides the size {x} by {y}, which may round differently from a floor "
                                  "division (a negative size?)")
            return symbolic.floordiv(x, y)
        # Symbolic dims are sizes of at least 2 (the IR's type rules assume that too).
        if op in ("Max", "Min") and x == y:
            return x
        if op == "Max" and isinstance(y, int) and y <= 1:
            return x
        if op == "Max" and isinstance(x, int) and x <= 1:
            return y
        if op == "Equal":
            if x == y:
                return True
            if isinstance(x, int) and x <= 1 or isinstance(y, int) and y <= 1:
                return False
        why = "as floats" if op == "Div" else "(size expressions hold +, -, * and floor division)"
        raise self._error(f"computes {x} {op} {y} on sizes {why}, which the IR does not hold")

    def _op_Add(self, node, ins, attrs):
        return self._binary(node, *ins)

    _op_Sub = _op_Mul = _op_Div = _op_Pow = _op_Equal = _op_Greater = _op_Less = _op_Add
    _op_GreaterOrEqual = _op_LessOrEqual = _op_And = _op_Or = _op_Add

    @handles("Max", ops=("maximum",), since=8, takes="any number of inputs")
    def _op_Max(self, node, ins, attrs):
        """Max/Min of any number of inputs: a chain of pairs, the last one named after the node."""
        result = ins[0]
        for other in ins[1:-1]:
            result = self._binary(node, result, other, final=False)[0]
        return self._binary(node, result, ins[-1]) if len(ins) > 1 else [result]

    _op_Min = _op_Max
    declare("Min", ops=("minimum",), since=8, takes="any number of inputs")

    @handles("HardSigmoid", ops=("hardsigmoid", "mul", "add", "clamp"), since=6,
             takes="alpha, beta (1/6 and 1/2 are ATen's hardsigmoid; others become mul, add, clamp)")
    def _op_HardSigmoid(self, node, ins, attrs):
        alpha, beta = _f32(attrs.get("alpha", 0.2)), _f32(attrs.get("beta", 0.5))
        x = ins[0]
        if alpha == _f32(1 / 6) and beta == 0.5:
            return [self.emit("hardsigmoid", [x], {}, out=self.out(node))]
        scaled = self.emit("mul", [x], {"other": alpha})
        shifted = self.emit("add", [scaled], {"other": beta})
        return [self.emit("clamp", [shifted], {"min": 0.0, "max": 1.0}, out=self.out(node))]

    @handles("Where", ops=("where",), takes="-")
    def _op_Where(self, node, ins, attrs):
        cond, a, b = ins
        if isinstance(cond, Const) and isinstance(a, (Const, Sizes)) and isinstance(b, (Const, Sizes)):
            if isinstance(a, Const) and isinstance(b, Const):
                return [self.const(np.where(cond.array, a.array, b.array), node.output[0])]
            xs, ys = self.sizes(a, "an operand"), self.sizes(b, "an operand")
            flags = cond.array.reshape(-1).tolist()
            n = max(len(xs), len(ys), len(flags))
            pick = [(xs[i % len(xs)] if flags[i % len(flags)] else ys[i % len(ys)]) for i in range(n)]
            return [_sizes(pick, cond.array.ndim == 0 and _is_scalar(a) and _is_scalar(b))]
        return [self.emit("where", [cond, a, b], {}, out=self.out(node))]

    @handles("Clip", ops=("clamp",), since=6, takes="min, max (attributes before opset 11, then constant inputs)")
    def _op_Clip(self, node, ins, attrs):
        if self.opset < 11:
            low, high = attrs.get("min"), attrs.get("max")
        else:
            bounds = [ins[i] if len(ins) > i else None for i in (1, 2)]
            low, high = (None if b is None else self.scalar(b) for b in bounds)
            for bound, value in zip(bounds, (low, high)):
                if bound is not None and (value is None or attr_dim(value) is not None):
                    raise self._error("clips to bounds that are not constants")
        if isinstance(ins[0], Const):
            return [self.const(np.clip(ins[0].array, low, high).astype(ins[0].array.dtype), node.output[0])]
        return [self.emit("clamp", [ins[0]], {"min": low, "max": high}, out=self.out(node))]


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return (a / b).astype(a.dtype)


# ONNX unary ops that are one registry op each, with the numpy function that
# folds them on constants (None: never folded).
_UNARY = {
    "Relu": ("relu", lambda a: np.maximum(a, 0).astype(a.dtype)),
    "Tanh": ("tanh", None),
    "Sigmoid": ("sigmoid", None),
    "Erf": ("erf", None),
    "Neg": ("neg", np.negative),
    "Sqrt": ("sqrt", np.sqrt),
    "Exp": ("exp", np.exp),
    "Log": ("log", np.log),
    "Abs": ("abs", np.abs),
    "Reciprocal": ("reciprocal", np.reciprocal),
    "IsNaN": ("isnan", np.isnan),
    "Not": ("bitwise_not", np.logical_not),
}


def _unary_handler(op_name, fold):
    def handler(self, node, ins, attrs):
        return self._unary(op_name, node, ins, fold=fold)
    return handler


for _onnx_op, (_op_name, _fold) in _UNARY.items():
    setattr(ElementwiseOps, f"_op_{_onnx_op}", _unary_handler(_op_name, _fold))
    declare(_onnx_op, ops=(_op_name,), takes="-")

for _onnx_op, (_op_name, _fold, _commutative) in ElementwiseOps._ARITHMETIC.items():
    if _onnx_op not in ("Max", "Min"):  # declared with their handler
        declare(_onnx_op, ops=(_op_name, "to") if _onnx_op == "Div" else (_op_name,), since=7,
                takes="numpy broadcasting; a one-element constant operand becomes ATen's Scalar argument"
                + ("; integer division truncates, as in ONNX" if _onnx_op == "Div" else ""))


# --- the model families' ops: rotary embeddings (Cos, Sin), position ids (CumSum), last-token pooling
# (ArgMax) -----------------------------------------------------------------------------------------
for _onnx_op, (_op_name, _fold) in {"Cos": ("cos", np.cos), "Sin": ("sin", np.sin)}.items():
    setattr(ElementwiseOps, f"_op_{_onnx_op}", _unary_handler(_op_name, _fold))
    declare(_onnx_op, ops=(_op_name,), takes="-")


@handles("CumSum", ops=("cumsum",), takes="a constant axis; not exclusive=1 nor reverse=1")
def _op_CumSum(self, node, ins, attrs):
    """CumSum along a constant axis, in the input's dtype (ATen's cumsum sums narrower integers as
    int64 unless told the dtype, so they are told)."""
    x, axis = ins[0], self.scalar(ins[1])
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise self._error("sums along an axis that is not a constant")
    for flag in ("exclusive", "reverse"):
        if attrs.get(flag):
            raise self._error(f"{flag}=1 (only the inclusive forward running sum is supported)")
    if isinstance(x, Const):
        return [self.const(np.cumsum(x.array, axis=axis).astype(x.array.dtype), node.output[0])]
    dtype = self.type_of(x).dtype
    extra = {"dtype": DType(dtype)} if dtype in ("int8", "int16", "int32", "uint8") else {}
    return [self.emit("cumsum", [x], {"dim": axis, **extra}, out=self.out(node))]


@handles("ArgMax", ops=("argmax",), takes="axis, keepdims; not select_last_index=1")
def _op_ArgMax(self, node, ins, attrs):
    """ArgMax taking the first maximum (ATen's argmax; select_last_index=1 is refused)."""
    if attrs.get("select_last_index"):
        raise self._error("select_last_index=1 (ATen's argmax takes the first maximum)")
    axis, keep = attrs.get("axis", 0), bool(attrs.get("keepdims", 1))
    if isinstance(ins[0], Const):
        result = np.argmax(ins[0].array, axis=axis)
        return [self.const(np.expand_dims(result, axis) if keep else result, node.output[0])]
    return [self.emit("argmax", [ins[0]], {"dim": axis, "keepdim": keep}, out=self.out(node))]


ElementwiseOps._op_CumSum = _op_CumSum
ElementwiseOps._op_ArgMax = _op_ArgMax
