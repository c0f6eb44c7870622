"""Number formats in ONNX (``@format_rule(kind)``), by the rules of maseir/formats.py.

- Float formats narrower than the dtype: a Cast there and back.
- Fixed point and scaled integers, on a param: the param's stored codes become
  an integer initializer (int8, int16, or int4 packed two per byte: the same
  bytes the .mir holds) and one DequantizeLinear (per channel: a 1-D scale
  and ``axis``) gives the real values.
- Fixed point and scaled integers, on an activation: QuantizeLinear then
  DequantizeLinear, both rounding half to even like maseir.formats.codes.
  Widths up to 8 use unsigned 8-bit with zero point 128: a signed code q is
  the unsigned code q + 128 on the same scale, so the values are exactly the
  signed fixed-point ones, and ONNX Runtime's fast integer kernels (u8
  activations x s8 weights) apply; a width below 8 is clipped to its range
  first. Wider ones use int16 with zero point 0.
- ``dynamic<8>``: DynamicQuantizeLinear then DequantizeLinear.
"""

from __future__ import annotations

from onnx import TensorProto, helper

from ... import formats
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


def scale_and_zero(low: Lowering, fmt: NumberFormat, dtype: str, container: str, hint: str,
                   zero_point: int = 0) -> tuple[str, str, dict]:
    """The scale and zero-point initializers of ``fmt`` (1-D per channel) and the
    ``axis`` attribute QuantizeLinear/DequantizeLinear need for it."""
    if container in ("int4", "int16"):
        low.require_opset(21, f"{hint}: the {container} container of {fmt}")
    step = formats.scale(fmt)
    if isinstance(step, tuple):
        scale = low.constant(list(step), dtype, f"{hint}/scale")
        zero = low.fresh(f"{hint}/zero_point")
        low.initializers.append(helper.make_tensor(zero, ONNX_DTYPES[container], [len(step)], [zero_point] * len(step)))
        return scale, zero, {"axis": fmt.axis}
    scale = low.constant(step, dtype, f"{hint}/scale")
    key = ("zero point", container, zero_point)
    if key not in low.shared:
        zero = low.fresh(f"zero_point/{container}/{zero_point}")
        low.initializers.append(helper.make_tensor(zero, ONNX_DTYPES[container], [], [zero_point]))
        low.shared[key] = zero
    return scale, low.shared[key], {}


def stored_codes(low: Lowering, param: Tensor, name: str) -> str:
    """An integer initializer holding ``param``'s codes as stored (no copy of their meaning)."""
    fmt = param.type.format
    container = formats.onnx_container(fmt.width)
    proto = TensorProto()
    proto.name = name
    proto.data_type = ONNX_DTYPES[container]
    proto.dims.extend(int(d) for d in param.type.shape)
    low.weights.append((proto, param.data))
    return name


def _integer_grid(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None) -> None:
    fmt = type_.format
    if param is not None:
        codes = stored_codes(low, param, low.fresh(f"{dst}/codes"))
        scale, zero, axis = scale_and_zero(low, fmt, type_.dtype, formats.onnx_container(fmt.width), dst)
        low.emit("DequantizeLinear", [codes, scale, zero], [dst], low.fresh(f"{dst}/DequantizeLinear"), **axis)
        return
    qmin, qmax = formats.grid(fmt)
    if fmt.fracs:
        raise UnsupportedOpError(f"{dst}: per-channel formats are for weights; an activation's format is per tensor")
    if fmt.width <= 8:
        container, zero_point = "uint8", 128
        if fmt.width < 8:  # the grid is narrower than the container's: saturate first
            step = formats.scale(fmt)
            clipped = low.fresh(f"{dst}/Clip")
            low.emit("Clip", [src, low.constant(qmin * step, type_.dtype, f"{dst}/min"),
                              low.constant(qmax * step, type_.dtype, f"{dst}/max")], [clipped], clipped)
            src = clipped
    else:
        container, zero_point = "int16", 0
        if fmt.width < 16:
            step = formats.scale(fmt)
            clipped = low.fresh(f"{dst}/Clip")
            low.emit("Clip", [src, low.constant(qmin * step, type_.dtype, f"{dst}/min"),
                              low.constant(qmax * step, type_.dtype, f"{dst}/max")], [clipped], clipped)
            src = clipped
    scale, zero, _ = scale_and_zero(low, fmt, type_.dtype, container, dst, zero_point)
    quantized = low.fresh(f"{dst}/QuantizeLinear")
    low.emit("QuantizeLinear", [src, scale, zero], [quantized], quantized)
    low.emit("DequantizeLinear", [quantized, scale, zero], [dst], low.fresh(f"{dst}/DequantizeLinear"))


format_rule("fixed")(_integer_grid)
format_rule("int")(_integer_grid)


@format_rule("dynamic")
def _dynamic(low: Lowering, src, dst: str, type_: TensorType, param: Tensor | None) -> None:
    if param is not None:
        raise UnsupportedOpError(f"{dst}: dynamic quantization is for activations, not params")
    quantized, scale, zero = (low.fresh(f"{dst}/DynamicQuantizeLinear{s}") for s in ("", ":scale", ":zero_point"))
    low.emit("DynamicQuantizeLinear", [src], [quantized, scale, zero], quantized)
    low.emit("DequantizeLinear", [quantized, scale, zero], [dst], low.fresh(f"{dst}/DequantizeLinear"))
