"""Checks of the inputs a lowered graph is called with, against the graph's input types.

``to_torch`` puts one :func:`check_inputs` call at the start of the module it
builds, so a call with another image size, a missing batch axis or a float
mask fails in one line that names the input, the type the graph expects and
what it got, instead of deep inside the first op that trips over it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..arguments import describe
from ..errors import InputError
from ..ir import Graph

Signature = tuple[tuple[str, str, tuple], ...]
"""(input name, dtype, shape) per graph input; a shape holds ints and symbolic dim names."""


def input_signature(graph: Graph) -> Signature:
    """The input types of ``graph`` as :func:`check_inputs` takes them (plain tuples, so an
    fx graph can hold them as a constant argument)."""
    return tuple((v.name, v.type.dtype, tuple(v.type.shape)) for v in graph.inputs)


def _type_text(dtype: str, shape) -> str:
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


@torch.fx.node.has_side_effect
def check_inputs(signature: Signature, *values: Any) -> None:
    """Raise :class:`InputError` unless ``values`` fit ``signature``: each a tensor of the input's
    dtype and rank, every fixed size equal, and every symbolic dim the same size in every input
    that has it (``batch`` of input_ids and of attention_mask). Proxies (a module being traced
    again by torch.fx) are not checked."""
    bound: dict[str, tuple[int, str]] = {}
    for (name, dtype, shape), value in zip(signature, values):
        expected = _type_text(dtype, shape)
        if isinstance(value, torch.fx.Proxy):
            return
        if not isinstance(value, torch.Tensor):
            raise InputError(f"input {name}: expected a tensor {expected}, got {describe(value)}")
        got_dtype = str(value.dtype).removeprefix("torch.")
        got = _type_text(got_dtype, tuple(value.shape))
        if value.dim() != len(shape):
            raise InputError(f"input {name}: expected {expected}, got {got} (rank {value.dim()}, not {len(shape)})")
        if got_dtype != dtype:
            raise InputError(f"input {name}: expected {expected}, got {got} (dtype {got_dtype}, not {dtype})")
        for axis, (want, size) in enumerate(zip(shape, value.shape)):
            if isinstance(want, int):
                if size != want:
                    raise InputError(f"input {name}: expected {expected}, got {got} (axis {axis} is {size}, "
                                     f"not {want}: the graph was exported with that size fixed)")
            elif want in bound and bound[want][0] != size:
                first, where = bound[want]
                raise InputError(f"input {name}: expected {expected}, got {got} ({want} is {size} here but "
                                 f"{first} in {where})")
            else:
                bound.setdefault(want, (size, name))
