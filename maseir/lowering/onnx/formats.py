"""Number formats in ONNX (``@format_rule(kind)``).

A value whose format differs from its dtype's (``float32`` data in
``fixed<8,4>``) is rounded through the format: fixed point and scaled
integers as QuantizeLinear/DequantizeLinear (weights stored as integers),
float formats as a Cast round trip.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import TensorProto, helper

from ...errors import UnsupportedOpError
from ...ir import NumberFormat, Tensor, TensorType
from .context import ONNX_DTYPES, Lowering, _tensor_proto, format_rule

def _float_format(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None) -> None:
    """A float format narrower than the dtype: round through it with a Cast there and back."""
    if param is not None:
        src = low.fresh(f"{dst}/stored")
        low.weights.append((_tensor_proto(src, type_.dtype, type_.shape, b""), param.data))
    narrow = low.fresh(f"{dst}/{type_.format.kind}")
    low.emit("Cast", [src], [narrow], narrow, to=ONNX_DTYPES[type_.format.kind])
    low.emit("Cast", [narrow], [dst], low.fresh(f"{dst}/Cast"), to=ONNX_DTYPES[type_.dtype])


for _kind in ("float32", "float16", "bfloat16"):
    format_rule(_kind)(_float_format)

_CONTAINERS = ((4, TensorProto.INT4), (8, TensorProto.INT8), (16, TensorProto.INT16))


def _integer_grid(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None,
                  width: int, scale: float) -> None:
    """q = clamp(round_half_even(x / scale), -2^(w-1), 2^(w-1)-1), x' = q * scale, as
    QuantizeLinear/DequantizeLinear on the smallest integer container (Clip first when
    the width is not a container's); weights are stored as the integers."""
    fmt = type_.format
    container = next(((bits, kind) for bits, kind in _CONTAINERS if width <= bits), None)
    if container is None or width < 2:
        raise UnsupportedOpError(f"{dst}: number format {fmt} needs a {width}-bit integer; "
                                 "ONNX QuantizeLinear has 4, 8 and 16-bit containers")
    bits, kind = container
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    scale_name = low.constant(scale, type_.dtype, f"{dst}/scale")
    zero = low.fresh(f"{dst}/zero_point")
    low.initializers.append(helper.make_tensor(zero, kind, [], [0]))
    if param is not None:
        x = torch.as_tensor(np.frombuffer(param.data, dtype=np.uint8).copy()).view(
            getattr(torch, type_.dtype)).float().reshape([int(d) for d in type_.shape])
        q = torch.clamp(torch.round(x / np.float32(scale)), lo, hi).to(torch.int64)
        stored = low.fresh(f"{dst}/quantized")
        low.initializers.append(helper.make_tensor(stored, kind, list(q.shape), q.reshape(-1).tolist()))
    else:
        if width < bits:
            clipped = low.fresh(f"{dst}/Clip")
            low.emit("Clip", [src, low.constant(lo * scale, type_.dtype, f"{dst}/min"),
                              low.constant(hi * scale, type_.dtype, f"{dst}/max")], [clipped], clipped)
            src = clipped
        stored = low.fresh(f"{dst}/QuantizeLinear")
        low.emit("QuantizeLinear", [src, scale_name, zero], [stored], stored)
    low.emit("DequantizeLinear", [stored, scale_name, zero], [dst], low.fresh(f"{dst}/DequantizeLinear"))


@format_rule("fixed")
def _fixed(low, src, dst, type_, param) -> None:
    fmt: NumberFormat = type_.format
    _integer_grid(low, src, dst, type_, param, fmt.width, 2.0 ** -fmt.frac)


@format_rule("int")
def _scaled_int(low, src, dst, type_, param) -> None:
    fmt: NumberFormat = type_.format
    _integer_grid(low, src, dst, type_, param, fmt.width, fmt.scale)
