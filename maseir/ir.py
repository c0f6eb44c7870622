"""The in-memory Mase IR: Graph, Node, Value, Tensor, NumberFormat.

These are plain objects with no torch or protobuf in them. A Graph is what
frontends produce, passes rewrite, `io` saves and loads, and lowerings turn
into runnable models. Tensor bytes are immutable ``bytes``, so graphs can share
weights safely and copying a graph is cheap.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any, Union

from .symbolic import Dim, SizeExpr, is_symbolic  # noqa: F401  (the IR's dims: maseir.symbolic)


def unique_name(base: str, claimed: set[str], *also_taken) -> str:
    """``base``, or ``base_1``, ``base_2``...: the first name in neither ``claimed``
    nor ``also_taken``; it is added to ``claimed``. Rewrites use it so a new
    node never renames an existing one."""
    name, i = base, 0
    while name in claimed or any(name in taken for taken in also_taken):
        i += 1
        name = f"{base}_{i}"
    claimed.add(name)
    return name


@dataclass(frozen=True)
class Sym:
    """A symbolic size used as an attribute (``arange(end=seq)``). An expression of
    symbolic sizes is stored as the SizeExpr itself (``arange(end=seq+1)``); in a
    tuple attribute (a shape) a symbol is its name, an expression its SizeExpr."""

    name: str


def dim_attr(d: Dim) -> Any:
    """A dim as a scalar attribute value: an int, ``Sym(name)`` or the SizeExpr."""
    return Sym(d) if isinstance(d, str) else d


def attr_dim(value: Any) -> Dim | None:
    """The symbolic dim a scalar attribute value holds (``Sym`` or SizeExpr), else None."""
    if isinstance(value, Sym):
        return value.name
    return value if isinstance(value, SizeExpr) else None


@dataclass(frozen=True)
class DType:
    """A dtype used as an attribute (``to(dtype=float32)``)."""

    name: str


AttrValue = Union[int, float, str, bool, tuple, Sym, SizeExpr, DType]
"""int, float, str, bool, DType, Sym, SizeExpr, or a tuple of ints, floats or Dims."""


@dataclass(frozen=True)
class NumberFormat:
    """How a value's numbers are represented (the rounding rules: maseir/formats.py).

    kind is one of ``float32``, ``float16``, ``bfloat16``, ``fixed`` (signed
    fixed point ``fixed<width,frac>``; per channel with ``fracs``, one frac
    per slice along ``axis``), ``int`` (signed integer of width bits times
    scale) and ``dynamic`` (quantized at run time from the value's own range,
    ``width`` bits). Minifloat and block floating point are reserved in the
    file format for later.
    """

    kind: str
    width: int = 0
    frac: int = 0
    scale: float = 0.0
    fracs: tuple[int, ...] = ()
    axis: int = 0

    def __str__(self) -> str:
        if self.kind == "fixed":
            if self.fracs:
                return f"fixed<{self.width},ch{self.axis}:{min(self.fracs)}..{max(self.fracs)}>"
            return f"fixed<{self.width},{self.frac}>"
        if self.kind == "int":
            return f"int<{self.width},scale={self.scale!r}>"
        if self.kind == "dynamic":
            return f"dynamic<{self.width}>"
        return self.kind


FLOAT_FORMATS = {
    "float32": NumberFormat("float32"),
    "float16": NumberFormat("float16"),
    "bfloat16": NumberFormat("bfloat16"),
}

DTYPE_ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1,
}


def default_format(dtype: str) -> NumberFormat | None:
    """The format a freshly exported value of this dtype has (floats only)."""
    return FLOAT_FORMATS.get(dtype)


@dataclass(frozen=True)
class TensorType:
    """dtype, shape (ints, symbolic names and expressions of them) and number format of a value."""

    dtype: str
    shape: tuple[Dim, ...]
    format: NumberFormat | None = None

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        fmt = f" {self.format}" if self.format and self.format.kind != self.dtype else ""
        return f"{self.dtype}[{dims}]{fmt}"

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def numel(self) -> int:
        if not self.is_static:
            raise ValueError(f"shape {self.shape} is symbolic")
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Value:
    """A named, typed edge of the graph: a graph input or a node output."""

    name: str
    type: TensorType


@dataclass
class Node:
    """One op application.

    ``inputs`` name values or params in the order the op's schema lists its
    tensor arguments ("" for an absent optional one); ``attrs`` hold the
    constant arguments; ``scope`` is the module path the node came from;
    ``annotations`` say what a rewrite made the node for (``lora.role=A``;
    the keys are listed in spec/format.md). Annotations are stored in the
    file, so a save and load keep them.
    """

    name: str
    op: str
    inputs: list[str]
    outputs: list[Value]
    attrs: dict[str, AttrValue] = field(default_factory=dict)
    scope: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        if len(self.outputs) != 1:
            raise ValueError(f"node {self.name} has {len(self.outputs)} outputs")
        return self.outputs[0]


class Tensor:
    """A parameter or buffer: name, type, raw little-endian bytes, trainability.

    ``annotations`` say what a rewrite made the param for (``lora.role=B``,
    keys in spec/format.md); like ``data`` they never change: a rewrite makes
    a new Tensor (``replace``).

    ``data`` is immutable: ``bytes`` or a read-only memoryview into a loaded
    file, or None for a graph read without its weights
    (``io.load_structure``: enough to show, diff by checksum and check the
    structure, not to run or save). The sha256 is computed once, lazily, or
    taken from the file (which ``io.load`` verifies).
    """

    __slots__ = ("name", "type", "data", "trainable", "annotations", "_sha256")

    def __init__(self, name: str, type: TensorType, data: bytes | None, trainable: bool = False,
                 sha256: bytes | None = None, annotations: dict[str, str] | None = None):
        self.name = name
        self.type = type
        self.trainable = trainable
        self.annotations = dict(sorted((annotations or {}).items()))
        self._sha256 = sha256
        if data is None:
            if sha256 is None:
                raise ValueError(f"tensor {name}: a tensor without data needs its sha256")
            self.data = None
            return
        expected = self.expected_nbytes()
        if len(data) != expected:
            raise ValueError(f"tensor {name}: {len(data)} bytes, type {type} needs {expected}")
        if isinstance(data, memoryview):
            if not data.readonly:
                data = bytes(data)  # a writable view could change under us
            elif data.format != "B":
                data = data.cast("B")
        elif not isinstance(data, bytes):
            data = bytes(data)
        self.data = data

    def replace(self, *, name: str | None = None, trainable: bool | None = None,
                annotations: dict[str, str] | None = None) -> Tensor:
        """A new Tensor with the same bytes (shared, not copied) and the given changes."""
        new = Tensor.__new__(Tensor)
        new.name = self.name if name is None else name
        new.type, new.data, new._sha256 = self.type, self.data, self._sha256
        new.trainable = self.trainable if trainable is None else trainable
        new.annotations = dict(sorted((self.annotations if annotations is None else annotations).items()))
        return new

    def expected_nbytes(self) -> int:
        """Bytes the tensor's type takes: elements times the dtype's size, or the
        container of its codes for a fixed-point format (maseir.formats.stored_nbytes)."""
        from .formats import stored_nbytes
        return stored_nbytes(self.type)

    @property
    def has_data(self) -> bool:
        return self.data is not None

    @property
    def sha256(self) -> bytes:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.data).digest()
        return self._sha256

    @property
    def nbytes(self) -> int:
        return len(self.data) if self.data is not None else self.expected_nbytes()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Tensor) and self.name == other.name and self.type == other.type
                and self.trainable == other.trainable and self.annotations == other.annotations
                and self.sha256 == other.sha256)

    def __repr__(self) -> str:
        return f"Tensor({self.name}: {self.type}, sha256={self.sha256.hex()[:12]})"


@dataclass(frozen=True)
class HistoryEntry:
    """One pipeline step applied to the graph, with digests before and after.

    ``details`` are sorted (key, value) pairs a pass adds to make the step
    reproducible beyond its text (a finetune's dataset, example count and
    examples digest)."""

    step: str
    input_digest: str
    output_digest: str
    producer: str = ""
    details: tuple[tuple[str, str], ...] = ()


@dataclass
class Graph:
    """A model: a topologically sorted dataflow graph plus its metadata.

    ``dims`` maps each symbolic dimension name to the (input, axis) it is
    read from at run time, so ``batch`` and ``seq`` stay symbolic through
    save, load and lowering.
    """

    inputs: list[Value]
    outputs: list[str]
    nodes: list[Node]
    params: dict[str, Tensor]
    dims: dict[str, tuple[str, int]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    tokenizer_json: bytes = b""
    history: list[HistoryEntry] = field(default_factory=list)

    def copy(self) -> Graph:
        """A copy whose structure may be changed freely; tensor bytes are shared (immutable)."""
        new = copy.copy(self)
        new.inputs = list(self.inputs)
        new.outputs = list(self.outputs)
        new.nodes = [Node(n.name, n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.scope,
                          dict(n.annotations)) for n in self.nodes]
        new.params = dict(self.params)
        new.dims = dict(self.dims)
        new.metadata = dict(self.metadata)
        new.history = list(self.history)
        return new

    def value_types(self) -> dict[str, TensorType]:
        """Type of every named value: inputs, params and node outputs."""
        types = {v.name: v.type for v in self.inputs}
        types.update({name: t.type for name, t in self.params.items()})
        for node in self.nodes:
            types.update({v.name: v.type for v in node.outputs})
        return types

    def producers(self) -> dict[str, Node]:
        """Map from value name to the node that defines it."""
        return {v.name: node for node in self.nodes for v in node.outputs}

    def users(self) -> dict[str, list[Node]]:
        """Map from value name to the nodes that read it, in graph order."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def has_weights(self) -> bool:
        """False for a graph read without its tensor bytes (``io.load_structure``)."""
        return all(t.data is not None for t in self.params.values())

    def param_count(self) -> int:
        """Elements across all params and buffers."""
        return sum(t.type.numel() for t in self.params.values())

    def __repr__(self) -> str:
        return (f"Graph(inputs={[v.name for v in self.inputs]}, outputs={self.outputs}, "
                f"{len(self.nodes)} nodes, {len(self.params)} params)")
