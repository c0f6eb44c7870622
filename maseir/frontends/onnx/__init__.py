"""ONNX -> Mase IR.

``import_onnx(path)`` reads an ONNX file (the protobuf only: nothing in it is
executed) and converts it node by node into registry ops, so the result is an
ordinary Graph that passes ``maseir.check`` and lowers to torch and back to
ONNX. Names carry over: IR nodes are named after ONNX nodes, values after
ONNX values, params after initializers (external data is read relative to
the ONNX file); symbolic ``dim_param`` sizes become symbolic dims bound to
the first graph input axis that carries them, named as ``dims`` says
(``batch``, ``seq`` by the axis's role where the exporter generated the name).

Sizes computed from ``Shape`` (``Shape -> Gather -> Mul -> Concat ->
Reshape``, as exporters write them) become the IR's symbolic dims and size
expressions (``reshape(shape=(batch*seq, 128))``). Where the IR cannot express
something (a size computed from tensor data, an op outside the handled ones)
the import fails with a one-line error naming the ONNX node.

- ``reader``: the ONNX file, its initializers and external data;
- ``values``: what an ONNX value is while converting (tensor, ``Const``,
  ``Sizes``);
- ``importer``: the importer, which walks the graph and makes IR nodes;
- ``elementwise``, ``layers``, ``shapes``, ``spatial`` (Pad, Resize,
  ConvTranspose), ``recurrent`` (LSTM, GRU): the op handlers, by family,
  mixed into the importer;
- ``handlers``: the table of handlers (ops, opsets, what each takes), which
  ``spec/onnx-import.md`` is generated from;
- ``dims``: the names of symbolic dims.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import FileFormatError
from ...ir import Graph
from .dims import check_dim_names, parse_dim_names
from .importer import _Importer
from .reader import external_data_threshold, read_model
from .values import Const, Sizes

__all__ = ["Const", "Sizes", "external_data_threshold", "import_model", "import_onnx", "parse_dim_names",
           "read_model"]


def import_onnx(path: str | Path, dim_names: dict[str, str] | None = None) -> Graph:
    """Read the ONNX file at ``path`` into a Graph (``read_model`` then ``import_model``)."""
    path = Path(path)
    return import_model(read_model(path), path, dim_names)


def import_model(model, path: str | Path, dim_names: dict[str, str] | None = None) -> Graph:
    """The Graph of ``model``, an ``onnx.ModelProto`` read from ``path`` (external
    data is read relative to it; errors name it). Its ``metadata_props`` become
    the graph's metadata, history and tokenizer (``maseir.onnx_metadata``).

    ``dim_names`` names symbolic dims by hand: ``{"s17": "batch",
    "input_ids:1": "seq"}`` (a key is a ``dim_param`` of the file or
    ``INPUT:AXIS``); the others are named as ``dims`` says. Raises
    ArgumentError for a ``dim_names`` that is not a dict of names, and
    MaseIRError for a key the file does not have."""
    path = Path(path)
    dim_names = check_dim_names(dim_names)
    try:
        return _Importer(model, path, dim_names).run()
    except (ValueError, UnicodeDecodeError) as exc:  # numbers and strings in the file that make no sense
        raise FileFormatError(f"{path}: malformed ONNX model: {' '.join(str(exc).split())}") from None
