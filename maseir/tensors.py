"""Conversions between IR tensors (raw little-endian bytes) and torch tensors."""

from __future__ import annotations

import sys

import torch

from .errors import GraphError
from . import formats
from .ir import NumberFormat, Tensor, TensorType, default_format

if sys.byteorder != "little":  # the file format stores little-endian bytes
    raise ImportError("maseir needs a little-endian machine")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def to_ir(name: str, value: torch.Tensor, trainable: bool, format: NumberFormat | None = None) -> Tensor:
    """An IR tensor holding a copy of ``value``'s bytes; with a fixed-point ``format``,
    ``value``'s codes in that format (maseir.formats.encode: rounded, saturated)."""
    value = value.detach().cpu().contiguous()
    dtype = dtype_name(value.dtype)
    if formats.is_stored_as_codes(format):
        raw = formats.encode(value.double().numpy(), format)
        return Tensor(name, TensorType(dtype, tuple(value.shape), format), raw, trainable)
    raw = value.reshape(-1).view(torch.uint8).numpy().tobytes()
    fmt = format if format is not None else default_format(dtype)
    return Tensor(name, TensorType(dtype, tuple(value.shape), fmt), raw, trainable)


def to_torch(tensor: Tensor) -> torch.Tensor:
    """A fresh, writable torch tensor with the IR tensor's values (for a param stored
    as fixed-point codes: their real values, of the param's dtype)."""
    if tensor.data is None:
        raise GraphError(f"tensor {tensor.name}: the graph was read without its weights "
                         "(io.load_structure); load it with io.load to use them")
    if formats.is_stored_as_codes(tensor.type.format):
        values = torch.from_numpy(formats.decode(tensor.data, tensor.type))
        return values.to(torch_dtype(tensor.type.dtype))
    shape = [int(d) for d in tensor.type.shape]
    if not tensor.data:
        return torch.empty(shape, dtype=torch_dtype(tensor.type.dtype))
    flat = torch.frombuffer(bytearray(tensor.data), dtype=torch.uint8)
    return flat.view(torch_dtype(tensor.type.dtype)).reshape(shape)
