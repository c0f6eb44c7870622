"""Importer handlers for shapes, constants, indexing and data movement: Shape,
Constant, Reshape, Transpose, (Un)Squeeze, Expand, Concat, Split, Slice, Gather.
What is computed from shapes stays a size vector or a constant; a reshape that
merges symbolic dims gives a tensor whose dim is their product (``batch*seq``)."""

from __future__ import annotations

import numpy as np

from ... import ops, symbolic
from ...ir import DType, dim_attr
from .handlers import handles
from .values import Const, Sizes, _python_scalar, _sizes

_INT64_MAX = 2**63 - 1


class ShapeOps:
    """Mixed into the importer: the ``_op_<OpType>`` handlers of shape and indexing ops."""

    @handles("Shape", ops=(), takes="start, end (opset 15); a size vector folded into the ops that read it")
    def _op_Shape(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        start, end = _shape_range(attrs, len(shape))
        return [_sizes(shape[start:end])]

    @handles("Size", ops=(), takes="a size, or a size expression of symbolic dims (batch*seq)")
    def _op_Size(self, node, ins, attrs):
        return [_sizes((symbolic.mul(*self.type_of(ins[0]).shape),), scalar=True)]

    @handles("Constant", ops=(), takes="value, value_float(s), value_int(s)")
    def _op_Constant(self, node, ins, attrs):
        if "value" in attrs:
            array = attrs["value"]
        elif "value_float" in attrs:
            array = np.array(attrs["value_float"], dtype=np.float32)
        elif "value_int" in attrs:
            array = np.array(attrs["value_int"], dtype=np.int64)
        elif "value_floats" in attrs:
            array = np.array(attrs["value_floats"], dtype=np.float32)
        elif "value_ints" in attrs:
            array = np.array(attrs["value_ints"], dtype=np.int64)
        else:
            raise self._error(f"constant kind {sorted(attrs)} is not supported")
        return [self.const(array, node.output[0])]

    @handles("ConstantOfShape", ops=("full",), since=9, takes="value; the shape a constant or computed from shapes")
    def _op_ConstantOfShape(self, node, ins, attrs):
        value = attrs.get("value", np.zeros(1, dtype=np.float32))
        sizes = self.sizes(ins[0], "the shape")
        if all(isinstance(d, int) for d in sizes) and int(np.prod(sizes)) <= 4096:
            return [self.const(np.full(sizes, value.reshape(-1)[0], dtype=value.dtype), node.output[0])]
        dtype = "bool" if value.dtype == np.bool_ else value.dtype.name
        return [self.emit("full", [], {"size": tuple(sizes), "fill_value": _python_scalar(value),
                                       "dtype": DType(dtype)}, out=self.out(node))]

    @handles("Range", ops=("arange",), since=11, takes="constants, or 0 to a symbolic size by 1")
    def _op_Range(self, node, ins, attrs):
        start, limit, delta = ins
        if all(isinstance(v, Const) for v in ins):
            return [self.const(np.arange(start.array, limit.array, delta.array).astype(start.array.dtype),
                               node.output[0])]
        if self.scalar(start) != 0 or self.scalar(delta) != 1:
            raise self._error("a range that does not start at 0 with step 1 over a symbolic size")
        end = self.scalar(limit)
        if end is None:
            raise self._error("a range whose length is computed from tensor data")
        dtype = self.type_of(start).dtype
        return [self.emit("arange", [], {"end": end, "dtype": DType(dtype)}, out=self.out(node))]

    @handles("Reshape", ops=("reshape",), since=5,
             takes="allowzero; the shape a constant or computed from shapes (merged symbolic dims are size "
                   "expressions, batch*seq)")
    def _op_Reshape(self, node, ins, attrs):
        x, target = ins
        target = self.sizes(target, "the target shape")
        if isinstance(x, (Const, Sizes)) and all(isinstance(d, int) for d in target):
            if isinstance(x, Sizes):
                return [_sizes(x.items, scalar=len(target) == 0)]
            return [self.const(x.array.reshape(target), node.output[0], x.weight)]
        shape = self.type_of(x).shape
        if not attrs.get("allowzero"):
            target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        if tuple(target) == tuple(shape):
            return [x]
        if target.count(-1) == 1 and len(target) == len(shape) and all(
                t == s or t == -1 for t, s in zip(target, shape)):
            return [x]
        return [self.emit("reshape", [x], {"shape": tuple(target)}, out=self.out(node))]

    @handles("Flatten", ops=("flatten", "reshape"), takes="axis")
    def _op_Flatten(self, node, ins, attrs):
        """2-D: the dims before ``axis`` merged, and those from it (a product of symbolic dims
        is a size expression, ``batch*seq``)."""
        x = ins[0]
        shape = self.type_of(x).shape
        axis = attrs.get("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        lead, tail = symbolic.mul(*shape[:axis]), symbolic.mul(*shape[axis:])
        if isinstance(x, Const):
            return [self.const(x.array.reshape(lead, tail), node.output[0], x.weight)]
        if axis == 1 and len(shape) > 1:
            return [self.emit("flatten", [x], {"start_dim": 1}, out=self.out(node))]
        return [self.emit("reshape", [x], {"shape": (lead, tail)}, out=self.out(node))]

    @handles("Transpose", ops=("transpose", "permute"), takes="perm")
    def _op_Transpose(self, node, ins, attrs):
        x = ins[0]
        rank = self.rank(x)
        perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
        if isinstance(x, Const):
            out = self.const(np.transpose(x.array, perm), node.output[0], x.weight)
            if perm == [1, 0]:
                out.transposed = x
            return [out]
        if perm == list(range(rank)):
            return [x]
        moved = [i for i, p in enumerate(perm) if p != i]
        if len(moved) == 2:
            return [self.emit("transpose", [x], {"dim0": moved[0], "dim1": moved[1]}, out=self.out(node))]
        return [self.emit("permute", [x], {"dims": tuple(perm)}, out=self.out(node))]

    def _axes(self, node, ins, attrs) -> list[int] | None:
        if self.opset >= 13:
            return self.sizes(ins[1], "the axes") if len(ins) > 1 and ins[1] is not None else None
        return list(attrs["axes"]) if "axes" in attrs else None

    @handles("Unsqueeze", ops=("unsqueeze",), takes="axes (attribute before opset 13, then a constant input)")
    def _op_Unsqueeze(self, node, ins, attrs):
        x = ins[0]
        axes = self._axes(node, ins, attrs) or []
        out_rank = self.rank(x) + len(axes)
        axes = sorted(a + out_rank if a < 0 else a for a in axes)
        if isinstance(x, Const):
            return [self.const(np.expand_dims(x.array, tuple(axes)), node.output[0], x.weight)]
        if isinstance(x, Sizes):
            if x.scalar and axes == [0]:
                return [Sizes(x.items, False, x.dtype)]
            raise self._error("unsqueezes a size vector into more than one dim")
        for i, axis in enumerate(axes):
            x = self.emit("unsqueeze", [x], {"dim": axis}, out=self.out(node) if i == len(axes) - 1 else None)
        return [x]

    @handles("Squeeze", ops=("squeeze",), takes="axes (attribute before opset 13, then a constant input)")
    def _op_Squeeze(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        axes = self._axes(node, ins, attrs)
        if axes is None:
            axes = [i for i, d in enumerate(shape) if d == 1]
        axes = sorted((a + len(shape) if a < 0 else a for a in axes), reverse=True)
        if isinstance(x, Const):
            return [self.const(np.squeeze(x.array, tuple(axes)), node.output[0], x.weight)]
        if isinstance(x, Sizes):
            if len(x.items) == 1 and axes == [0]:
                return [Sizes(x.items, True, x.dtype)]
            raise self._error("squeezes a size vector")
        if not axes:
            return [x]
        for i, axis in enumerate(axes):
            if shape[axis] != 1:
                raise self._error(f"squeezes dim {axis} of size {shape[axis]}")
            x = self.emit("squeeze", [x], {"dim": axis}, out=self.out(node) if i == len(axes) - 1 else None)
        return [x]

    @handles("Expand", ops=("expand",), since=8, takes="the shape a constant or computed from shapes")
    def _op_Expand(self, node, ins, attrs):
        x, target = ins
        target = self.sizes(target, "the target shape")
        if isinstance(x, Const) and all(isinstance(d, int) for d in target):
            shape = np.broadcast_shapes(x.array.shape, tuple(target))
            return [self.const(np.broadcast_to(x.array, shape).copy(), node.output[0])]
        shape = list(self.type_of(x).shape)
        rank = max(len(shape), len(target))
        shape = [1] * (rank - len(shape)) + shape
        target = [1] * (rank - len(target)) + list(target)
        size, own = [], self.rank(x)
        for i, (have, want) in enumerate(zip(shape, target)):
            mine = i >= rank - own
            if want == 1 or want == have:
                size.append(-1 if mine else 1)
            elif have == 1:
                size.append(want)
            else:
                raise self._error(f"expands a dim of size {have} to {want}")
        if len(size) == own and all(s == -1 for s in size):
            return [x]
        return [self.emit("expand", [x], {"size": tuple(size)}, out=self.out(node))]

    @handles("Concat", ops=("cat",), since=4, takes="axis")
    def _op_Concat(self, node, ins, attrs):
        axis = attrs["axis"]
        if all(isinstance(v, (Const, Sizes)) for v in ins) and any(isinstance(v, Sizes) for v in ins):
            items = []
            for v in ins:
                items += self.sizes(v, "a part")
            return [_sizes(items)]
        if all(isinstance(v, Const) for v in ins):
            return [self.const(np.concatenate([v.array for v in ins], axis=axis), node.output[0])]
        return [self.emit("cat", list(ins), {"dim": axis}, out=self.out(node))]

    @handles("Split", ops=("slice",), since=2,
             takes="axis, split (attribute before opset 13, then an input), num_outputs (opset 18); static sizes")
    def _op_Split(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        axis = attrs.get("axis", 0)
        axis = axis + len(shape) if axis < 0 else axis
        if self.opset >= 13 and len(ins) > 1 and ins[1] is not None:
            split = self.sizes(ins[1], "the split sizes")
        else:
            split = attrs.get("split")
        if split is None:
            size = shape[axis]
            count = attrs.get("num_outputs", len(node.output))
            if not isinstance(size, int):
                raise self._error("splits a symbolic dim")
            chunk = -(-size // count)
            split = [min(chunk, size - i * chunk) for i in range(count)]
        if isinstance(x, Const):
            bounds = np.cumsum([int(n) for n in split])[:-1]
            return [self.const(part, name, x.weight) for part, name in
                    zip(np.split(x.array, bounds, axis=axis), node.output)]
        results, start = [], 0
        for i, (length, name) in enumerate(zip(split, node.output)):
            results.append(self.emit("slice", [x], {"dim": axis, "start": start, "end": start + int(length)},
                                     out=name))
            start += int(length)
        return results

    @handles("Slice", ops=("slice", "flip"),
             takes="starts, ends, axes, steps (attributes before opset 10, then constant inputs); a negative step is "
                   "flip then slice")
    def _op_Slice(self, node, ins, attrs):
        x = ins[0]
        if self.opset < 10:
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes, steps = attrs.get("axes"), None
        else:
            starts, ends = self.sizes(ins[1], "the starts"), self.sizes(ins[2], "the ends")
            axes = self.sizes(ins[3], "the axes") if len(ins) > 3 and ins[3] is not None else None
            steps = self.sizes(ins[4], "the steps") if len(ins) > 4 and ins[4] is not None else None
        rank = self.rank(x) if not isinstance(x, Sizes) else 1
        axes = [a + rank if a < 0 else a for a in (axes or range(len(starts)))]
        steps = steps or [1] * len(starts)
        if isinstance(x, (Sizes, Const)) and all(isinstance(v, int) for v in starts + ends):
            if isinstance(x, Const):
                index = [slice(None)] * x.array.ndim
                for a, s, e, st in zip(axes, starts, ends, steps):
                    index[a] = slice(s, e, st)
                return [self.const(x.array[tuple(index)], node.output[0], x.weight)]
            (s, e, st) = starts[0], ends[0], steps[0]
            return [_sizes(tuple(x.items[slice(s, e, st)]))]
        shape = self.type_of(x).shape
        slices = []
        reversed_dims = []
        for a, s, e, st in zip(axes, starts, ends, steps):
            if not isinstance(st, int) or st == 0:
                raise self._error("slices with a symbolic or zero step")
            if st < 0:  # x[s:e:-k] is flip(x)[n-1-s : n-1-e : k]
                reversed_dims.append(a)
                s, e, st = self._flipped_bound(s, shape[a], start=True), self._flipped_bound(e, shape[a]), -st
            if s == 0 and (e is None or e == shape[a] or isinstance(e, int) and e >= _INT64_MAX // 2) and st == 1:
                continue
            slices.append({"dim": a, "start": dim_attr(s) if not isinstance(s, int) else min(s, _INT64_MAX),
                           "end": None if e is None else dim_attr(e) if not isinstance(e, int) else min(e, _INT64_MAX),
                           "step": st})
        if reversed_dims:
            x = self.emit("flip", [x], {"dims": tuple(sorted(reversed_dims))},
                          out=None if slices else self.out(node))
        for i, attrs_ir in enumerate(slices):
            x = self.emit("slice", [x], attrs_ir, out=self.out(node) if i == len(slices) - 1 else None)
        return [x]

    def _flipped_bound(self, bound, size, start: bool = False):
        """A start (or end) of a negative-step ONNX slice along a dim of ``size``, as
        the index in the flipped dim (None: its end). ONNX clamps a start to
        [0, size-1] and an end to [-1, size-1] there, after adding size to a negative one."""
        if not isinstance(bound, int):
            raise self._error("slices backwards from a symbolic index")
        if isinstance(size, int):
            bound = bound + size if bound < 0 else bound
            bound = max(0, min(size - 1, bound)) if start else max(-1, min(size - 1, bound))
            return size - 1 - bound
        if start and bound >= _INT64_MAX // 2 or not start and bound <= -(_INT64_MAX // 2):
            return 0 if start else None  # from the last element / to the first
        # Symbolic dims are at least 2 (as the type rules assume): -1 and -2 start inside; an end
        # before the first element clamps in ATen's slice as in ONNX.
        if bound < 0 and (not start or bound >= -2):
            return -1 - bound
        raise self._error(f"slices backwards from index {bound} of a symbolic dim (where it lands after ONNX's "
                          "clamping depends on the dim's size)")

    @handles("Gather", ops=("embedding", "select", "index"), takes="axis")
    def _op_Gather(self, node, ins, attrs):
        data, indices = ins
        axis = attrs.get("axis", 0)
        rank = self.rank(data) if not isinstance(data, Sizes) else 1
        axis = axis + rank if axis < 0 else axis
        if isinstance(data, Const) and isinstance(indices, Const):
            return [self.const(np.take(data.array, indices.array, axis=axis), node.output[0], data.weight)]
        if isinstance(data, Sizes) and isinstance(indices, Const):
            picked = [data.items[int(i)] for i in indices.array.reshape(-1)]
            return [_sizes(tuple(picked), indices.array.ndim == 0)]
        if isinstance(data, Const) and data.array.ndim == 2 and axis == 0:
            return [self.emit("embedding", [data, indices], {}, out=self.out(node))]
        if isinstance(indices, Const) and indices.array.ndim == 0:
            return [self.emit("select", [data], {"dim": axis, "index": int(indices.array)}, out=self.out(node))]
        if isinstance(indices, Sizes) and indices.scalar:
            return [self.emit("select", [data], {"dim": axis, "index": dim_attr(indices.items[0])},
                              out=self.out(node))]
        return [self.emit("index", [data] + [None] * axis + [indices], {}, out=self.out(node))]

    @handles("GatherElements", ops=("gather",), takes="axis")
    def _op_GatherElements(self, node, ins, attrs):
        data, indices = ins
        return [self.emit("gather", [data, indices], {"dim": attrs.get("axis", 0)}, out=self.out(node))]

    @handles("GatherND", ops=("select", "index"), takes="batch_dims 0 only")
    def _op_GatherND(self, node, ins, attrs):
        data, indices = ins
        if attrs.get("batch_dims", 0):
            raise self._error("batch_dims other than 0")
        depth = self.type_of(indices).shape[-1]
        if not isinstance(depth, int):
            raise self._error("index tuples of symbolic length")
        parts = [self.emit("select", [indices], {"dim": -1, "index": i}) for i in range(depth)]
        return [self.emit("index", [data] + parts, {}, out=self.out(node))]


def _shape_range(attrs, rank: int) -> tuple[int, int]:
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return start, end
