"""A graph's metadata, history and tokenizer as ONNX ``metadata_props``, and back.

The ONNX lowering writes them (``to_props``) and the ONNX importer reads them
(``from_props``), so ``lower`` then ``import`` keeps what a .mir says about
itself. ONNX ``metadata_props`` is a list of string key/value pairs; maseir
uses these keys (spec/format.md, "ONNX metadata"):

- every metadata entry as it is, under its own key; a key that itself starts
  with ``maseir.`` is written as ``maseir.metadata.<key>``, so no metadata key
  can collide with the reserved ones below;
- ``maseir.history``: the history as one JSON array of objects with the
  string fields ``step``, ``input_digest``, ``output_digest``, ``producer``
  and, where the step recorded any, ``details`` (an object of strings),
  oldest first (absent when there is no history);
- ``maseir.tokenizer_json``: the tokenizer.json text (absent when there is no
  tokenizer); bytes that are not UTF-8 go base64-encoded under
  ``maseir.tokenizer_json.base64`` instead, since ONNX strings must be UTF-8.

Other ``maseir.`` keys (from a newer maseir) are kept in the metadata as they are.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import FileFormatError
from .ir import Graph, HistoryEntry

PREFIX = "maseir."
HISTORY = "maseir.history"
TOKENIZER = "maseir.tokenizer_json"
TOKENIZER_BASE64 = "maseir.tokenizer_json.base64"
ESCAPED = "maseir.metadata."
_HISTORY_FIELDS = ("step", "input_digest", "output_digest", "producer")


def to_props(graph: Graph) -> list[tuple[str, str]]:
    """The (key, value) pairs of ``graph``'s metadata, history and tokenizer:
    metadata sorted by key, then the history, then the tokenizer."""
    props = sorted((ESCAPED + key if key.startswith(PREFIX) else key, value)
                   for key, value in graph.metadata.items())
    if graph.history:
        entries = [{**{f: getattr(h, f) for f in _HISTORY_FIELDS}, **({"details": dict(h.details)} if h.details else {})}
                   for h in graph.history]
        props.append((HISTORY, json.dumps(entries, ensure_ascii=False, separators=(",", ":"))))
    if graph.tokenizer_json:
        try:
            props.append((TOKENIZER, graph.tokenizer_json.decode("utf-8")))
        except UnicodeDecodeError:
            props.append((TOKENIZER_BASE64, base64.b64encode(graph.tokenizer_json).decode("ascii")))
    return props


def from_props(props, source: str) -> tuple[dict[str, str], list[HistoryEntry], bytes]:
    """(metadata, history, tokenizer_json) from ``props``, (key, value) pairs as
    ``to_props`` writes them. A reserved key whose value is malformed raises a
    one-line FileFormatError naming ``source`` (the file) and the key."""
    metadata: dict[str, str] = {}
    history: list[HistoryEntry] = []
    tokenizer = b""
    for key, value in props:
        if key == HISTORY:
            history = _history(value, source)
        elif key == TOKENIZER:
            tokenizer = value.encode("utf-8")
        elif key == TOKENIZER_BASE64:
            try:
                tokenizer = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise FileFormatError(f"{source}: metadata_props {key}: not base64") from None
        elif key.startswith(ESCAPED):
            metadata[key[len(ESCAPED):]] = value
        else:
            metadata[key] = value
    return metadata, history, tokenizer


def _history(value: str, source: str) -> list[HistoryEntry]:
    def bad(why: str) -> FileFormatError:
        return FileFormatError(f"{source}: metadata_props {HISTORY}: {why}")

    try:
        entries = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise bad("not a JSON array of history entries")
    history = []
    for i, entry in enumerate(entries):
        details = entry.pop("details", {}) if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or set(entry) != set(_HISTORY_FIELDS) \
                or not all(_is_text(v) for v in entry.values()) or not isinstance(details, dict) \
                or not all(_is_text(k) and _is_text(v) for k, v in details.items()):
            raise bad(f"entry {i} is not an object with the string fields {', '.join(_HISTORY_FIELDS)} "
                      "(and optionally details, an object of strings)")
        history.append(HistoryEntry(**entry, details=tuple(sorted(details.items()))))
    return history


def _is_text(value) -> bool:
    """A str that a protobuf string field can hold (JSON may escape lone surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
