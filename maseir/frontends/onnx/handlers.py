"""The importer's table of handlers: which ONNX ops it takes, from which opset,
which registry ops they become, and which attributes and inputs it reads.

Every ``_op_<OpType>`` handler of the importer is declared here, with
``@handles`` on the method or ``declare`` for handlers made in a loop. The
importer refuses an op that is not in the table, or a file whose opset is
older than the handler's ``since``, before converting any node;
``spec/onnx-import.md`` is generated from the table
(``python -m maseir.frontends.onnx > spec/onnx-import.md``;
``tests/test_onnx_import_ops.py`` fails when the two disagree, or when a
handler is missing from the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable


@dataclass(frozen=True)
class Handler:
    """One ONNX op the importer converts.

    ``since`` is the oldest default-domain opset whose form of the op the
    handler reads (None: the op's first version in ONNX); ``ops`` the registry
    ops it can produce (none: it is folded into constants, sizes or
    attributes, or is an identity); ``takes`` what it reads and what it
    refuses, in a few words.
    """

    op_type: str
    since: int | None
    ops: tuple[str, ...]
    takes: str

    @property
    def first_opset(self) -> int:
        return self.since if self.since is not None else first_version(self.op_type)


HANDLERS: dict[str, Handler] = {}


def declare(op_type: str, *, ops: tuple[str, ...] = (), since: int | None = None, takes: str = "") -> None:
    """Record the handler of ONNX op ``op_type`` in ``HANDLERS``."""
    if op_type in HANDLERS:
        raise ValueError(f"ONNX op {op_type} declared twice")
    HANDLERS[op_type] = Handler(op_type, since, tuple(ops), takes)


def handles(op_type: str, *, ops: tuple[str, ...] = (), since: int | None = None, takes: str = "") -> Callable:
    """Decorator of the importer method ``_op_<op_type>``: ``declare`` it."""
    def register(fn: Callable) -> Callable:
        declare(op_type, ops=ops, since=since, takes=takes)
        return fn
    return register


def first_version(op_type: str) -> int:
    """The opset in which ONNX op ``op_type`` (default domain) first appeared (imports onnx)."""
    versions = _first_versions()
    if op_type not in versions:
        raise ValueError(f"{op_type} is not an ONNX op")
    return versions[op_type]


@lru_cache(maxsize=1)
def _first_versions() -> dict[str, int]:
    import onnx
    first: dict[str, int] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            first[schema.name] = min(first.get(schema.name, schema.since_version), schema.since_version)
    return first


def markdown() -> str:
    """spec/onnx-import.md: the table of handlers (regenerate:
    ``python -m maseir.frontends.onnx > spec/onnx-import.md``)."""
    from . import importer  # noqa: F401  (declares the handlers)
    out = ["# ONNX import: the ops and opsets maseir takes", "",
           "Generated from the importer's table of handlers (`maseir/frontends/onnx/handlers.py`) by",
           "`python -m maseir.frontends.onnx > spec/onnx-import.md`; `tests/test_onnx_import_ops.py`",
           "fails when this file and the table disagree.", "",
           "`maseir import` (and `maseir.import_onnx`) converts the default ONNX domain's ops below; any",
           "other op, an op of another domain, or a file older than an op's first opset here is refused",
           "before any node is converted, with one line listing the ops and their nodes. *IR ops* are the",
           "registry ops (`spec/ops.md`) a node can become; none means it is folded away (shape arithmetic",
           "becomes attributes, constants become params). Inputs that ONNX computes at run time but the",
           "IR states as attributes (pads, scales, axes, shapes) must be constants or computed from shapes.",
           "",
           "Symbolic sizes: each `dim_param` of a graph input becomes a symbolic dim bound to the first",
           "input axis that carries it. The common spellings of batch and sequence length (`batch_size`,",
           "`sequence_length`, ...) become `batch` and `seq`; names that exporters generate (`s17`,",
           "`unk__3`, `input_ids_dynamic_axes_1`, or none at all) are named after the axis's role:",
           "`batch`, `seq`, `height`, `width` (see `maseir/frontends/onnx/dims.py`); `--dim-names`",
           "(`dim_names=` in Python) chooses names by hand. Sizes computed from them (`Shape -> Gather ->",
           "Mul -> Concat -> Reshape`) become size expressions (`reshape(shape=(batch*seq, 128))`).", "",
           "| ONNX op | opsets | IR ops | takes |",
           "|---|---|---|---|"]
    for op_type in sorted(HANDLERS):
        h = HANDLERS[op_type]
        ops = ", ".join(f"`{o}`" for o in h.ops) or "none (folded)"
        out.append(f"| {op_type} | {h.first_opset}+ | {ops} | {h.takes or '-'} |")
    return "\n".join(out) + "\n"
