"""Sparse storage of a tensor's bytes in a .mir: a bitmask plus the non-zero elements.

A tensor that is mostly zeros (a pruned weight) is stored as

    mask:   ceil(n / 8) bytes; bit i (least significant bit first) set when element i is not zero
    values: the bytes of the non-zero elements, in element order

where an element is one unit of the stored representation (``unit`` bytes:
the dtype's size, or 1 for int8 and packed int4 codes, 2 for int16 codes) and
"zero" means all of its bytes are zero (so -0.0 is kept as a value and the
round trip is exact). ``io.save`` picks it automatically when it is smaller
than the dense bytes; the tensor's sha256 covers the dense bytes, and the
mask's unused high bits must be zero, so a corrupt mask is an error on load.
"""

from __future__ import annotations

from .errors import FileFormatError

MIN_BYTES = 1024
"""Tensors smaller than this are always stored dense (a mask would save too little)."""


def encode(dense: bytes, unit: int) -> bytes | None:
    """The sparse encoding of ``dense`` (elements of ``unit`` bytes), or None when it
    would not be smaller than ``dense``."""
    import numpy as np

    if len(dense) < MIN_BYTES or len(dense) % unit:
        return None
    n = len(dense) // unit
    elements = np.frombuffer(dense, dtype=np.uint8).reshape(n, unit)
    nonzero = elements.any(axis=1)
    count = int(nonzero.sum())
    size = (n + 7) // 8 + count * unit
    if size >= len(dense):
        return None
    mask = np.packbits(nonzero, bitorder="little")
    return mask.tobytes() + elements[nonzero].tobytes()


def decode(stored: bytes, n_bytes: int, unit: int, where: str) -> bytes:
    """The dense bytes (``n_bytes`` of them) of a sparse encoding; FileFormatError,
    naming ``where``, when the encoding does not fit."""
    import numpy as np

    if n_bytes % unit:
        raise FileFormatError(f"{where}: a sparse tensor of {n_bytes} bytes is not whole {unit}-byte elements")
    n = n_bytes // unit
    mask_bytes = (n + 7) // 8
    if len(stored) < mask_bytes:
        raise FileFormatError(f"{where}: sparse tensor shorter than its mask (corrupt)")
    mask = np.unpackbits(np.frombuffer(stored[:mask_bytes], dtype=np.uint8), bitorder="little")
    if mask[n:].any():
        raise FileFormatError(f"{where}: non-zero padding bits in a sparse tensor's mask (corrupt)")
    nonzero = mask[:n].astype(bool)
    values = stored[mask_bytes:]
    if len(values) != int(nonzero.sum()) * unit:
        raise FileFormatError(f"{where}: a sparse tensor's mask and values disagree (corrupt)")
    dense = np.zeros((n, unit), dtype=np.uint8)
    dense[nonzero] = np.frombuffer(values, dtype=np.uint8).reshape(-1, unit)
    return dense.tobytes()


def unit_of(type_) -> int:
    """The element size in bytes of a tensor's stored representation."""
    from .formats import is_stored_as_codes, onnx_container
    from .ir import DTYPE_ITEMSIZE
    if is_stored_as_codes(type_.format):
        return 2 if onnx_container(type_.format.width) == "int16" else 1
    return DTYPE_ITEMSIZE[type_.dtype]


def zero_elements(tensor, mask):
    """A copy of ``tensor`` (a maseir Tensor) whose elements where ``mask`` (numpy bool,
    the tensor's shape) is True are exactly zero: their stored bytes set to 0, which is
    +0.0 in every float dtype and code 0 (the value 0) in every fixed-point format."""
    import numpy as np

    from .formats import is_stored_as_codes, onnx_container
    from .ir import Tensor
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    data = np.frombuffer(tensor.data, dtype=np.uint8).copy()
    if is_stored_as_codes(tensor.type.format) and onnx_container(tensor.type.format.width) == "int4":
        low, high = flat[0::2], flat[1::2]
        data[:low.size] &= np.where(low, 0xF0, 0xFF).astype(np.uint8)
        data[:high.size] &= np.where(high, 0x0F, 0xFF).astype(np.uint8)
    else:
        unit = unit_of(tensor.type)
        data.reshape(-1, unit)[flat] = 0
    return Tensor(tensor.name, tensor.type, data.tobytes(), tensor.trainable, annotations=tensor.annotations)
