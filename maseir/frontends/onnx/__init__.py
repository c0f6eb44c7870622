"""ONNX -> Mase IR.

``import_onnx(path)`` reads an ONNX file (the protobuf only: nothing in it is
executed) and converts it node by node into registry ops, so the result is an
ordinary Graph that passes ``maseir.check`` and lowers to torch and back to
ONNX. Names carry over: IR nodes are named after ONNX nodes, values after
ONNX values, params after initializers (external data is read relative to
the ONNX file); symbolic ``dim_param`` sizes become symbolic dims bound to
the first graph input axis that carries them.

Sizes computed from ``Shape`` (``Shape -> Gather -> Mul -> Concat ->
Reshape``, as exporters write them) become the IR's symbolic dims and size
expressions (``reshape(shape=(batch*seq, 128))``). Where the IR cannot express
something (a size computed from tensor data, an op outside the handled ones)
the import fails with a one-line error naming the ONNX node.

- ``reader``: the ONNX file, its initializers and external data;
- ``values``: what an ONNX value is while converting (tensor, ``Const``,
  ``Sizes``);
- ``importer``: the importer, which walks the graph and makes IR nodes;
- ``elementwise``, ``layers``, ``shapes``: the op handlers, by family, mixed
  into the importer.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import FileFormatError
from ...ir import Graph
from .importer import _Importer
from .reader import external_data_threshold, read_model
from .values import Const, Sizes

__all__ = ["Const", "Sizes", "external_data_threshold", "import_model", "import_onnx", "read_model"]


def import_onnx(path: str | Path) -> Graph:
    """Read the ONNX file at ``path`` into a Graph (``read_model`` then ``import_model``)."""
    path = Path(path)
    return import_model(read_model(path), path)


def import_model(model, path: str | Path) -> Graph:
    """The Graph of ``model``, an ``onnx.ModelProto`` read from ``path`` (external
    data is read relative to it; errors name it). Its ``metadata_props`` become
    the graph's metadata, history and tokenizer (``maseir.onnx_metadata``)."""
    path = Path(path)
    try:
        return _Importer(model, path).run()
    except (ValueError, UnicodeDecodeError) as exc:  # numbers and strings in the file that make no sense
        raise FileFormatError(f"{path}: malformed ONNX model: {' '.join(str(exc).split())}") from None
