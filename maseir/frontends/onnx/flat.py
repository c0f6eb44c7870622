"""Flattened views: ops on a tensor whose leading dims are merged into one.

``Reshape(x, [-1, seq, 64])`` on a ``(batch, heads, seq, 64)`` x merges two
symbolic dims into one whose size is their product, which the IR cannot
state. Ops that leave the merged dim alone (transposes of the other dims,
matmuls, elementwise ops, softmax over another axis) run on the unmerged
tensor instead, and the ``Reshape`` that restores the dims makes it a tensor
again. This covers the reshape/transpose/reshape chains exporters emit
around attention.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .shapes import _shape_range
from .values import Flat, _sizes


class FlatViews:
    """Mixed into the importer: ``_flat`` converts a node that reads a flattened view."""

    _FLAT_ELEMENTWISE = frozenset({"Relu", "Gelu", "Erf", "Tanh", "Sigmoid", "Sqrt", "Neg", "Exp", "Log", "Abs",
                                   "Reciprocal", "Cast", "Identity", "Dropout", "IsNaN", "Not", "LeakyRelu",
                                   "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Max", "Min",
                                   "And", "Or", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"})

    def _flat(self, node, ins, attrs) -> list:
        flats = [v for v in ins if isinstance(v, Flat)]
        lead = flats[0].lead
        if any(f.lead != lead for f in flats):
            raise self._error("mixes tensors whose merged leading dims differ")
        shift = len(lead) - 1
        first = next(i for i, v in enumerate(ins) if isinstance(v, Flat))
        logical_rank = self.rank(flats[0].value) - shift
        op = node.op_type

        def wrap(results):
            return [Flat(r, lead) if isinstance(r, str) else r for r in results]

        unflat = [v.value if isinstance(v, Flat) else v for v in ins]
        if op == "Reshape":
            return [self._flat_reshape(flats[0], ins[1], attrs)]
        if op == "Shape":
            start, end = _shape_range(attrs, logical_rank)
            if start < 1:
                raise self._error("reads the size of merged leading dims, a product of symbolic dims")
            items = self.types[flats[0].value].shape[start + shift:end + shift]
            return [_sizes(items)]
        if op == "Transpose":
            perm = list(attrs.get("perm", range(logical_rank - 1, -1, -1)))
            if perm[0] != 0:
                raise self._error("moves merged leading dims, a product of symbolic dims")
            attrs = dict(attrs, perm=list(range(shift + 1)) + [p + shift for p in perm[1:]])
            return wrap(self._op_Transpose(node, unflat, attrs))
        if op in ("Softmax", "LogSoftmax", "LayerNormalization"):
            axis = attrs.get("axis", -1)
            axis = axis + logical_rank if axis < 0 else axis
            if axis == 0 or first != 0:
                raise self._error("normalises over merged leading dims")
            return wrap(getattr(self, f"_op_{op}")(node, unflat, dict(attrs, axis=axis + shift)))
        if op in ("MatMul", "Gemm"):
            if first != 0 or (op == "Gemm" and attrs.get("transA")):
                raise self._error("multiplies along merged leading dims")
            if isinstance(ins[1], Flat) and logical_rank != 3:
                raise self._error("multiplies two tensors with merged leading dims")
            return wrap(getattr(self, f"_op_{op}")(node, unflat, attrs))
        if op in self._FLAT_ELEMENTWISE:
            for v in ins:  # others must broadcast along the merged dim, not against it
                if v is not None and not isinstance(v, Flat) and self.rank(v) >= logical_rank and \
                        (self.rank(v) > logical_rank or self.type_of(v).shape[0] != 1):
                    raise self._error("broadcasts along merged leading dims")
            return wrap(getattr(self, f"_op_{op}")(node, unflat, attrs))
        raise self._error("uses a tensor whose leading dims are merged into a product of symbolic dims, "
                          "which the IR cannot represent")

    def _flat_reshape(self, flat: Flat, target_value, attrs) -> Any:
        """Reshape of a flattened view: restoring the lead dims gives a tensor again;
        keeping the merged dim and reshaping the rest keeps the view."""
        target = self.sizes(target_value, "the target shape")
        shape = tuple(self.types[flat.value].shape)
        k = len(flat.lead)
        logical = ["?"] + list(shape[k:])
        if not attrs.get("allowzero"):
            target = [logical[i] if d == 0 and i < len(logical) else d for i, d in enumerate(target)]
        if "?" not in target and tuple(target[:k]) == flat.lead:
            if tuple(target) == shape:
                return flat.value
            return self.emit("reshape", [flat.value], {"shape": tuple(target)}, out=self.out(self.cur))
        rest = target[1:]
        if target[0] in (-1, "?") and "?" not in rest and -1 not in rest:
            if list(rest) == list(shape[k:]):
                return flat
            if _static_prod(rest) is not None and _static_prod(rest) == _static_prod(shape[k:]):
                result = self.emit("reshape", [flat.value], {"shape": flat.lead + tuple(rest)},
                                   out=self.out(self.cur))
                return Flat(result, flat.lead)
        raise self._error(f"reshapes merged leading dims {list(flat.lead)} to {target}")

    def _flatten_view(self, x, target) -> Flat | None:
        """Reshape(x, [-1, *tail]) where x ends in tail and its merged lead is symbolic."""
        shape = list(self.type_of(x).shape)
        if not target or target[0] != -1 or not isinstance(x, str):
            return None
        tail = target[1:]
        lead = shape[:len(shape) - len(tail)]
        if len(lead) < 1 or shape[len(lead):] != tail:
            if _static_prod(tail) is None or _static_prod(shape[-1:]) is None:
                return None
            # (batch, seq, 4, 32) -> (-1, 128): merge the tail statically first, then the lead
            for split in range(len(shape) - 1, 1, -1):
                if _static_prod(shape[split:]) == _static_prod(tail) and len(tail) == 1:
                    merged = self.emit("reshape", [x], {"shape": tuple(shape[:split]) + (tail[0],)})
                    return Flat(merged, tuple(shape[:split]))
            return None
        if len(lead) == 1:
            return None
        return Flat(x, tuple(lead))


def _static_prod(dims) -> int | None:
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return int(np.prod(dims, dtype=np.int64)) if dims else 1
