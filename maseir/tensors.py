"""Conversions between IR tensors (raw little-endian bytes) and torch tensors."""

from __future__ import annotations

import sys

import torch

from .errors import GraphError
from .ir import Tensor, TensorType, default_format

if sys.byteorder != "little":  # the file format stores little-endian bytes
    raise ImportError("maseir needs a little-endian machine")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def to_ir(name: str, value: torch.Tensor, trainable: bool) -> Tensor:
    """An IR tensor holding a copy of ``value``'s bytes."""
    value = value.detach().cpu().contiguous()
    dtype = dtype_name(value.dtype)
    raw = value.reshape(-1).view(torch.uint8).numpy().tobytes()
    return Tensor(name, TensorType(dtype, tuple(value.shape), default_format(dtype)), raw, trainable)


def to_torch(tensor: Tensor) -> torch.Tensor:
    """A fresh, writable torch tensor with the IR tensor's values."""
    if tensor.data is None:
        raise GraphError(f"tensor {tensor.name}: the graph was read without its weights "
                         "(io.load_structure); load it with io.load to use them")
    shape = [int(d) for d in tensor.type.shape]
    if not tensor.data:
        return torch.empty(shape, dtype=torch_dtype(tensor.type.dtype))
    flat = torch.frombuffer(bytearray(tensor.data), dtype=torch.uint8)
    return flat.view(torch_dtype(tensor.type.dtype)).reshape(shape)
