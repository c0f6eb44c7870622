"""The op registry: every op the IR knows, registered once.

An op follows ATen semantics and is backed by one ATen overload. Its schema
(which arguments are tensor inputs, which are attributes, their types and
defaults) is read from that overload, so the frontend, the checker, the
lowering and `spec/ops.md` all agree by construction. Each entry also holds:

- the PyTorch implementation (the ATen overload itself, or a mode-aware
  module for ops whose behaviour follows train or eval mode);
- the type rule (ATen's meta kernels, run on symbolic sizes; see
  ``infer_types``);
- the ONNX lowering slot (filled by the ONNX interop work).

A tensor argument given as a constant scalar (``add(x, 1)``) is stored as an
attribute of the same name, with "" in its input slot; the lowering then uses
the op's Scalar overload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from .ir import DType, Sym, TensorType, default_format

aten = torch.ops.aten

_NO_DEFAULT = object()

# Arguments the IR never stores: placement and kernel-selection details, with
# the value the lowering passes where ATen has no default.
_DROPPED_VALUES = {"cudnn_enable": True, "cudnn_enabled": True, "non_blocking": False, "copy": False}
_ALWAYS_DROPPED = frozenset({"device", "layout", "pin_memory", "memory_format", *_DROPPED_VALUES})


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument of an op: maps to a slot of ``Node.inputs``."""

    name: str
    optional: bool
    variadic: bool  # a list of tensors; takes every remaining input slot


@dataclass(frozen=True)
class AttrSpec:
    """A constant argument of an op: maps to an entry of ``Node.attrs``."""

    name: str
    type: str  # ATen type, e.g. "float", "List[SymInt]", "Optional[ScalarType]"
    default: Any = _NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


@dataclass
class OpDef:
    """One registered op.

    ``training_flag`` names the ATen argument that follows the module mode
    (dropout's ``train``); ``eval_overrides`` are argument values forced in
    eval mode (scaled_dot_product_attention's ``dropout_p`` is 0 in eval).
    Ops with either are lowered to a small module so the module mode
    reaches them.
    """

    name: str
    aten: Any
    doc: str
    scalar_aten: Any = None
    training_flag: str | None = None
    eval_overrides: dict[str, Any] = field(default_factory=dict)
    onnx: Callable | None = None  # ONNX lowering slot
    tensor_args: tuple[TensorArg, ...] = ()
    attrs: tuple[AttrSpec, ...] = ()

    def __post_init__(self) -> None:
        tensors, attrs = [], []
        for arg in self.aten._schema.arguments:
            if arg.name in _ALWAYS_DROPPED or arg.name == self.training_flag:
                continue
            kind = str(arg.real_type)
            if kind in ("Tensor", "Optional[Tensor]"):
                tensors.append(TensorArg(arg.name, kind != "Tensor", False))
            elif kind in ("List[Tensor]", "List[Optional[Tensor]]"):
                tensors.append(TensorArg(arg.name, True, True))
            else:
                default = arg.default_value if arg.has_default_value() else _NO_DEFAULT
                if default is _NO_DEFAULT and kind.startswith("Optional["):
                    default = None
                attrs.append(AttrSpec(arg.name, kind, default))
        self.tensor_args = tuple(tensors)
        self.attrs = tuple(attrs)

    @property
    def mode_dependent(self) -> bool:
        return self.training_flag is not None or bool(self.eval_overrides)

    def attr_spec(self, name: str) -> AttrSpec | None:
        for spec in self.attrs:
            if spec.name == name:
                return spec
        return None

    def call_args(self, tensors: list[Any], attrs: dict[str, Any], resolve: Callable[[str], Any],
                  training: bool = False) -> tuple[Any, tuple, dict]:
        """Place ``tensors`` (one per input slot; None for "") and ``attrs`` per the
        ATen schema. Returns the overload to call with its args and kwargs.

        ``resolve`` turns a symbolic dim name into the size to use (an int
        or a graph node)."""
        slots: dict[str, Any] = {}
        fixed = [t for t in self.tensor_args if not t.variadic]
        for i, targ in enumerate(fixed):
            slots[targ.name] = tensors[i] if i < len(tensors) else None
        variadic = [t for t in self.tensor_args if t.variadic]
        if variadic:
            slots[variadic[0].name] = list(tensors[len(fixed):])
        overload = self.aten
        for name, value in attrs.items():
            if name in slots and slots[name] is None:
                overload = self.scalar_aten or self.aten  # constant in a tensor slot
            slots[name] = attr_to_torch(value, resolve)
        if self.training_flag:
            slots[self.training_flag] = training
        if not training:
            slots.update(self.eval_overrides)
        args, kwargs = [], {}
        for arg in overload._schema.arguments:
            if arg.name not in slots and arg.name in _DROPPED_VALUES and not arg.has_default_value():
                slots[arg.name] = _DROPPED_VALUES[arg.name]
            if arg.name not in slots:
                if arg.has_default_value() or str(arg.real_type).startswith("Optional["):
                    continue
                raise ValueError(f"op {self.name}: missing argument {arg.name}")
            if arg.kwarg_only:
                kwargs[arg.name] = slots[arg.name]
            elif len(args) == _positional_index(overload, arg.name):
                args.append(slots[arg.name])
            else:
                kwargs[arg.name] = slots[arg.name]
        return overload, tuple(args), kwargs


def _positional_index(overload, name: str) -> int:
    for i, arg in enumerate(overload._schema.arguments):
        if arg.name == name:
            return i
    raise KeyError(name)


def attr_to_torch(value: Any, resolve: Callable[[str], Any]) -> Any:
    """An IR attribute value as the ATen argument it stands for."""
    if isinstance(value, Sym):
        return resolve(value.name)
    if isinstance(value, DType):
        return getattr(torch, value.name)
    if isinstance(value, tuple):
        return [resolve(v) if isinstance(v, str) else v for v in value]
    return value


REGISTRY: dict[str, OpDef] = {}


def register(name: str, overload, doc: str, **kwargs) -> OpDef:
    if name in REGISTRY:
        raise ValueError(f"op {name} registered twice")
    op = OpDef(name, overload, doc, **kwargs)
    REGISTRY[name] = op
    return op


def get(name: str) -> OpDef:
    return REGISTRY[name]


# --- the op set -------------------------------------------------------------
# Linear algebra and layers
register("linear", aten.linear.default, "y = x @ weight.T + bias")
register("matmul", aten.matmul.default, "matrix product with broadcasting")
register("embedding", aten.embedding.default, "rows of weight picked by integer indices")
register("conv2d", aten.conv2d.default, "2-D convolution")
register("layer_norm", aten.layer_norm.default, "layer normalisation over the trailing dims")
register("batch_norm", aten.batch_norm.default,
         "batch normalisation; batch statistics in train mode, running statistics in eval mode",
         training_flag="training")
register("scaled_dot_product_attention", aten.scaled_dot_product_attention.default,
         "softmax(q @ k.T * scale + mask) @ v; dropout_p applies in train() only",
         eval_overrides={"dropout_p": 0.0})
register("dropout", aten.dropout.default, "zeroes elements with probability p in train mode; identity in eval mode",
         training_flag="train")
register("max_pool2d", aten.max_pool2d.default, "2-D max pooling")
register("avg_pool2d", aten.avg_pool2d.default, "2-D average pooling")
register("adaptive_avg_pool2d", aten.adaptive_avg_pool2d.default, "2-D average pooling to a fixed output size")
register("cross_entropy", aten.cross_entropy_loss.default, "cross-entropy loss of logits against class indices")

# Activations
register("relu", aten.relu.default, "max(x, 0)")
register("gelu", aten.gelu.default, "Gaussian error linear unit (exact or tanh approximation)")
register("tanh", aten.tanh.default, "hyperbolic tangent")
register("sigmoid", aten.sigmoid.default, "logistic function")
register("silu", aten.silu.default, "x * sigmoid(x)")
register("leaky_relu", aten.leaky_relu.default, "x if x > 0 else negative_slope * x")
register("hardtanh", aten.hardtanh.default, "clamp(x, min_val, max_val)")
register("softmax", aten.softmax.int, "softmax along dim")
register("log_softmax", aten.log_softmax.int, "log of softmax along dim")
register("erf", aten.erf.default, "Gauss error function")

# Elementwise arithmetic and comparison
register("add", aten.add.Tensor, "self + alpha * other", scalar_aten=aten.add.Scalar)
register("sub", aten.sub.Tensor, "self - alpha * other", scalar_aten=aten.sub.Scalar)
register("mul", aten.mul.Tensor, "self * other", scalar_aten=aten.mul.Scalar)
register("div", aten.div.Tensor, "self / other", scalar_aten=aten.div.Scalar)
register("pow", aten.pow.Tensor_Tensor, "self ** exponent", scalar_aten=aten.pow.Tensor_Scalar)
register("neg", aten.neg.default, "-self")
register("sqrt", aten.sqrt.default, "square root")
register("rsqrt", aten.rsqrt.default, "1 / sqrt(self)")
register("exp", aten.exp.default, "e ** self")
register("log", aten.log.default, "natural logarithm")
register("abs", aten.abs.default, "|self|")
register("reciprocal", aten.reciprocal.default, "1 / self")
register("maximum", aten.maximum.default, "elementwise max(self, other)")
register("minimum", aten.minimum.default, "elementwise min(self, other)")
register("clamp", aten.clamp.default, "self limited to [min, max] (either bound optional)")
register("eq", aten.eq.Tensor, "self == other", scalar_aten=aten.eq.Scalar)
register("ge", aten.ge.Tensor, "self >= other", scalar_aten=aten.ge.Scalar)
register("gt", aten.gt.Tensor, "self > other", scalar_aten=aten.gt.Scalar)
register("lt", aten.lt.Tensor, "self < other", scalar_aten=aten.lt.Scalar)
register("le", aten.le.Tensor, "self <= other", scalar_aten=aten.le.Scalar)
register("ne", aten.ne.Tensor, "self != other", scalar_aten=aten.ne.Scalar)
register("isnan", aten.isnan.default, "self != self (true where NaN)")
register("bitwise_and", aten.bitwise_and.Tensor, "self & other (logical and on bool)",
         scalar_aten=aten.bitwise_and.Scalar)
register("bitwise_or", aten.bitwise_or.Tensor, "self | other (logical or on bool)",
         scalar_aten=aten.bitwise_or.Scalar)
register("bitwise_not", aten.bitwise_not.default, "~self (logical not on bool)")
register("where", aten.where.self, "other where not condition, else self")
register("masked_fill", aten.masked_fill.Scalar, "self with value where mask is true")
register("to", aten.to.dtype, "self converted to dtype")

# Reductions
register("mean", aten.mean.dim, "mean over dims")
register("sum", aten.sum.dim_IntList, "sum over dims")

# Shape and indexing
register("reshape", aten.reshape.default, "same elements in a new shape (also torch's view)")
register("flatten", aten.flatten.using_ints, "merge dims start_dim..end_dim")
register("transpose", aten.transpose.int, "swap two dims")
register("permute", aten.permute.default, "reorder dims")
register("unsqueeze", aten.unsqueeze.default, "insert a dim of size 1")
register("squeeze", aten.squeeze.dim, "remove a dim of size 1")
register("expand", aten.expand.default, "broadcast to a larger shape without copying")
register("slice", aten.slice.Tensor, "elements start:end:step along dim")
register("select", aten.select.int, "one index along dim, removing it")
register("index", aten.index.Tensor, "advanced indexing by integer or bool tensors")
register("gather", aten.gather.default, "elements of self picked by index along dim")
register("cat", aten.cat.default, "concatenate along dim")

# Creation
register("arange", aten.arange.default, "0, 1, ..., end-1")
register("new_ones", aten.new_ones.default, "a tensor of ones of size, dtype defaulting to self's")
register("full", aten.full.default, "a tensor of size filled with fill_value")


# --- type rules ---------------------------------------------------------------
# The type rule of every op is its ATen meta kernel. Symbolic dims are given two
# different sets of small sizes (small, so range constraints such as
# seq <= max_position_embeddings hold); a result dim that follows the
# substitution is symbolic, one that stays fixed is a literal size, even when
# it happens to equal a substituted size.
_SENTINELS = ((11, 13, 17, 19, 23, 29, 31, 37, 41, 43),
              (12, 14, 18, 20, 24, 30, 32, 38, 42, 44))


class TypeRuleError(ValueError):
    """The inputs and attributes do not fit the op (message says why)."""


def infer_types(op: OpDef, input_types: list[TensorType | None], attrs: dict[str, Any]) -> list[TensorType]:
    """Output types of ``op`` applied to inputs of ``input_types``."""
    _check_dim_attrs(op, input_types, attrs)
    symbols = sorted({d for t in input_types if t for d in t.shape if isinstance(d, str)}
                     | {s for v in attrs.values() for s in _attr_symbols(v)})
    if len(symbols) > len(_SENTINELS[0]):
        raise TypeRuleError(f"too many symbolic dims: {symbols}")
    results = [_run_meta(op, input_types, attrs, dict(zip(symbols, sizes))) for sizes in _SENTINELS]
    types = []
    for out_a, out_b in zip(*results):
        shape = []
        for a, b in zip(out_a.shape, out_b.shape):
            if a == b:
                shape.append(int(a))
                continue
            name = next((s for s, i in zip(symbols, range(len(symbols)))
                         if _SENTINELS[0][i] == a and _SENTINELS[1][i] == b), None)
            if name is None:
                raise TypeRuleError(f"{op.name}: result dim is an expression of symbolic dims {symbols}")
            shape.append(name)
        dtype = str(out_a.dtype).removeprefix("torch.")
        types.append(TensorType(dtype, tuple(shape), default_format(dtype)))
    return types


# Attributes that index a dim of the op's first input. ATen's meta kernels check
# most of them, but not all (softmax's), so the type rule checks them itself.
_DIM_ATTRS = ("dim", "dim0", "dim1", "start_dim", "end_dim")


def _check_dim_attrs(op: OpDef, input_types, attrs: dict[str, Any]) -> None:
    first = input_types[0] if input_types else None
    if first is None:
        return
    rank = max(len(first.shape) + (op.name == "unsqueeze"), 1)  # unsqueeze may add a last dim
    for name in _DIM_ATTRS:
        value = attrs.get(name)
        for dim in value if isinstance(value, tuple) else (value,):
            if isinstance(dim, int) and not isinstance(dim, bool) and not -rank <= dim < rank:
                raise TypeRuleError(f"{op.name}: {name}={dim} is out of range for an input of rank "
                                    f"{len(first.shape)}")


def _attr_symbols(value: Any) -> Iterable[str]:
    if isinstance(value, Sym):
        yield value.name
    elif isinstance(value, tuple):
        yield from (v for v in value if isinstance(v, str))


def _run_meta(op: OpDef, input_types, attrs, sizes: dict[str, int]) -> list[torch.Tensor]:
    tensors = [None if t is None else
               torch.empty([sizes[d] if isinstance(d, str) else d for d in t.shape],
                           dtype=getattr(torch, t.dtype), device="meta")
               for t in input_types]
    overload, args, kwargs = op.call_args(tensors, attrs, lambda name: sizes[name])
    if any(a.name == "device" for a in overload._schema.arguments):
        kwargs["device"] = "meta"
    try:
        out = overload(*args, **kwargs)
    except Exception as exc:  # ATen's own message says what does not fit
        raise TypeRuleError(f"{op.name}: {str(exc).splitlines()[0]}") from None
    return list(out) if isinstance(out, (tuple, list)) else [out]


# --- documentation -------------------------------------------------------------
def markdown() -> str:
    """spec/ops.md: the op set as a table (regenerate: ``python -m maseir.ops > spec/ops.md``)."""
    from .lowering import onnx as _onnx_rules  # noqa: F401  (fills the ONNX column)
    out = ["# Mase IR op set", "",
           "Generated from the op registry (`maseir/ops.py`) by `python -m maseir.ops > spec/ops.md`;",
           "`tests/test_ops.py` fails when this file and the registry disagree.", "",
           "Every op follows the semantics of the ATen overload it names. Tensor inputs are",
           "`Node.inputs` in this order; attributes are `Node.attrs` (omitted when equal to the",
           "default). A tensor input given as a constant is stored as an attribute of the same",
           "name. *mode* ops follow the train/eval mode of the PyTorch lowering.", "",
           "| op | ATen | inputs | attributes | ONNX | meaning |",
           "|---|---|---|---|---|---|"]
    for op in REGISTRY.values():
        inputs = ", ".join(f"{t.name}{'...' if t.variadic else ''}{'?' if t.optional and not t.variadic else ''}"
                           for t in op.tensor_args)
        attrs = ", ".join(f"{a.name}: {a.type}" + ("" if a.required else f" = {_doc_default(a.default)}")
                          for a in op.attrs)
        aten_name = str(op.aten) + (f" / {op.scalar_aten}" if op.scalar_aten else "")
        mode = " *(mode)*" if op.mode_dependent else ""
        onnx = "yes" if op.onnx else "-"
        out.append(f"| `{op.name}`{mode} | `{aten_name}` | {inputs} | {attrs} | {onnx} | {op.doc} |")
    return "\n".join(out) + "\n"


def _doc_default(value: Any) -> str:
    return "None" if value is None else repr(value).replace("|", "\\|")


if __name__ == "__main__":
    # Run as a script this module is __main__; the ONNX rules fill the registry
    # of the imported maseir.ops, so print that one.
    from maseir.ops import markdown as _markdown
    print(_markdown(), end="")
