"""Names for the symbolic dims of an imported ONNX graph.

ONNX states a graph input's symbolic size as a ``dim_param`` string, which
may be a name its author chose (``batch``), one an exporter generated
(``s17`` from torch.export, ``input_ids_dynamic_axes_1`` from the legacy
exporter's list form of ``dynamic_axes``, ``unk__3`` from shape inference),
or nothing at all. maseir's tools expect ``batch`` and ``seq`` (``bench``,
``eval``), so each input axis with a symbolic size is named, in this order:

1. by the caller (``dim_names``, ``maseir import --dim-names``): a key is a
   ``dim_param`` of the file or ``INPUT:AXIS``. ``INPUT:AXIS=NAME`` renames
   that axis's size wherever it appears (``input_ids:1=length`` renames the
   ``seq`` that ``attention_mask`` shares too); to give two axes that would
   share a name different sizes, name each of them;
2. a common spelling of batch or sequence length (``batch_size``,
   ``sequence_length``, ...; any case) is ``batch`` or ``seq``;
3. a generated name (or none) is named after the axis's role: ``batch`` for
   axis 0, ``seq`` for axis 1 of a rank-2 or rank-3 input (token ids, masks,
   ``(batch, seq, features)``), ``height`` and ``width`` for axes 2 and 3 of a
   rank-4 one; the input of an LSTM, GRU or RNN node is ``(seq, batch, ...)``
   (``(batch, seq, ...)`` with ``layout=1``) and its initial states
   ``(dirs, batch, hidden)`` (``(batch, dirs, hidden)``). An axis with no role keeps
   ``<input>_dim<axis>``;
4. any other name is kept (made an identifier).

One ``dim_param`` gets one name wherever it appears, and axes that get the
same name are one size. Names that say nothing about which sizes are equal
(none, ``unk__3``, the legacy exporter's per-input ``*_dynamic_axes_1``)
share their role's name: the batch of ``input_ids`` and of
``attention_mask`` is one ``batch``. torch.export's symbols (``s17``) do say
it: two different symbols are sizes that may differ, so a second symbol in
a role already taken is ``<input>_<role>`` (``pixel_values_batch``).
``--dim-names`` overrides either choice. A file maseir lowered keeps its
dim names: they are the graph's own.
"""

from __future__ import annotations

import re

from ...errors import ArgumentError, MaseIRError

_SPELLINGS = {
    "batch": {"batch", "batch_size", "batchsize", "bs", "nbatch", "n_batch", "num_batch", "batch_dim"},
    "seq": {"seq", "seq_len", "seq_length", "seqlen", "sequence", "sequence_len", "sequence_length",
            "sequence_dim", "seq_dim"},
}
_SYMBOL = re.compile(r"s\d+")  # torch.export's: one symbol per independent size
_GENERATED = re.compile(r"(unk__\d+|\d+|\?|.+_dynamic_axes_\d+|.+_dim_?\d+)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RECURRENT = ("LSTM", "GRU", "RNN")


def identifier(name: str) -> str:
    """``name`` with every character outside [0-9A-Za-z_] replaced by ``_`` (and ``d_`` before a digit)."""
    cleaned = re.sub(r"[^0-9A-Za-z_]", "_", name.strip())
    return cleaned if cleaned and not cleaned[0].isdigit() else f"d_{cleaned}"


def check_dim_names(dim_names, what: str = "import_onnx: dim_names") -> dict[str, str]:
    """``dim_names`` as a dict of str -> identifier, or ArgumentError starting with ``what``."""
    if dim_names is None:
        return {}
    if not isinstance(dim_names, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in dim_names.items()):
        raise ArgumentError(f"{what} must be a dict of dim_param or 'INPUT:AXIS' -> name")
    for key, name in dim_names.items():
        if not _IDENTIFIER.fullmatch(name):
            raise ArgumentError(f"{what}: {key}={name}: a dim name is a letter or _ then letters, digits or _")
    return dict(dim_names)


def parse_dim_names(text: str) -> dict[str, str]:
    """``OLD=NEW,OLD=NEW`` (``maseir import --dim-names``) as a dict, or MaseIRError naming the bad entry."""
    out = {}
    for entry in (e.strip() for e in text.split(",")):
        old, sep, new = entry.rpartition("=")
        if not sep or not old.strip() or not new.strip():
            raise MaseIRError(f"--dim-names: {entry!r} is not OLD=NEW (OLD a dim_param of the file or "
                              "INPUT:AXIS, NEW a name)")
        out[old.strip()] = new.strip()
    return check_dim_names(out, "--dim-names")


def name_dims(graph, initializers: set[str], chosen: dict[str, str], where: str,
              keep: bool = False) -> dict[tuple[str, int], str]:
    """The name of every symbolic axis of ``graph``'s inputs (an ``onnx.GraphProto``;
    ``initializers`` are not inputs), keyed by (input, axis). ``chosen`` (checked
    first: each key must name a dim_param or a symbolic INPUT:AXIS of the file,
    else MaseIRError naming ``where``) comes first, then the rules above; with
    ``keep`` (a file maseir lowered, whose dim_params are the graph's own dims)
    every dim_param is kept as it is."""
    inputs = [v for v in graph.input if v.name not in initializers and v.type.HasField("tensor_type")
              and v.type.tensor_type.HasField("shape")]
    symbolic = {}  # (input, axis) -> dim_param ("" when none)
    for value in inputs:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                symbolic[(value.name, axis)] = dim.dim_param
    _check_chosen(chosen, symbolic, where)
    recurrent: dict[str, dict[int, str]] = {}  # input -> {axis: role} where an LSTM/GRU/RNN reads it
    for node in graph.node:
        if node.op_type in _RECURRENT and node.domain in ("", "ai.onnx") and node.input:
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
            recurrent.setdefault(node.input[0], {0: "batch", 1: "seq"} if layout else {0: "seq", 1: "batch"})
            for state in node.input[5:7]:  # initial_h, initial_c: (dirs, batch, hidden) or (batch, dirs, hidden)
                if state:
                    recurrent.setdefault(state, {0 if layout else 1: "batch"})
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in inputs}
    names: dict[tuple[str, int], str] = {}
    by_param: dict[str, str] = {}
    symbol_roles: dict[str, str] = {}  # role name -> the torch.export symbol that took it
    for (value, axis), param in symbolic.items():
        if param and param in by_param:
            names[(value, axis)] = by_param[param]
            continue
        if param in chosen:
            name = chosen[param]
        elif keep and param:
            name = identifier(param)
        elif param.lower() in _SPELLINGS["batch"]:
            name = "batch"
        elif param.lower() in _SPELLINGS["seq"]:
            name = "seq"
        elif not param or _GENERATED.fullmatch(param) or _SYMBOL.fullmatch(param):
            name = _role(axis, ranks[value], recurrent.get(value)) or identifier(f"{value}_dim{axis}")
            if _SYMBOL.fullmatch(param):
                if name in symbol_roles and symbol_roles[name] != param:
                    name = identifier(f"{value}_{name}")
                symbol_roles.setdefault(name, param)
        else:
            name = identifier(param)
        if param:
            by_param[param] = name
        names[(value, axis)] = name
    return _rename_axes(names, chosen)


def _rename_axes(names: dict[tuple[str, int], str], chosen: dict[str, str]) -> dict[tuple[str, int], str]:
    """``names`` after the caller's ``INPUT:AXIS=NEW`` entries: each renames its axis's size
    everywhere it appears, unless the entries for that size disagree (then each named axis gets
    its own name and the rest keep the old one)."""
    explicit = {(value, axis): chosen[f"{value}:{axis}"] for value, axis in names if f"{value}:{axis}" in chosen}
    wanted: dict[str, set[str]] = {}
    for key, new in explicit.items():
        wanted.setdefault(names[key], set()).add(new)
    renamed = {}
    for key, old in names.items():
        if key in explicit:
            renamed[key] = explicit[key]
        elif len(wanted.get(old, ())) == 1:
            renamed[key] = next(iter(wanted[old]))
        else:
            renamed[key] = old
    return renamed


def _role(axis: int, rank: int, recurrent: dict[int, str] | None) -> str | None:
    if recurrent is not None:
        return recurrent.get(axis)
    if axis == 0:
        return "batch"
    if axis == 1 and rank in (2, 3):
        return "seq"
    if rank == 4 and axis in (2, 3):
        return ("height", "width")[axis - 2]
    return None


def _check_chosen(chosen: dict[str, str], symbolic: dict[tuple[str, int], str], where: str) -> None:
    params = {p for p in symbolic.values() if p}
    axes = {f"{value}:{axis}" for value, axis in symbolic}
    for key in chosen:
        if key not in params and key not in axes:
            listed = ", ".join(sorted(params | axes)) or "none"
            raise MaseIRError(f"{where}: cannot name dim {key!r}: it is neither a dim_param nor a symbolic "
                              f"INPUT:AXIS of the file (its symbolic dims: {listed})")
