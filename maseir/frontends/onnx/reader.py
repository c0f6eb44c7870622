"""Reading an ONNX file: the ModelProto, initializers (with external data,
read relative to the ONNX file) and node attributes, as numpy and Python values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from ...errors import FileFormatError, UnsupportedOpError
from ...io import open_input, read_external
from .values import Const

_DTYPES = {
    TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16",
    TensorProto.DOUBLE: "float64", TensorProto.INT64: "int64", TensorProto.INT32: "int32",
    TensorProto.INT16: "int16", TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.BOOL: "bool",
}


def _numpy_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def read_model(path: Path) -> onnx.ModelProto:
    """The ModelProto in ``path`` (external data not loaded), or a one-line FileFormatError."""
    with open_input(path, "an ONNX file") as f:
        blob = f.read()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(blob)
    except (DecodeError, ValueError, RuntimeError):
        raise FileFormatError(f"{path}: not an ONNX model (the bytes are not an ONNX protobuf)") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise FileFormatError(f"{path}: not an ONNX model (no IR version or graph outputs)")
    return model


def external_data_threshold(model: onnx.ModelProto) -> int | None:
    """The ``external_data_threshold`` that keeps ``model``'s layout when its graph is
    saved as a .mir: the size in bytes of its smallest initializer stored in
    external data, or None when every initializer is inline (as
    ``maseir.io.external_data_threshold`` does for a .mir)."""
    sizes = []
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL and tensor.data_type in _DTYPES:
            count = int(np.prod([int(d) for d in tensor.dims], dtype=np.int64))
            sizes.append(count * _numpy_dtype(_DTYPES[tensor.data_type]).itemsize)
    return min(sizes) if sizes else None


class InitializerReader:
    """Initializers as Consts, for the importer (``self.path``: the ONNX file;
    ``self._external``: external data files read so far, by location)."""

    def _initializer(self, tensor: TensorProto) -> Const:
        if tensor.data_type not in _DTYPES:
            raise UnsupportedOpError(f"{self.path}: initializer {tensor.name} has ONNX element type "
                                     f"{TensorProto.DataType.Name(tensor.data_type)}, which the IR does not hold")
        dtype = _DTYPES[tensor.data_type]
        shape = tuple(int(d) for d in tensor.dims)
        if tensor.data_location == TensorProto.EXTERNAL:
            raw = self._external_bytes(tensor)
        elif tensor.HasField("raw_data"):
            raw = tensor.raw_data
        else:
            raw = None
        if raw is not None:
            expected = int(np.prod(shape, dtype=np.int64)) * _numpy_dtype(dtype).itemsize
            if len(raw) != expected:
                raise FileFormatError(f"{self.path}: initializer {tensor.name} holds {len(raw)} bytes, "
                                      f"its shape {list(shape)} needs {expected}")
            array = np.frombuffer(raw, dtype=_numpy_dtype(dtype)).reshape(shape)
        else:
            array = numpy_helper.to_array(tensor).astype(_numpy_dtype(dtype)).reshape(shape)
        return Const(array, tensor.name, weight=dtype.startswith(("float", "bfloat")) and len(shape) >= 1)

    def _external_bytes(self, tensor: TensorProto) -> bytes:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if location not in self._external:
            self._external[location] = read_external(self.path, location)
        blob = self._external[location]
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", len(blob) - offset))
        except ValueError:
            raise FileFormatError(f"{self.path}: tensor {tensor.name}: external data offset or length "
                                  "is not a number") from None
        if offset < 0 or length < 0 or offset + length > len(blob):
            raise FileFormatError(f"{self.path}: tensor {tensor.name} lies past the end of {location} (truncated?)")
        return blob[offset:offset + length]


def _attr_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value
