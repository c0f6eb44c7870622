"""The ONNX model of a graph (``build``, ``to_onnx``) and the file (``save_onnx``).

``to_onnx`` keeps the weights inline; ``save_onnx`` writes the model atomically,
with the weights in an external data file next to it for large models.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ...errors import MaseIRError
from ...ir import Graph
from ...onnx_metadata import to_props
from ...output import output_target, write_output
from .context import Lowering, value_info

DEFAULT_OPSET = 21
"""Opset 21: QuantizeLinear with int4/int16 containers, Gelu, Shape(start, end)."""
MIN_OPSET = 17
"""Opset 17 (LayerNormalization) and up: every op is expressed there, Gelu (opset 20) through Erf or
Tanh, ReduceMean with axes as an attribute (an input from 18); only the int4 and int16 containers of
fixed-point formats need opset 21, and a graph that has them says so."""


# A model whose weights would pass protobuf's 2 GB limit gets external data
# even when the caller did not ask for it.
_AUTO_EXTERNAL_BYTES = 1_800_000_000
_EXTERNAL_ALIGN = 4096


def check_opset(opset: int) -> None:
    """Raise MaseIRError unless ``opset`` is one the lowering writes (MIN_OPSET to onnx's latest)."""
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise MaseIRError(f"ONNX opset {opset} is not supported: choose {MIN_OPSET} to {latest}")


def build(graph: Graph, opset: int = DEFAULT_OPSET, *, external: str | None = None,
          external_threshold: int = 0) -> tuple[onnx.ModelProto, list]:
    """The ONNX model of ``graph`` and, with ``external`` (a file name), the chunks of
    that external data file holding every weight of at least ``external_threshold`` bytes."""
    check_opset(opset)
    low = Lowering(graph, opset)
    low.run()
    # The model is filled in place: helper.make_graph/make_model would copy every weight twice.
    model = onnx.ModelProto()
    # the oldest ONNX IR version that carries the opset (10 for 21): readable by the most tools
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    model.opset_import.append(helper.make_opsetid("", opset))
    model.producer_name, model.producer_version = "maseir", _version()
    model.doc_string = "Lowered from a Mase IR graph by maseir."
    for key, value in to_props(graph):  # metadata, history and tokenizer (maseir.onnx_metadata)
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_graph = model.graph
    onnx_graph.name = _graph_name(graph)
    onnx_graph.input.extend(value_info(v.name, v.type) for v in graph.inputs)
    onnx_graph.output.extend(value_info(low.value(name), low.types[name]) for name in graph.outputs)
    outputs = set(graph.outputs)
    onnx_graph.value_info.extend(value_info(v.name, v.type) for node in graph.nodes for v in node.outputs
                                 if v.name not in outputs)
    onnx_graph.node.extend(low.nodes)
    chunks, size = [], 0
    for proto, data in low.weights:
        init = onnx_graph.initializer.add()
        init.CopyFrom(proto)
        if external is not None and len(data) >= external_threshold and len(data):
            offset = -(-size // _EXTERNAL_ALIGN) * _EXTERNAL_ALIGN
            if offset > size:
                chunks.append(b"\0" * (offset - size))
            chunks.append(data)
            size = offset + len(data)
            init.data_location = TensorProto.EXTERNAL
            for key, value in (("location", external), ("offset", str(offset)), ("length", str(len(data)))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
        else:
            init.raw_data = bytes(data)
    onnx_graph.initializer.extend(low.initializers)
    return model, chunks


def to_onnx(graph: Graph, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """An ONNX model computing ``graph`` (eval semantics), weights inline."""
    total = sum(t.nbytes for t in graph.params.values())
    if total > _AUTO_EXTERNAL_BYTES:
        raise MaseIRError(f"the weights ({total / 1e9:.1f} GB) pass protobuf's 2 GB limit: "
                          "use save_onnx, which writes them to an external data file")
    model, _ = build(graph, opset)
    return model


def save_onnx(graph: Graph, path, *, opset: int = DEFAULT_OPSET,
              external_data_threshold: int | None = None) -> int:
    """Write ``graph`` as ONNX to ``path`` (a path, or an Output from
    ``maseir.output.check_output``) by the rules of ``maseir.output``: atomically over a
    regular file or a new name, through a symlink to its target, written through to a FIFO
    or a device. Returns the bytes of the model file.

    Weights of at least ``external_data_threshold`` bytes go to ``<name>.data``
    next to the file (a relative path, as ONNX external data wants); models
    whose weights near protobuf's 2 GB limit get that with a 1 KiB threshold
    even when none is given. Raises OutputError (one line) when the output cannot be written.
    """
    target = output_target(path)
    threshold = external_data_threshold
    if threshold is None and sum(t.nbytes for t in graph.params.values()) > _AUTO_EXTERNAL_BYTES:
        threshold = 1024
    external = target.side_name if threshold is not None else None
    model, chunks = build(graph, opset, external=external, external_threshold=threshold or 0)
    return write_output(target, [model.SerializeToString()], chunks)


def _graph_name(graph: Graph) -> str:
    return graph.metadata.get("model_type") or "maseir"


def _version() -> str:
    from ... import __version__
    return __version__
