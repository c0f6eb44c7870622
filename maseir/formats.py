"""Number formats: the one numeric reference for every format maseir stores or computes in.

Signed fixed point ``fixed<w,f>`` (DESIGN.md; the MASE/chop convention of
width w bits, f of them fractional) rounds a real x to

    q  = clamp(round_half_to_even(x * 2^f), -2^(w-1), 2^(w-1) - 1)
    x' = q * 2^-f

Scaled integers ``int<w,scale=s>`` are the same with 2^-f replaced by s.
Per-channel fixed point (``granularity=channel``) has one f per slice along
an axis (the output channels of a weight: axis 0). ``dynamic<w>`` marks an
activation quantized at run time with a scale from its own range:
asymmetric unsigned w-bit, exactly ONNX's DynamicQuantizeLinear
(scale = (max(x, 0) - min(x, 0)) / (2^w - 1), zero point
round(-min(x, 0) / scale) saturated, q = saturate(round(x / scale) + zp)).

Everything that computes with a format calls this module: the torch lowering
(``fake_quantize``: the rounding in the forward pass, a straight-through
gradient in the backward pass, so ``finetune`` after ``quantize`` is QAT), the
ONNX lowering (``onnx_container`` and the scales for QuantizeLinear and
DequantizeLinear, which round half to even as well), storage (``encode`` and
``decode``: weights are stored as their integer codes, int8 for w <= 8, int16
above, two per byte for w <= 4), and the tests. x * 2^f and q * 2^-f are exact
in floating point (powers of two), so numpy, torch and ONNX Runtime give the
same bits.

numpy and torch are imported only where a function needs them.
"""

from __future__ import annotations

import math
from .ir import NumberFormat, TensorType

QUANTIZED_KINDS = ("fixed", "int", "dynamic")
MIN_WIDTH, MAX_WIDTH = 2, 16
MAX_FRAC = 64
"""|f| is at most this (2^-64 is far inside float32's range)."""


# --- the formats ------------------------------------------------------------------
def fixed(width: int, frac: int) -> NumberFormat:
    """``fixed<width,frac>``, per tensor. Raises ValueError for a width outside 2..16."""
    _check_width(width)
    return NumberFormat("fixed", width, int(frac))


def fixed_per_channel(width: int, fracs, axis: int = 0) -> NumberFormat:
    """``fixed<width,...>`` with one frac per slice along ``axis``."""
    _check_width(width)
    fracs = tuple(int(f) for f in fracs)
    if len(set(fracs)) == 1 and len(fracs) == 1:
        return NumberFormat("fixed", width, fracs[0])
    return NumberFormat("fixed", width, 0, fracs=fracs, axis=axis)


def dynamic(width: int = 8) -> NumberFormat:
    """``dynamic<width>``: quantized at run time (DynamicQuantizeLinear's rule)."""
    if width != 8:
        raise ValueError("dynamic quantization is 8-bit (ONNX DynamicQuantizeLinear is uint8 only)")
    return NumberFormat("dynamic", width)


def _check_width(width: int) -> None:
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"fixed-point width {width} is outside {MIN_WIDTH}..{MAX_WIDTH}")


def is_quantized(fmt: NumberFormat | None) -> bool:
    return fmt is not None and fmt.kind in QUANTIZED_KINDS


def is_stored_as_codes(fmt: NumberFormat | None) -> bool:
    """Whether a param in this format holds integer codes (fixed point, scaled int)."""
    return fmt is not None and fmt.kind in ("fixed", "int")


def grid(fmt: NumberFormat) -> tuple[int, int]:
    """(qmin, qmax): the codes a signed ``fmt.width``-bit format can take."""
    return -(2 ** (fmt.width - 1)), 2 ** (fmt.width - 1) - 1


def scale(fmt: NumberFormat):
    """The step between codes: 2^-f (a float, or a tuple per channel), or the int scale."""
    if fmt.kind == "int":
        return float(fmt.scale)
    if fmt.fracs:
        return tuple(2.0 ** -f for f in fmt.fracs)
    return 2.0 ** -fmt.frac


def onnx_container(width: int) -> str:
    """The smallest ONNX integer element type holding ``width``-bit codes."""
    return "int4" if width <= 4 else "int8" if width <= 8 else "int16"


_CONTAINER_BITS = {"int4": 4, "int8": 8, "int16": 16}


def stored_nbytes(type_: TensorType) -> int:
    """Bytes a param of ``type_`` takes in a .mir: its codes' container for fixed
    point (two codes per byte for widths up to 4), else elements x dtype size."""
    from .ir import DTYPE_ITEMSIZE
    n = type_.numel()
    if is_stored_as_codes(type_.format):
        bits = _CONTAINER_BITS[onnx_container(type_.format.width)]
        return (n * bits + 7) // 8
    return n * DTYPE_ITEMSIZE[type_.dtype]


# --- the rounding rule -------------------------------------------------------------
def _broadcast(values, fmt: NumberFormat, ndim: int, like):
    """Per-channel values shaped to broadcast along ``fmt.axis`` of an ndim tensor."""
    shape = [1] * ndim
    shape[fmt.axis] = len(values)
    if hasattr(like, "detach"):  # torch
        import torch
        return torch.tensor(values, dtype=like.dtype if like.is_floating_point() else torch.float32).reshape(shape)
    import numpy as np
    return np.asarray(values, dtype=np.float64 if like.dtype == np.float64 else np.float32).reshape(shape)


def _step_of(x, fmt: NumberFormat):
    step = scale(fmt)
    return _broadcast(step, fmt, x.ndim, x) if isinstance(step, tuple) else step


def codes(x, fmt: NumberFormat):
    """The integer codes of real values ``x`` (a numpy array or a torch tensor, as
    floats) in fixed-point or int format ``fmt``: round half to even of x / step,
    clamped to the grid. Returns the same kind of array, as floats holding integers."""
    qmin, qmax = grid(fmt)
    scaled = x / _step_of(x, fmt)  # exact for fixed point: the step is a power of two
    if hasattr(scaled, "detach"):
        import torch
        return torch.clamp(torch.round(scaled), qmin, qmax)
    import numpy as np
    return np.clip(np.rint(scaled), qmin, qmax)


def dequantize(q, fmt: NumberFormat):
    """Real values of codes ``q`` in ``fmt``: q times the step."""
    return q * _step_of(q, fmt)


def round_to(x, fmt: NumberFormat):
    """``x`` rounded onto ``fmt``'s grid (numpy or torch, no gradient rule)."""
    if fmt.kind == "dynamic":
        return _dynamic_round(x, fmt)
    return dequantize(codes(x, fmt), fmt)


def needs_rounding(type_: TensorType) -> bool:
    """Whether a value of ``type_`` is rounded beyond its dtype by its format."""
    fmt = type_.format
    return fmt is not None and fmt.kind != type_.dtype


def format_args(fmt: NumberFormat) -> tuple:
    """``fmt`` as plain values, for a torch.fx call of ``fake_quantize_as``."""
    return (fmt.kind, fmt.width, fmt.frac, fmt.scale, tuple(fmt.fracs), fmt.axis)


def fake_quantize_as(x, kind: str, width: int, frac: int, scale: float, fracs: tuple, axis: int):
    """``fake_quantize(x, NumberFormat(kind, width, frac, scale, fracs, axis))``: the
    form the torch lowering calls (its arguments are plain values)."""
    return fake_quantize(x, NumberFormat(kind, width, frac, scale, tuple(fracs), axis))


def fake_quantize(x, fmt: NumberFormat):
    """``x`` (a torch tensor) rounded onto ``fmt``'s grid in the forward pass, with a
    clipped straight-through estimator in the backward pass (Bengio et al. 2013,
    arXiv:1308.3432; as torch.ao's FakeQuantize): the gradient passes unchanged
    where x is inside the grid's range and is zero where x saturates. A float
    format (float16, bfloat16) rounds through that dtype, gradient unchanged."""
    import torch

    if not x.is_floating_point():
        return x
    if fmt.kind in ("float16", "bfloat16", "float32"):
        narrow = x.detach().to(getattr(torch, fmt.kind)).to(x.dtype)
        return x + (narrow - x.detach())
    if fmt.kind == "dynamic":
        return x + (_dynamic_round(x, fmt) - x).detach()
    qmin, qmax = grid(fmt)
    step = _step_of(x, fmt)
    low, high = qmin * step, qmax * step
    inside = torch.minimum(torch.maximum(x, torch.as_tensor(low, dtype=x.dtype)), torch.as_tensor(high, dtype=x.dtype))
    return inside + (round_to(x.detach(), fmt) - inside).detach()


def _dynamic_round(x, fmt: NumberFormat):
    """ONNX DynamicQuantizeLinear then DequantizeLinear, for numpy or torch."""
    qmax = 2 ** fmt.width - 1
    if hasattr(x, "detach"):
        import torch
        low = torch.clamp(x.detach().min(), max=0.0)
        high = torch.clamp(x.detach().max(), min=0.0)
        step = (high - low) / qmax
        step = torch.where(step == 0, torch.ones_like(step), step)
        zero = torch.clamp(torch.round(-low / step), 0, qmax)
        q = torch.clamp(torch.round(x / step) + zero, 0, qmax)
        return (q - zero) * step
    import numpy as np
    # in float32, as ONNX Runtime and the torch branch compute it: a float64 step differs in its last bits
    low, high = np.float32(min(x.min(), 0.0)), np.float32(max(x.max(), 0.0))
    step = (high - low) / np.float32(qmax) or np.float32(1.0)
    zero = np.clip(np.rint(-low / step), 0, qmax)
    q = np.clip(np.rint(x / step) + zero, 0, qmax)
    return ((q - zero) * step).astype(x.dtype)


# --- choosing f -------------------------------------------------------------------------
def auto_frac(low: float, high: float, width: int) -> int:
    """The largest f at which no value in [low, high] clips in ``fixed<width,f>``:
    round(high * 2^f) <= 2^(w-1) - 1 and round(low * 2^f) >= -2^(w-1). Raises
    ValueError for a range that is not finite (an additive mask's -inf has no
    format); an all-zero range gets f = width - 1."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"range [{low}, {high}] is not finite, so no fixed-point format holds it")
    qmin, qmax = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    peak = max(abs(low), abs(high))
    if peak == 0:
        return width - 1
    # peak * 2^f <= qmax holds up to floor(log2(qmax / peak)); rounding and the grid's one extra
    # negative code allow one f more (at width 2, round(-1.1 * 2) = -2 fits), so start two above
    guess = math.floor(math.log2(qmax / peak)) + 2
    for f in range(min(guess, MAX_FRAC), -MAX_FRAC - 1, -1):
        if _round_half_even(high * 2.0 ** f) <= qmax and _round_half_even(low * 2.0 ** f) >= qmin:
            return f
    raise ValueError(f"range [{low}, {high}] is too wide for {width}-bit fixed point")


def _round_half_even(value: float) -> float:
    return float(round(value))  # Python's round is half to even


def auto_fracs(values, width: int, axis: int = 0) -> tuple[int, ...]:
    """``auto_frac`` of every slice of ``values`` (numpy) along ``axis``."""
    import numpy as np
    moved = np.moveaxis(np.asarray(values), axis, 0).reshape(values.shape[axis], -1)
    if moved.shape[1] == 0:
        return tuple(width - 1 for _ in range(moved.shape[0]))
    lows, highs = moved.min(axis=1), moved.max(axis=1)
    return tuple(auto_frac(float(lo), float(hi), width) for lo, hi in zip(lows, highs))


# --- storage --------------------------------------------------------------------------
def encode(values, fmt: NumberFormat) -> bytes:
    """The stored bytes of real ``values`` (numpy, any float dtype) in ``fmt``: their
    codes, little-endian, in ``onnx_container(fmt.width)``; for int4 two codes per
    byte, the first in the low nibble (ONNX's packing). float32 values are rounded
    in float32 (x * 2^f is exact there), other dtypes in float64."""
    import numpy as np
    values = np.asarray(values)
    values = values if values.dtype == np.float32 else values.astype(np.float64)
    q = codes(values, fmt).reshape(-1)
    return pack_codes(q, fmt.width)


def pack_codes(q, width: int) -> bytes:
    """Integer codes (numpy int array, flat) as their container's bytes."""
    import numpy as np
    container = onnx_container(width)
    if container == "int16":
        return q.astype("<i2").tobytes()
    if container == "int8":
        return q.astype(np.int8).tobytes()
    nibbles = (q.astype(np.int8).view(np.uint8) & 0xF)
    if len(nibbles) % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_codes(data: bytes, n: int, width: int):
    """The ``n`` integer codes (numpy int array) stored in ``data``."""
    import numpy as np
    container = onnx_container(width)
    if container == "int16":
        return np.frombuffer(data, dtype="<i2", count=n).astype(np.int64)
    if container == "int8":
        return np.frombuffer(data, dtype=np.int8, count=n).astype(np.int64)
    raw = np.frombuffer(data, dtype=np.uint8)
    nibbles = np.empty(raw.size * 2, dtype=np.int64)
    nibbles[0::2] = raw & 0xF
    nibbles[1::2] = raw >> 4
    nibbles = nibbles[:n]
    return np.where(nibbles >= 8, nibbles - 16, nibbles)


def decode(data: bytes, type_: TensorType):
    """The real values (numpy float32, shaped) of a param stored as codes."""
    import numpy as np
    shape = [int(d) for d in type_.shape]
    q = unpack_codes(data, type_.numel(), type_.format.width).reshape(shape).astype(np.float64)
    return dequantize(q, type_.format).astype(np.float32)
