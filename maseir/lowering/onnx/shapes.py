"""ONNX rules for shape ops, indexing and tensor creation. Symbolic sizes in
their attributes are read at run time (``Lowering.shape``, ``Lowering.dim``)."""

from __future__ import annotations

from onnx import TensorProto

from ...ir import attr_dim
from .context import ONNX_DTYPES, RuleContext, _axis, _rank, _raw, _unsupported, onnx_rule

_INT64_MAX = 2**63 - 1


# --- shape and indexing ----------------------------------------------------------------
@onnx_rule("reshape")
def _reshape(ctx: RuleContext) -> None:
    shape = tuple(ctx.attr("shape"))
    allowzero = int(0 in shape and -1 not in shape)
    ctx.final("Reshape", [ctx.input("self"), ctx.low.shape(shape, ctx.node.name)], allowzero=allowzero)


@onnx_rule("flatten")
def _flatten(ctx: RuleContext) -> None:
    x, rank = ctx.input("self"), _rank(ctx.type("self"))
    if rank == 0:
        ctx.final("Reshape", [x, ctx.const([1], "int64", "shape")])
        return
    start, end = _axis(int(ctx.attr("start_dim")), rank), _axis(int(ctx.attr("end_dim")), rank)
    if start == end:
        ctx.identity(x)
    elif start == 1 and end == rank - 1:
        ctx.final("Flatten", [x], axis=1)
    else:
        parts = [ctx.emit("Shape", [x], end=start)] if start else []
        parts.append(ctx.const([-1], "int64", "minus_one"))
        if end < rank - 1:
            parts.append(ctx.emit("Shape", [x], start=end + 1))
        ctx.final("Reshape", [x, ctx.emit("Concat", parts, axis=0)])


@onnx_rule("transpose")
def _transpose(ctx: RuleContext) -> None:
    rank = _rank(ctx.type("self"))
    if rank < 2:
        ctx.identity(ctx.input("self"))
        return
    perm = list(range(rank))
    a, b = _axis(int(ctx.attr("dim0")), rank), _axis(int(ctx.attr("dim1")), rank)
    perm[a], perm[b] = perm[b], perm[a]
    ctx.final("Transpose", [ctx.input("self")], perm=perm)


@onnx_rule("permute")
def _permute(ctx: RuleContext) -> None:
    rank = _rank(ctx.type("self"))
    ctx.final("Transpose", [ctx.input("self")], perm=[_axis(int(d), rank) for d in ctx.attr("dims")])


@onnx_rule("unsqueeze")
def _unsqueeze(ctx: RuleContext) -> None:
    dim = _axis(int(ctx.attr("dim")), _rank(ctx.type("self")) + 1)
    ctx.final("Unsqueeze", [ctx.input("self"), ctx.const([dim], "int64", "axes")])


@onnx_rule("squeeze")
def _squeeze(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    if not xt.shape:
        ctx.identity(ctx.input("self"))
        return
    dim = _axis(int(ctx.attr("dim")), _rank(xt))
    if xt.shape[dim] == 1:
        ctx.final("Squeeze", [ctx.input("self"), ctx.const([dim], "int64", "axes")])
    else:  # ATen leaves a dim that is not 1 in place (symbolic dims are never 1, as in the type rule)
        ctx.identity(ctx.input("self"))


@onnx_rule("expand")
def _expand(ctx: RuleContext) -> None:
    xt = ctx.type("self")
    size = list(ctx.attr("size"))
    offset = len(size) - _rank(xt)
    for i, d in enumerate(size):
        if d == -1:  # keep the input's size there
            size[i] = xt.shape[i - offset]
    ctx.final("Expand", [ctx.input("self"), ctx.low.shape(size, ctx.node.name)])


@onnx_rule("slice")
def _slice(ctx: RuleContext) -> None:
    def bound(value, default: int) -> str:
        if value is None:
            return ctx.const([default], "int64", "bound")
        if attr_dim(value) is not None:
            return ctx.low.dim(attr_dim(value))
        return ctx.const([int(value)], "int64", "bound")

    xt = ctx.type("self")
    dim = _axis(int(ctx.attr("dim")), _rank(xt))
    inputs = [ctx.input("self"), bound(ctx.attr("start"), 0), bound(ctx.attr("end"), _INT64_MAX),
              ctx.const([dim], "int64", "axes"), ctx.const([int(ctx.attr("step"))], "int64", "steps")]
    size = ctx.out_type.shape[dim]
    bound_dims = all(d in ctx.low.graph.dims for d in ctx.out_type.shape if isinstance(d, str))
    if isinstance(size, str) and isinstance(xt.shape[dim], int) and bound_dims:
        # x[:seq] of a fixed-size buffer is seq long by the IR's type rule (seq never passes the
        # buffer); ONNX shape inference can only say min(size, seq), which then fails to
        # broadcast against seq (ONNX Runtime's symbolic shape inference, quant_pre_process).
        # The Reshape to the IR's shape states it, and checks it at run time.
        sliced = ctx.emit("Slice", inputs)
        ctx.final("Reshape", [sliced, ctx.low.shape(ctx.out_type.shape, ctx.node.name)])
        return
    ctx.final("Slice", inputs)


@onnx_rule("select")
def _select(ctx: RuleContext) -> None:
    index = ctx.attr("index")
    index = ctx.low.scalar(index, "int64", f"{ctx.node.name}/index")
    ctx.final("Gather", [ctx.input("self"), index], axis=int(ctx.attr("dim")))


@onnx_rule("index")
def _index(ctx: RuleContext) -> None:
    """Advanced indexing by integer tensors (ATen's placement of the indexed dims)."""
    xt = ctx.type("self")
    rank = _rank(xt)
    present = [i for i, name in enumerate(ctx.variadic) if name]
    if not present:
        ctx.identity(ctx.input("self"))
        return
    indices = []
    for i in present:
        t = ctx.value_type(ctx.variadic[i])
        if t.dtype == "bool":
            raise _unsupported(ctx, "by a bool mask (a data-dependent shape)")
        indices.append(ctx.cast(ctx.low.value(ctx.variadic[i]), t.dtype, "int64"))
    order = present + [d for d in range(rank) if d not in present]
    x = ctx.input("self")
    if order != list(range(rank)):
        x = ctx.emit("Transpose", [x], perm=order)
    first = present[0]
    # ATen keeps the indexed dims where they were when they are adjacent, else puts them first.
    back = present == list(range(first, first + len(present))) and first > 0
    emit = ctx.emit if back else ctx.final
    if len(indices) == 1:
        out = emit("Gather", [x, indices[0]], axis=0)
    else:
        total = indices[0]
        for i in indices[1:]:
            total = ctx.emit("Add", [total, i])
        shape = ctx.emit("Shape", [total])
        last = ctx.const([-1], "int64", "axes")
        stacked = ctx.emit("Concat", [ctx.emit("Unsqueeze", [ctx.emit("Expand", [i, shape]), last])
                                      for i in indices], axis=-1)
        out = emit("GatherND", [x, stacked])
    if back:
        n_b = _rank(ctx.out_type) - (rank - len(present))
        perm = list(range(n_b, n_b + first)) + list(range(n_b)) + list(range(n_b + first, _rank(ctx.out_type)))
        ctx.final("Transpose", [out], perm=perm)


@onnx_rule("gather")
def _gather(ctx: RuleContext) -> None:
    xt, it = ctx.type("self"), ctx.type("index")
    dim = _axis(int(ctx.attr("dim")), _rank(xt))
    x = ctx.input("self")
    if any(a != b for i, (a, b) in enumerate(zip(xt.shape, it.shape)) if i != dim):
        # ATen reads only self[:index.size(0), ...] off the gather dim; GatherElements wants equal sizes.
        axes = [i for i in range(_rank(xt)) if i != dim]
        ends = ctx.emit("Gather", [ctx.emit("Shape", [ctx.input("index")]), ctx.const(axes, "int64", "axes")])
        x = ctx.emit("Slice", [x, ctx.const([0] * len(axes), "int64", "starts"), ends,
                               ctx.const(axes, "int64", "axes")])
    ctx.final("GatherElements", [x, ctx.input("index")], axis=dim)


@onnx_rule("cat")
def _cat(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    rank = _rank(ctx.out_type)
    inputs = []
    for name in ctx.variadic:
        t = ctx.value_type(name)
        if rank > 1 and t.shape == (0,):  # ATen's legacy: empty 1-D tensors are skipped
            continue
        inputs.append(ctx.cast(ctx.low.value(name), t.dtype, dtype))
    ctx.final("Concat", inputs, axis=int(ctx.attr("dim")))


# --- creation -----------------------------------------------------------------------------
@onnx_rule("arange")
def _arange(ctx: RuleContext) -> None:
    dtype = ctx.out_type.dtype
    end = ctx.low.scalar(ctx.attr("end"), dtype, f"{ctx.node.name}/end")
    ctx.final("Range", [ctx.const(0, dtype, "start"), end, ctx.const(1, dtype, "step")])


def _fill(ctx: RuleContext, value) -> None:
    dtype = ctx.out_type.dtype
    shape = ctx.low.shape(ctx.attr("size"), ctx.node.name)
    if attr_dim(value) is not None:
        ctx.final("Expand", [ctx.low.scalar(value, dtype, ""), shape])
        return
    _, raw = _raw([value], dtype)
    fill = TensorProto(data_type=ONNX_DTYPES[dtype], dims=[1], raw_data=raw, name="value")
    ctx.final("ConstantOfShape", [shape], value=fill)


@onnx_rule("new_ones")
def _new_ones(ctx: RuleContext) -> None:
    _fill(ctx, 1)


@onnx_rule("full")
def _full(ctx: RuleContext) -> None:
    _fill(ctx, ctx.attr("fill_value"))


@onnx_rule("split")
def _split(ctx: RuleContext) -> None:
    """Split into the IR node's outputs, sized as ATen sizes them (every piece split_size, the last
    what is left)."""
    sizes = [t.type.shape[_axis(int(ctx.attr("dim")), _rank(ctx.type("self")))] for t in ctx.node.outputs]
    if not all(isinstance(s, int) for s in sizes):
        raise _unsupported(ctx, "along a symbolic dim")
    dim = int(ctx.attr("dim"))
    ctx.final("Split", [ctx.input("self"), ctx.const(sizes, "int64", "split")], axis=dim)


@onnx_rule("flip")
def _flip(ctx: RuleContext) -> None:
    """Slice with step -1 from the last element to before the first, along each dim."""
    rank = _rank(ctx.type("self"))
    dims = [_axis(int(d), rank) for d in ctx.attr("dims")]
    if not dims:
        ctx.identity(ctx.input("self"))
        return
    n = len(dims)
    ctx.final("Slice", [ctx.input("self"), ctx.const([-1] * n, "int64", "starts"),
                        ctx.const([-_INT64_MAX - 1] * n, "int64", "ends"), ctx.const(dims, "int64", "axes"),
                        ctx.const([-1] * n, "int64", "steps")])


@onnx_rule("zeros")
def _zeros(ctx: RuleContext) -> None:
    _fill(ctx, 0)
