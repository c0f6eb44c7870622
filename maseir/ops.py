"""The op registry: every op the IR knows, registered once.

An op follows ATen semantics and is backed by one ATen overload. Its schema
(which arguments are tensor inputs, which are attributes, their types and
defaults) is ATen's schema of that overload, so the frontend, the checker, the
lowering and `spec/ops.md` all agree by construction. The schemas are read
from ``spec/ops.json``, a copy of ATen's generated from the registry
(``python -m maseir.ops --schemas > spec/ops.json``; ``tests/test_ops.py``
fails when it drifts from the installed torch), so reading, showing and
checking the structure of a graph never imports torch. Each entry also holds:

- the PyTorch implementation (the ATen overload itself, resolved on first
  use, or a mode-aware module for ops whose behaviour follows train or eval
  mode);
- the type rule (ATen's meta kernels, run on symbolic sizes; see
  ``infer_types``, which imports torch);
- the ONNX lowering slot (filled by ``maseir.lowering.onnx``).

A tensor argument given as a constant scalar (``add(x, 1)``) is stored as an
attribute of the same name, with "" in its input slot; the lowering then uses
the op's Scalar overload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable

from ._spec import spec_text
from .ir import DType, Sym, TensorType, default_format

_NO_DEFAULT = object()

# Arguments the IR never stores: placement and kernel-selection details, with
# the value the lowering passes where ATen has no default.
_DROPPED_VALUES = {"cudnn_enable": True, "cudnn_enabled": True, "non_blocking": False, "copy": False}
_ALWAYS_DROPPED = frozenset({"device", "layout", "pin_memory", "memory_format", *_DROPPED_VALUES})
ALWAYS_DROPPED = _ALWAYS_DROPPED
"""Argument names the IR never stores (placement and kernel selection)."""


@dataclass(frozen=True)
class SchemaArg:
    """One argument of an ATen overload's schema, as ``spec/ops.json`` records it."""

    name: str
    type: str          # ATen type, e.g. "Tensor", "Optional[Tensor]", "List[int]", "float"
    kwarg_only: bool = False
    has_default: bool = False
    default: Any = None

    @staticmethod
    def from_json(entry: dict) -> SchemaArg:
        return SchemaArg(entry["name"], entry["type"], entry.get("kwarg_only", False),
                         "default" in entry, entry.get("default"))


@lru_cache(maxsize=1)
def _schema_file() -> dict[str, list[dict]]:
    return json.loads(spec_text("ops.json"))


def overload_schema(overload: str) -> tuple[SchemaArg, ...]:
    """The arguments of ATen overload ``overload`` (``"linear.default"``), from
    spec/ops.json; an overload not recorded there yet is read from torch."""
    entries = _schema_file().get(overload)
    if entries is None:  # a newly registered op before spec/ops.json is regenerated
        entries = aten_schema_json(overload)
    return tuple(SchemaArg.from_json(e) for e in entries)


def aten_overload(overload: str):
    """The torch OpOverload ``torch.ops.aten.<overload>`` (imports torch)."""
    import torch
    packet, _, name = overload.partition(".")
    return getattr(getattr(torch.ops.aten, packet), name)


def aten_schema_json(overload: str) -> list[dict]:
    """ATen's schema of ``overload`` as the JSON entries spec/ops.json holds (imports torch)."""
    entries = []
    for arg in aten_overload(overload)._schema.arguments:
        entry: dict[str, Any] = {"name": arg.name, "type": str(arg.real_type)}
        if arg.kwarg_only:
            entry["kwarg_only"] = True
        if arg.has_default_value():
            entry["default"] = arg.default_value
        entries.append(entry)
    return entries


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument of an op: maps to a slot of ``Node.inputs``.

    An ATen list argument of a fixed length (lstm's ``hx``: h0 and c0) takes one
    slot per entry, named ``hx[0]``, ``hx[1]``, ...; ``group`` is then the ATen
    argument (``hx``) the lowering passes them to as a list."""

    name: str
    optional: bool
    variadic: bool  # a list of tensors; takes every remaining input slot
    group: str | None = None


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

    ``aten_name`` and ``scalar_name`` name ATen overloads (``"add.Tensor"``,
    ``"add.Scalar"``); ``aten`` and ``scalar_aten`` are those overloads
    (resolved on first use; that imports torch). ``training_flag`` names the
    ATen argument that follows the module mode (dropout's ``train``);
    ``eval_overrides`` are argument values forced in eval mode
    (scaled_dot_product_attention's ``dropout_p`` is 0 in eval). Ops with
    either are lowered to a small module so the module mode reaches them.
    """

    name: str
    aten_name: str
    doc: str
    scalar_name: str | None = None
    training_flag: str | None = None
    eval_overrides: dict[str, Any] = field(default_factory=dict)
    onnx: Callable | None = None  # ONNX lowering slot
    list_lengths: dict[str, int] = field(default_factory=dict)  # fixed-length tensor lists (lstm's hx: 2)
    tensor_args: tuple[TensorArg, ...] = ()
    attrs: tuple[AttrSpec, ...] = ()

    def __post_init__(self) -> None:
        tensors, attrs = [], []
        for arg in self.schema():
            if arg.name in _ALWAYS_DROPPED or arg.name == self.training_flag:
                continue
            kind = arg.type
            if kind in ("Tensor", "Optional[Tensor]"):
                tensors.append(TensorArg(arg.name, kind != "Tensor", False))
            elif kind == "List[Tensor]" and arg.name in self.list_lengths:
                tensors += [TensorArg(f"{arg.name}[{i}]", False, False, arg.name)
                            for i in range(self.list_lengths[arg.name])]
            elif kind in ("List[Tensor]", "List[Optional[Tensor]]"):
                tensors.append(TensorArg(arg.name, True, True))
            else:
                default = arg.default if arg.has_default else _NO_DEFAULT
                if default is _NO_DEFAULT and kind.startswith("Optional["):
                    default = None
                attrs.append(AttrSpec(arg.name, kind, default))
        self.tensor_args = tuple(tensors)
        self.attrs = tuple(attrs)

    def schema(self, scalar: bool = False) -> tuple[SchemaArg, ...]:
        """The arguments of the op's ATen overload (or of its Scalar overload)."""
        return overload_schema(self.scalar_name if scalar and self.scalar_name else self.aten_name)

    @property
    def aten(self):
        return aten_overload(self.aten_name)

    @property
    def scalar_aten(self):
        return aten_overload(self.scalar_name) if self.scalar_name else None

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
        ATen schema. Returns the overload to call with its args and kwargs
        (resolving the overload imports torch).

        ``resolve`` turns a symbolic dim name into the size to use (an int
        or a graph node)."""
        slots: dict[str, Any] = {}
        fixed = [t for t in self.tensor_args if not t.variadic]
        for i, targ in enumerate(fixed):
            value = tensors[i] if i < len(tensors) else None
            if targ.group is not None:
                slots.setdefault(targ.group, []).append(value)
            else:
                slots[targ.name] = value
        variadic = [t for t in self.tensor_args if t.variadic]
        if variadic:
            slots[variadic[0].name] = list(tensors[len(fixed):])
        scalar = False
        for name, value in attrs.items():
            if name in slots and slots[name] is None:
                scalar = self.scalar_name is not None  # constant in a tensor slot
            slots[name] = attr_to_torch(value, resolve)
        if self.training_flag:
            slots[self.training_flag] = training
        if not training:
            slots.update(self.eval_overrides)
        args, kwargs = [], {}
        schema = self.schema(scalar)
        for position, arg in enumerate(schema):
            if arg.name not in slots and arg.name in _DROPPED_VALUES and not arg.has_default:
                slots[arg.name] = _DROPPED_VALUES[arg.name]
            if arg.name not in slots:
                if arg.has_default:
                    continue
                if not arg.type.startswith("Optional["):
                    raise ValueError(f"op {self.name}: missing argument {arg.name}")
                slots[arg.name] = None  # optional but without a default (upsample's output_size)
            if arg.kwarg_only:
                kwargs[arg.name] = slots[arg.name]
            elif len(args) == position:
                args.append(slots[arg.name])
            else:
                kwargs[arg.name] = slots[arg.name]
        overload = self.scalar_aten if scalar else self.aten
        return overload, tuple(args), kwargs


def attr_to_torch(value: Any, resolve: Callable[[str], Any]) -> Any:
    """An IR attribute value as the ATen argument it stands for."""
    if isinstance(value, Sym):
        return resolve(value.name)
    if isinstance(value, DType):
        import torch
        return getattr(torch, value.name)
    if isinstance(value, tuple):
        return [resolve(v) if isinstance(v, str) else v for v in value]
    return value


REGISTRY: dict[str, OpDef] = {}


def register(name: str, overload: str, doc: str, *, scalar: str | None = None, **kwargs) -> OpDef:
    """Add op ``name`` backed by ATen overload ``overload`` (``"linear.default"``);
    ``scalar`` names the overload used when a tensor argument is a constant."""
    if name in REGISTRY:
        raise ValueError(f"op {name} registered twice")
    op = OpDef(name, overload, doc, scalar_name=scalar, **kwargs)
    REGISTRY[name] = op
    return op


def get(name: str) -> OpDef:
    return REGISTRY[name]


# --- the op set -------------------------------------------------------------
# Linear algebra and layers
register("linear", "linear.default", "y = x @ weight.T + bias")
register("matmul", "matmul.default", "matrix product with broadcasting")
register("embedding", "embedding.default", "rows of weight picked by integer indices")
register("conv2d", "conv2d.default", "2-D convolution")
register("layer_norm", "layer_norm.default", "layer normalisation over the trailing dims")
register("batch_norm", "batch_norm.default",
         "batch normalisation; batch statistics in train mode, running statistics in eval mode",
         training_flag="training")
register("scaled_dot_product_attention", "scaled_dot_product_attention.default",
         "softmax(q @ k.T * scale + mask) @ v; dropout_p applies in train() only",
         eval_overrides={"dropout_p": 0.0})
register("dropout", "dropout.default", "zeroes elements with probability p in train mode; identity in eval mode",
         training_flag="train")
register("max_pool2d", "max_pool2d.default", "2-D max pooling")
register("avg_pool2d", "avg_pool2d.default", "2-D average pooling")
register("adaptive_avg_pool2d", "adaptive_avg_pool2d.default", "2-D average pooling to a fixed output size")
register("cross_entropy", "cross_entropy_loss.default", "cross-entropy loss of logits against class indices")

# Activations
register("relu", "relu.default", "max(x, 0)")
register("gelu", "gelu.default", "Gaussian error linear unit (exact or tanh approximation)")
register("tanh", "tanh.default", "hyperbolic tangent")
register("sigmoid", "sigmoid.default", "logistic function")
register("silu", "silu.default", "x * sigmoid(x)")
register("leaky_relu", "leaky_relu.default", "x if x > 0 else negative_slope * x")
register("hardtanh", "hardtanh.default", "clamp(x, min_val, max_val)")
register("softmax", "softmax.int", "softmax along dim")
register("log_softmax", "log_softmax.int", "log of softmax along dim")
register("erf", "erf.default", "Gauss error function")

# Elementwise arithmetic and comparison
register("add", "add.Tensor", "self + alpha * other", scalar="add.Scalar")
register("sub", "sub.Tensor", "self - alpha * other", scalar="sub.Scalar")
register("mul", "mul.Tensor", "self * other", scalar="mul.Scalar")
register("div", "div.Tensor", "self / other", scalar="div.Scalar")
register("pow", "pow.Tensor_Tensor", "self ** exponent", scalar="pow.Tensor_Scalar")
register("neg", "neg.default", "-self")
register("sqrt", "sqrt.default", "square root")
register("rsqrt", "rsqrt.default", "1 / sqrt(self)")
register("exp", "exp.default", "e ** self")
register("log", "log.default", "natural logarithm")
register("abs", "abs.default", "|self|")
register("reciprocal", "reciprocal.default", "1 / self")
register("maximum", "maximum.default", "elementwise max(self, other)")
register("minimum", "minimum.default", "elementwise min(self, other)")
register("clamp", "clamp.default", "self limited to [min, max] (either bound optional)")
register("eq", "eq.Tensor", "self == other", scalar="eq.Scalar")
register("ge", "ge.Tensor", "self >= other", scalar="ge.Scalar")
register("gt", "gt.Tensor", "self > other", scalar="gt.Scalar")
register("lt", "lt.Tensor", "self < other", scalar="lt.Scalar")
register("le", "le.Tensor", "self <= other", scalar="le.Scalar")
register("ne", "ne.Tensor", "self != other", scalar="ne.Scalar")
register("isnan", "isnan.default", "self != self (true where NaN)")
register("bitwise_and", "bitwise_and.Tensor", "self & other (logical and on bool)",
         scalar="bitwise_and.Scalar")
register("bitwise_or", "bitwise_or.Tensor", "self | other (logical or on bool)",
         scalar="bitwise_or.Scalar")
register("bitwise_not", "bitwise_not.default", "~self (logical not on bool)")
register("where", "where.self", "other where not condition, else self")
register("masked_fill", "masked_fill.Scalar", "self with value where mask is true")
register("to", "to.dtype", "self converted to dtype")
register("quantize", "clone.default", "self rounded to its output value's number format (maseir/formats.py): "
         "the quantize step of a fixed-point or dynamic activation; an identity in a float format")

# Reductions
register("mean", "mean.dim", "mean over dims")
register("sum", "sum.dim_IntList", "sum over dims")

# Shape and indexing
register("reshape", "reshape.default", "same elements in a new shape (also torch's view)")
register("flatten", "flatten.using_ints", "merge dims start_dim..end_dim")
register("transpose", "transpose.int", "swap two dims")
register("permute", "permute.default", "reorder dims")
register("unsqueeze", "unsqueeze.default", "insert a dim of size 1")
register("squeeze", "squeeze.dim", "remove a dim of size 1")
register("expand", "expand.default", "broadcast to a larger shape without copying")
register("slice", "slice.Tensor", "elements start:end:step along dim")
register("select", "select.int", "one index along dim, removing it")
register("index", "index.Tensor", "advanced indexing by integer or bool tensors")
register("gather", "gather.default", "elements of self picked by index along dim")
register("cat", "cat.default", "concatenate along dim")

# Creation
register("arange", "arange.default", "0, 1, ..., end-1")
register("new_ones", "new_ones.default", "a tensor of ones of size, dtype defaulting to self's")
register("full", "full.default", "a tensor of size filled with fill_value")

# Padding, resampling, transposed convolution and recurrent layers (what common
# exporters write: Pad, Resize, ConvTranspose, HardSigmoid, negative-step Slice, LSTM, GRU)
register("pad", "pad.default",
         "self padded by pad (before, after) pairs from the last dim backwards; mode constant (fill value, "
         "default 0), reflect, replicate or circular")
register("upsample_nearest2d", "upsample_nearest2d.vec",
         "nearest-neighbour resize of the last two dims to output_size or by scale_factors "
         "(source index floor(dst / scale))")
register("upsample_bilinear2d", "upsample_bilinear2d.vec",
         "bilinear resize of the last two dims to output_size or by scale_factors (half-pixel centres, "
         "or corner-aligned with align_corners)")
register("conv_transpose2d", "conv_transpose2d.input",
         "2-D transposed convolution (the gradient of conv2d with respect to its input); weight (in, out/groups, kh, kw)")
register("hardsigmoid", "hardsigmoid.default", "clamp(x / 6 + 1/2, 0, 1)")
register("flip", "flip.default", "self reversed along dims")
register("zeros", "zeros.default", "a tensor of size filled with zeros")
register("lstm", "lstm.input",
         "multi-layer LSTM over input (seq, batch, in), or (batch, seq, in) with batch_first, from hx[0] = h0 and "
         "hx[1] = c0 (layers*dirs, batch, hidden); params per layer and direction: w_ih, w_hh (4*hidden rows, "
         "gates i, f, g, o), then b_ih, b_hh with has_biases; outputs (output, h_n, c_n); dropout between layers "
         "in train() only", training_flag="train", list_lengths={"hx": 2})
register("gru", "gru.input",
         "multi-layer GRU over input (seq, batch, in), or (batch, seq, in) with batch_first, from hx "
         "(layers*dirs, batch, hidden); params per layer and direction: w_ih, w_hh (3*hidden rows, gates r, z, n), "
         "then b_ih, b_hh with has_biases; outputs (output, h_n); dropout between layers in train() only",
         training_flag="train")


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


def _run_meta(op: OpDef, input_types, attrs, sizes: dict[str, int]) -> list:
    import torch

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
        aten_name = f"aten.{op.aten_name}" + (f" / aten.{op.scalar_name}" if op.scalar_name else "")
        mode = " *(mode)*" if op.mode_dependent else ""
        onnx = "yes" if op.onnx else "-"
        out.append(f"| `{op.name}`{mode} | `{aten_name}` | {inputs} | {attrs} | {onnx} | {op.doc} |")
    return "\n".join(out) + "\n"


def _doc_default(value: Any) -> str:
    return "None" if value is None else repr(value).replace("|", "\\|")


def schemas_json() -> str:
    """spec/ops.json: ATen's schema of every registered overload, read from the
    installed torch (regenerate: ``python -m maseir.ops --schemas > spec/ops.json``)."""
    names = sorted({n for op in REGISTRY.values() for n in (op.aten_name, op.scalar_name) if n})
    overloads = []
    for n in names:  # one line per argument, so a schema change is a one-line diff
        args = ",\n".join("  " + json.dumps(entry) for entry in aten_schema_json(n))
        overloads.append(f" {json.dumps(n)}: [\n{args}\n ]")
    return "{\n" + ",\n".join(overloads) + "\n}\n"


if __name__ == "__main__":
    # Run as a script this module is __main__; the ONNX rules fill the registry
    # of the imported maseir.ops, so print that one.
    import sys

    from maseir.ops import markdown as _markdown, schemas_json as _schemas_json
    print(_schemas_json() if "--schemas" in sys.argv[1:] else _markdown(), end="")
