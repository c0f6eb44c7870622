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
from typing import Any, Callable

from . import symbolic
from ._spec import spec_text
from .ir import DType, SizeExpr, Sym, TensorType, default_format, is_symbolic

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

    def call_args(self, tensors: list[Any], attrs: dict[str, Any], resolve: Callable[[Any], Any],
                  training: bool = False) -> tuple[Any, tuple, dict]:
        """Place ``tensors`` (one per input slot; None for "") and ``attrs`` per the
        ATen schema. Returns the overload to call with its args and kwargs
        (resolving the overload imports torch).

        ``resolve`` turns a symbolic dim (a name or a SizeExpr) into the size
        to use (an int, a SymInt or a graph node)."""
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


def attr_to_torch(value: Any, resolve: Callable[[Any], Any]) -> Any:
    """An IR attribute value as the ATen argument it stands for; ``resolve`` turns a
    symbolic dim (a name or a SizeExpr) into a size."""
    if isinstance(value, Sym):
        return resolve(value.name)
    if isinstance(value, SizeExpr):
        return resolve(value)
    if isinstance(value, DType):
        import torch
        return getattr(torch, value.name)
    if isinstance(value, tuple):
        return [resolve(v) if is_symbolic(v) else v for v in value]
    return value


def attr_symbols(value: Any) -> frozenset[str]:
    """The symbol names an attribute value uses (a Sym, a SizeExpr, or a shape holding them)."""
    if isinstance(value, Sym):
        return frozenset((value.name,))
    if isinstance(value, SizeExpr):
        return symbolic.symbols(value)
    if isinstance(value, tuple):
        return frozenset().union(*(symbolic.symbols(v) for v in value if is_symbolic(v)))
    return frozenset()


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


# Ops the model families need (RoBERTa, GPT-2, Llama-shaped decoders, ViT, ResNet)
register("cumsum", "cumsum.default", "running sum along dim (RoBERTa's position ids)")
register("cos", "cos.default", "cosine (rotary embeddings)")
register("sin", "sin.default", "sine (rotary embeddings)")
register("argmax", "argmax.default", "index of the first maximum along dim (of the flattened input without dim)")
register("addmm", "addmm.default", "beta * self + alpha * (mat1 @ mat2) (GPT-2's Conv1D)")
register("split", "split.Tensor", "consecutive pieces of split_size along dim (the last may be smaller); "
         "one output per piece")

# --- type rules ---------------------------------------------------------------
# The type rule of every op is its ATen meta kernel, run on sizes:
#
# 1. Each symbol gets a size from each of two sentinel sets, dims and attributes
#    that are expressions are evaluated at those sizes, and the meta kernel runs
#    once per set (on the meta device: fast, no data).
# 2. A result dim with the same size under both sets is a literal size, even
#    when it happens to equal a substituted size. A result dim that follows the
#    substitution is the symbolic dim that takes the same two sizes among the
#    candidates: the symbols, the inputs' dims and the attributes' dims (what
#    elementwise ops, matmul, slicing to ``end=seq`` and reshapes to a stated
#    ``batch*seq`` give), then the products of runs of an input's dims (what
#    flatten and a reshape with -1 give).
# 3. Where no candidate matches (cat gives ``seq+1``, a strided convolution
#    ``(seq-1)//2+1``), two different ones do, or a candidate is constant at both
#    sets (``seq//64``) where the result dim did not change, the meta kernel runs
#    again on torch's symbolic sizes (FakeTensorMode with a ShapeEnv, as
#    torch.export does), which gives the expression itself. That costs some
#    milliseconds, so it is the fallback.
#
# The first set is distinct primes, so a product of different symbols (a product
# of primes) or a sum of two (an even number) never equals a symbol's size; the
# second is the first plus 16, so a floor division by up to 16 (a strided
# convolution's) differs between the sets. The sizes are small, so range
# constraints such as seq <= max_position_embeddings hold.
#
# Limits: a dim constant at both sets that no candidate explains is taken as
# literal, so a result that depends on a symbol only through a floor division by
# more than 16, and that no input or attribute states, reads as a constant; a
# symbolic size that is 0 or 1 at the sentinels (``seq//16``) meets
# ATen's broadcasting and size checks as 0 or 1; a node may use at most 10
# symbols; an expression outside SizeExpr's +, -, *, // (torch's Max, Min) is a
# TypeRuleError.
_SENTINELS = ((11, 13, 17, 19, 23, 29, 31, 37, 41, 43),
              (27, 29, 33, 35, 39, 45, 47, 53, 57, 59))
# Tried when the meta kernel refuses the sizes above: multiples of 8 of them, for models
# that need a size divisible by something (``view(batch, seq // 4, 4, -1)``).
_DIVISIBLE_SENTINELS = tuple(tuple(8 * n for n in sizes) for sizes in _SENTINELS)


class TypeRuleError(ValueError):
    """The inputs and attributes do not fit the op (message says why)."""


def infer_types(op: OpDef, input_types: list[TensorType | None], attrs: dict[str, Any]) -> list[TensorType]:
    """Output types of ``op`` applied to inputs of ``input_types`` (shapes may hold
    ints, symbols and SizeExprs; so may the attributes). Raises TypeRuleError when
    they do not fit the op, naming it."""
    _check_dim_attrs(op, input_types, attrs)
    symbols = sorted(frozenset().union(
        *(symbolic.symbols(d) for t in input_types if t for d in t.shape if is_symbolic(d)),
        *(attr_symbols(v) for v in attrs.values())))
    if len(symbols) > len(_SENTINELS[0]):
        raise TypeRuleError(f"too many symbolic dims: {symbols}")
    sentinels = _SENTINELS
    subs = [dict(zip(symbols, sizes)) for sizes in sentinels]
    try:
        results = [_run_meta(op, input_types, attrs, sizes) for sizes in subs]
    except TypeRuleError as first:
        if not symbols:
            raise
        sentinels = _DIVISIBLE_SENTINELS
        subs = [dict(zip(symbols, sizes)) for sizes in sentinels]
        try:
            results = [_run_meta(op, input_types, attrs, sizes) for sizes in subs]
        except TypeRuleError:
            raise first from None  # ATen's message at the first sizes says what does not fit
    candidates = _Candidates(input_types, attrs, subs) if symbols else None
    exact = None
    types = []
    for i, (out_a, out_b) in enumerate(zip(*results)):
        shape = []
        for j, (a, b) in enumerate(zip(out_a.shape, out_b.shape)):
            a, b = int(a), int(b)
            found = a if candidates is None else candidates.match(a, b)
            if found is None:
                if exact is None:
                    exact = _run_symbolic(op, input_types, attrs, symbols, sentinels[0])
                found = exact[i][j]
            shape.append(found)
        dtype = str(out_a.dtype).removeprefix("torch.")
        types.append(TensorType(dtype, tuple(shape), default_format(dtype)))
    return types


def shapes_agree(a: tuple, b: tuple) -> bool:
    """Whether two shapes are the same as far as the type rules can tell: equal dims,
    or dims that take the same sizes at both sets of one sentinel family (the type
    rules' sizes, or their multiples of 8): torch.export states a view to
    ``(seq//4, 4)`` as ``(seq//4, seq//(seq//4))``, which is 4 wherever the view is valid."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if not (is_symbolic(x) or is_symbolic(y)):
            return False
        names = sorted(frozenset().union(*(symbolic.symbols(d) for d in (x, y) if is_symbolic(d))))
        if len(names) > len(_SENTINELS[0]) or not any(_agree_at(x, y, names, family)
                                                      for family in (_SENTINELS, _DIVISIBLE_SENTINELS)):
            return False
    return True


def _agree_at(x, y, names: list[str], family) -> bool:
    try:
        return all(symbolic.evaluate(x, dict(zip(names, sizes))) == symbolic.evaluate(y, dict(zip(names, sizes)))
                   for sizes in family)
    except ValueError:  # a division by zero at these sizes
        return False


class _Candidates:
    """The symbolic dims a result dim may be, by their sizes under the two sentinel sets."""

    def __init__(self, input_types, attrs, subs):
        self.input_types, self.subs = input_types, subs
        dims = {d for t in input_types if t for d in t.shape if is_symbolic(d)}
        for value in attrs.values():
            if isinstance(value, (Sym, SizeExpr)):
                dims.add(value.name if isinstance(value, Sym) else value)
            elif isinstance(value, tuple):
                dims.update(v for v in value if is_symbolic(v))
        dims.update(s for s in subs[0])
        self.table = self._table(dims)
        self.products = None

    def _table(self, dims) -> dict[tuple[int, int], set]:
        table: dict[tuple[int, int], set] = {}
        for d in dims:
            try:
                key = tuple(symbolic.evaluate(d, sizes) for sizes in self.subs)
            except ValueError:  # a division by zero at the sentinels
                continue
            table.setdefault(key, set()).add(d)
        return table

    def match(self, a: int, b: int):
        """The result dim of sizes (a, b), or None where the sentinels cannot tell."""
        if a == b:
            return None if (a, b) in self.table else a
        found = self.table.get((a, b))
        if found is None:
            if self.products is None:
                self.products = self._table(self._run_products())
            found = self.products.get((a, b))
        return next(iter(found)) if found is not None and len(found) == 1 else None

    def _run_products(self) -> set:
        products = set()
        for t in self.input_types:
            if t is None:
                continue
            shape = t.shape
            for start in range(len(shape)):
                for end in range(start + 2, len(shape) + 1):
                    run = shape[start:end]
                    if any(is_symbolic(d) for d in run):
                        products.add(symbolic.mul(*run))
        return {p for p in products if is_symbolic(p)}


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


def _run_meta(op: OpDef, input_types, attrs, sizes: dict[str, int]) -> list:
    import torch

    def size(d):
        return symbolic.evaluate(d, sizes)

    try:
        tensors = [None if t is None else
                   torch.empty([size(d) for d in t.shape], dtype=getattr(torch, t.dtype), device="meta")
                   for t in input_types]
        overload, args, kwargs = op.call_args(tensors, attrs, size)
    except (ValueError, RuntimeError) as exc:  # an expression negative or dividing by zero at the sentinels
        raise TypeRuleError(f"{op.name}: {str(exc).splitlines()[0]}") from None
    if any(a.name == "device" for a in overload._schema.arguments):
        kwargs["device"] = "meta"
    try:
        out = overload(*args, **kwargs)
    except Exception as exc:  # ATen's own message says what does not fit
        raise TypeRuleError(f"{op.name}: {str(exc).splitlines()[0]}") from None
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _run_symbolic(op: OpDef, input_types, attrs, symbols: list[str], hints) -> list[tuple]:
    """The output shapes, as dims, from the meta kernel run on torch's symbolic sizes
    (``hints``: the sizes the kernel's size checks see)."""
    import operator

    import torch
    from torch._dynamo.source import ConstantSource
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv

    env = ShapeEnv()
    sizes, names = {}, {}
    for name, hint in zip(symbols, hints):
        sym = env.create_symbol(hint, source=ConstantSource(f"maseir_dim_{len(sizes)}"),
                                dynamic_dim=DimDynamic.DYNAMIC)
        sizes[name] = env.create_symintnode(sym, hint=hint)
        names[str(sym)] = name

    def size(d):
        return symbolic.fold(d, lambda x: sizes[x] if isinstance(x, str) else x,
                             operator.add, operator.sub, operator.mul, operator.floordiv)

    def dim(s):
        if not isinstance(s, torch.SymInt):
            return int(s)
        return symbolic.from_sympy(s.node.expr, names.__getitem__)

    try:
        with FakeTensorMode(shape_env=env, allow_non_fake_inputs=True):
            tensors = [None if t is None else torch.empty([size(d) for d in t.shape], dtype=getattr(torch, t.dtype))
                       for t in input_types]
            overload, args, kwargs = op.call_args(tensors, attrs, size)
            with _symbolic_kernels():
                out = overload(*args, **kwargs)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        fixed = sorted(names[str(s)] for s, e in env.replacements.items() if str(s) in names and e.is_number)
        if fixed:  # the kernel read a size as a number: its result holds only at the sentinels
            raise RuntimeError(f"its kernel fixes {', '.join(fixed)} to the sizes it was run at")
        return [tuple(dim(s) for s in o.shape) for o in outs]
    except Exception as exc:
        raise TypeRuleError(f"{op.name}: a result dim is an expression of symbolic dims {symbols} that the "
                            f"type rule cannot determine ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                            ) from None


def _symbolic_kernels():
    """A dispatch mode (for use under FakeTensorMode) that runs the ATen ops whose fake
    kernel reads symbolic sizes as numbers, so that its result would hold only at the sizes
    it ran at, as their Python references in ``torch._refs``, which keep them symbolic."""
    import torch
    import torch._refs
    from torch.utils._python_dispatch import TorchDispatchMode

    table = {torch.ops.aten.constant_pad_nd.default: torch._refs.constant_pad_nd}  # aten.pad's constant mode

    class SymbolicKernels(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return table.get(func, func)(*args, **(kwargs or {}))

    return SymbolicKernels()


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
