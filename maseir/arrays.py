"""IR tensors as numpy arrays, without torch (for ``maseir diff`` and other
read-only tools that must start fast).

bfloat16, which numpy lacks, is widened exactly to float32 by shifting its 16
bits into the high half of a float32.
"""

from __future__ import annotations

import numpy as np

from .errors import GraphError
from .ir import Tensor

_NUMPY_DTYPES = {
    "float64": np.float64, "float32": np.float32, "float16": np.float16,
    "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8,
    "uint8": np.uint8, "bool": np.bool_,
}


def to_numpy(tensor: Tensor) -> np.ndarray:
    """The tensor's values as a read-only array of its shape (bfloat16 as float32).

    Raises GraphError for a tensor read without its bytes."""
    if tensor.data is None:
        raise GraphError(f"tensor {tensor.name}: the graph was read without its weights")
    from .formats import decode, is_stored_as_codes
    if is_stored_as_codes(tensor.type.format):
        return decode(tensor.data, tensor.type)
    shape = [int(d) for d in tensor.type.shape]
    dtype = tensor.type.dtype
    if dtype == "bfloat16":
        bits = np.frombuffer(tensor.data, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(tensor.data, dtype=np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
