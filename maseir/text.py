"""The canonical text form of a graph (``maseir show``).

One line per item, in a fixed order, never weight data: params show dtype,
shape, format and a sha256 prefix. Floats print as Python's shortest
round-trip repr, so they read back exactly. Used as a git textconv driver,
it gives local diffs: a rewrite touching two nodes changes two lines.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import symbolic
from .ir import DType, Dim, Graph, Node, SizeExpr, Sym, TensorType

SHA_PREFIX = 12


def show(graph: Graph) -> str:
    return "\n".join(lines(graph)) + "\n"


def lines(graph: Graph):
    for i, entry in enumerate(graph.history, 1):  # first, so `maseir show m.mir | head` says how it was made
        yield (f"history {i}: {entry.step}  "
               f"{entry.input_digest[:SHA_PREFIX]} -> {entry.output_digest[:SHA_PREFIX]}"
               f"{format_annotations(dict(entry.details))}")
    for key in sorted(graph.metadata):
        yield f"metadata {key} = {_text_value(graph.metadata[key])}"
    if graph.tokenizer_json:
        digest = hashlib.sha256(graph.tokenizer_json).hexdigest()[:SHA_PREFIX]
        yield f"tokenizer {len(graph.tokenizer_json)} bytes sha256={digest}"
    for name, (source, axis) in graph.dims.items():
        yield f"dim {name} = {source}[{axis}]"
    for value in graph.inputs:
        yield f"input {value.name}: {format_type(value.type)}"
    for name, tensor in graph.params.items():
        flags = " trainable" if tensor.trainable else ""
        yield (f"param {name}: {format_type(tensor.type)}{flags} sha256={tensor.sha256.hex()[:SHA_PREFIX]}"
               f"{format_annotations(tensor.annotations)}")
    for node in graph.nodes:
        yield format_node(node)
    for name in graph.outputs:
        yield f"output {name}"


def _text_value(text: str) -> str:
    """The string itself when it reads back unambiguously, else a JSON string."""
    if text and "\n" not in text and text == text.strip() and not text.startswith('"'):
        return text
    return json.dumps(text, ensure_ascii=False)


def format_type(t: TensorType) -> str:
    return str(t)


def format_node(node: Node) -> str:
    if len(node.outputs) == 1 and node.outputs[0].name == node.name:
        head = f"node {node.name}: {format_type(node.outputs[0].type)}"
    else:
        outs = ", ".join(f"{v.name}: {format_type(v.type)}" for v in node.outputs)
        head = f"node {node.name} -> {outs}"
    args = ", ".join(name or "_" for name in node.inputs)
    attrs = "".join(f" {k}={format_attr(v)}" for k, v in sorted(node.attrs.items()))
    scope = "" if node.name.startswith(node.scope) else f" @{node.scope}"
    return f"{head} = {node.op}({args}){attrs}{scope}{format_annotations(node.annotations)}"


def format_annotations(annotations: dict[str, str]) -> str:
    """`` {key=value, ...}`` in key order (values quoted where needed), or ""."""
    if not annotations:
        return ""
    return " {" + ", ".join(f"{k}={_annotation_value(v)}" for k, v in sorted(annotations.items())) + "}"


def _annotation_value(text: str) -> str:
    if text and all(c.isalnum() or c in "._-/:<>" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def format_attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (Sym, DType)):
        return value.name
    if isinstance(value, SizeExpr):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) if not isinstance(v, str) else v for v in value) + "]"
    return repr(value)


def format_dim(d: Dim) -> str:
    """A dim as the text form shows it: ``128``, ``seq``, ``batch*seq``, ``seq//4+1``
    (canonical: equal dims print the same; maseir.symbolic)."""
    return symbolic.format_dim(d)


def parse_dim(text: str) -> Dim:
    """The dim the text form shows as ``text`` (ValueError naming the column otherwise)."""
    return symbolic.parse(text)


def parse_shape(text: str) -> tuple[Dim, ...]:
    """The shape of a type in the text form, ``[batch*seq, 128]`` (ValueError otherwise).
    Dims are separated by commas at the top level (an expression has none inside)."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"shape {text!r}: expected [dim, ...]")
    inner = text[1:-1].strip()
    return tuple(parse_dim(part) for part in inner.split(",")) if inner else ()


def to_json(graph: Graph) -> dict:
    """The structure of ``graph`` as JSON-able data (``maseir show --json``): what
    the text form holds, with types, attributes and checksums spelled out."""
    def type_json(t: TensorType) -> dict:
        shape = [str(d) if isinstance(d, SizeExpr) else d for d in t.shape]
        return {"dtype": t.dtype, "shape": shape, "format": str(t.format) if t.format else None}

    def attr_json(value: Any) -> Any:
        if isinstance(value, (Sym, DType)):
            return value.name
        if isinstance(value, SizeExpr):
            return str(value)
        if isinstance(value, tuple):
            return [attr_json(v) for v in value]
        return value

    return {
        "history": [dict(vars(e), details=dict(e.details)) for e in graph.history],
        "metadata": dict(sorted(graph.metadata.items())),
        "tokenizer_sha256": hashlib.sha256(graph.tokenizer_json).hexdigest() if graph.tokenizer_json else None,
        "dims": {name: {"input": src, "axis": axis} for name, (src, axis) in graph.dims.items()},
        "inputs": [{"name": v.name, **type_json(v.type)} for v in graph.inputs],
        "params": [{"name": name, **type_json(t.type), "trainable": t.trainable, "sha256": t.sha256.hex(),
                    "annotations": dict(t.annotations)} for name, t in graph.params.items()],
        "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs),
                   "outputs": [{"name": v.name, **type_json(v.type)} for v in n.outputs],
                   "attrs": {k: attr_json(v) for k, v in sorted(n.attrs.items())}, "scope": n.scope,
                   "annotations": dict(sorted(n.annotations.items()))}
                  for n in graph.nodes],
        "outputs": list(graph.outputs),
    }
