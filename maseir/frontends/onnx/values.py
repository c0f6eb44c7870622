"""What an ONNX value is while converting.

ONNX computes shapes at run time (``Shape -> Gather -> Concat -> Reshape``);
the IR states them as attributes that may name symbolic dims
(``reshape(shape=(batch, seq, -1, 64))``). So while converting, every ONNX
value is one of:

- a tensor: an IR value (its name);
- a constant (an initializer, a ``Constant``, or something folded from
  constants): it becomes a param only where a tensor op reads it, and an
  attribute where the IR wants one (a scalar ``other``, a reshape target);
- a size vector: a 1-D (or 0-d) int64 whose entries are dims: sizes,
  symbolic dim names and expressions of them (``Shape`` of a tensor with
  symbolic dims and what ``Gather``, ``Slice``, ``Concat``, ``Unsqueeze``,
  ``Mul``... make of it), folded into the attributes of the ops that consume
  it (``reshape(shape=(batch*seq, -1))``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass(eq=False)
class Const:
    """A value known while importing. ``name`` is used if it becomes a param;
    ``weight`` marks learnable weights (float initializers), which become trainable."""

    array: np.ndarray
    name: str
    weight: bool = False
    transposed: Const | None = None  # this is transposed.array.T (lets MatMul find a linear layer)

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.array.dtype.name == "bfloat16" else self.array.dtype.name


@dataclass(eq=False)
class Sizes:
    """A 1-D (or 0-d, ``scalar``) integer whose entries are dims (ints, symbol names, SizeExprs)."""

    items: tuple
    scalar: bool = False
    dtype: str = "int64"


def _is_scalar(value) -> bool:
    return isinstance(value, Sizes) and value.scalar or isinstance(value, Const) and value.array.ndim == 0


def _sizes(items, scalar: bool = False):
    """A size vector, or a constant when every entry is known."""
    items = tuple(items)
    if all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in items):
        array = np.array([int(d) for d in items], dtype=np.int64)
        return Const(array.reshape(()) if scalar and len(items) == 1 else array, "sizes")
    return Sizes(items, scalar and len(items) == 1)


def _f32(value) -> float:
    """An ONNX float attribute (a float32) as the shortest double that reads back to it."""
    return float(repr(np.float32(value)).removeprefix("np.float32(").removesuffix(")"))


def _python_scalar(array: np.ndarray):
    value = array.reshape(-1)[0]
    if array.dtype == np.bool_:
        return bool(value)
    if np.issubdtype(array.dtype, np.integer):
        return int(value)
    if array.dtype in (np.float32, np.float16):
        return _f32(value) if array.dtype == np.float32 else float(value)
    return float(value)
