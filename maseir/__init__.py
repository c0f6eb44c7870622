"""maseir: a declarative IR toolkit for compressing and exploring ML models.

    g = maseir.export(model, example_inputs)   # torch.nn.Module -> Graph
    maseir.save(g, "m.mir"); g = maseir.load("m.mir")
    gm = maseir.to_torch(g)                    # torch.fx.GraphModule
"""

import os

from .arguments import require_graph, require_path
from .errors import MaseIRError
from .ir import Graph, Node, NumberFormat, Tensor, TensorType, Value

# Imported now, not inside a wrapper like the others: the module maseir.evaluate shares the
# function's name, and importing the module later (the CLI does) would rebind maseir.evaluate
# to the module. It is light: numpy, torch and datasets load only when evaluate() runs.
from .evaluate import evaluate

__version__ = "0.1.0"

__all__ = ["MaseIRError", "Graph", "Node", "NumberFormat", "Tensor", "TensorType", "Value",
           "export", "export_pretrained", "save", "load", "to_torch", "show", "check",
           "to_onnx", "ort_session", "import_onnx", "evaluate", "to_dot"]


def export(model, example_inputs=(), **kwargs):
    """Capture a torch.nn.Module as a Graph (see maseir.frontends.torch.export).

    Every function here checks its arguments first: a wrong kind of argument
    is a maseir.errors.ArgumentError (a MaseIRError and a TypeError).
    """
    from .frontends.torch import export as _export
    return _export(model, example_inputs, **kwargs)


def export_pretrained(name_or_path, **kwargs):
    """Export a Hugging Face model by name or folder (see maseir.frontends.transformers)."""
    from .frontends.transformers import export_pretrained as _export
    require_path(name_or_path, "export_pretrained", "name_or_path")
    return _export(os.fspath(name_or_path), **kwargs)


def save(graph, path, **kwargs):
    """Write a Graph to a .mir file atomically (see maseir.io.save)."""
    from .io import save as _save
    return _save(graph, path, **kwargs)


def load(path, **kwargs):
    """Read a .mir file, verifying every checksum (see maseir.io.load)."""
    from .io import load as _load
    return _load(require_path(path, "load"), **kwargs)


def to_torch(graph):
    """Lower a Graph to a torch.fx.GraphModule (see maseir.lowering.torch)."""
    from .lowering.torch import to_torch as _to_torch
    return _to_torch(require_graph(graph, "to_torch"))


def to_onnx(graph, **kwargs):
    """Lower a Graph to an onnx.ModelProto, opset 21 by default (see maseir.lowering.onnx)."""
    from .lowering.onnx import to_onnx as _to_onnx
    return _to_onnx(require_graph(graph, "to_onnx"), **kwargs)


def ort_session(graph, **kwargs):
    """An ONNX Runtime runner of a Graph, built once per graph (see maseir.runtime)."""
    from .runtime import ort_session as _ort_session
    return _ort_session(require_graph(graph, "ort_session"), **kwargs)


def import_onnx(path, **kwargs):
    """Read an ONNX file into a Graph (see maseir.frontends.onnx)."""
    from .frontends.onnx import import_onnx as _import_onnx
    return _import_onnx(require_path(path, "import_onnx"), **kwargs)


def show(graph) -> str:
    """The canonical text form of a Graph."""
    from .text import show as _show
    return _show(require_graph(graph, "show"))


def to_dot(graph, **kwargs) -> str:
    """The graph as Graphviz DOT text: scope=, collapse=, sparsity= (see maseir.draw.to_dot)."""
    from .draw import to_dot as _to_dot
    return _to_dot(require_graph(graph, "to_dot"), **kwargs)


def check(graph) -> list[str]:
    """Every problem found in a Graph; empty when it is valid."""
    from .validate import check as _check
    return _check(require_graph(graph, "check"))
