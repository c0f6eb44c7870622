"""Reading and writing .mir files (layout in spec/format.md).

A .mir is a 64-byte header, the protobuf structure (spec/maseir.proto), and a
data section of raw little-endian tensor bytes, each tensor 64-byte aligned.
The header holds the format version, both section lengths and the
structure's sha256; every tensor has its own sha256. So a truncated file, a
flipped byte anywhere, or a file from a newer major version is a clear error,
and nothing in a file is ever executed. Saves are deterministic (same graph, same
bytes) and follow maseir.output: atomic over a regular file, never over anything else.
"""

from __future__ import annotations

import hashlib
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from google.protobuf.message import DecodeError

from ._proto import maseir_pb2 as pb
from .arguments import require_graph, require_path
from .errors import ChecksumError, FileFormatError, GraphError
from .ir import Graph
from .output import Output, output_target, replace_files, write_output
from . import sparse
from .formats import stored_nbytes
from .serialize import type_from_proto, model_from_proto, model_to_proto

FORMAT_MAJOR = 1
"""Bumped for changes older readers cannot read; files of a newer major are refused."""
FORMAT_MINOR = 2
"""Bumped for additions older readers can skip; older minors always load.

1.1: the header's sha256 covers the header's other fields too (spec/format.md).
1.2: a mostly-zero tensor may be stored sparsely (DataLocation.BITMASK, maseir/sparse.py), and a Dim
may be a size expression (SizeExpr)."""

MAGIC = b"\x89MIR\r\n\x1a\n"
_HEADER = struct.Struct("<8sHHIQ32sQ")  # magic, major, minor, flags, structure len, sha256, data len
assert _HEADER.size == 64
_SHA_AT = 24  # offset of the structure's sha256 in the header


def structure_digest(header: bytes, structure: bytes) -> bytes:
    """The sha256 a header records: from version 1.1 over the header's other 32
    bytes and the structure, so that every byte of a .mir is either checksummed
    or required to be zero; in 1.0 files over the structure alone."""
    _magic, _major, minor, *_rest = _HEADER.unpack(header)
    if minor == 0:
        return hashlib.sha256(structure).digest()
    return hashlib.sha256(header[:_SHA_AT] + header[_SHA_AT + 32:] + structure).digest()
ALIGN = 64


def producer() -> str:
    """The producer string written into files and history entries."""
    from . import __version__
    return f"maseir {__version__}"


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def save(graph: Graph, path, *, external_data_threshold: int | None = None) -> int:
    """Write ``graph`` to ``path`` (a path, or an Output from ``maseir.output.check_output``)
    by the rules of ``maseir.output``: atomically over a regular file or a new name, through
    a symlink to its target, written through to a FIFO or a device. Returns the bytes written.

    Tensors of at least ``external_data_threshold`` bytes go to ``<name>.data`` next to the file
    (referenced by a relative path), which keeps the .mir itself small, e.g. for version
    control. Raises OutputError (one line) when the output cannot be written, ArgumentError
    for a ``graph`` that is not a Graph or a ``path`` that is not a str / PathLike / Output.
    """
    require_graph(graph, "save")
    if not isinstance(path, Output):
        require_path(path, "save")
    target = output_target(path)
    if not graph.has_weights:
        raise GraphError(f"{path}: cannot save a graph read without its weights (io.load_structure); "
                         "load it with io.load")
    unhashed = [t for t in graph.params.values() if t._sha256 is None]
    for tensor, digest in zip(unhashed, _sha256_all([t.data for t in unhashed])):
        tensor._sha256 = digest
    model = model_to_proto(graph, producer())
    external_name = target.side_name if external_data_threshold is not None else None
    inline, external = _DataSection(), _DataSection()
    for msg in model.graph.params:
        tensor = graph.params[msg.name]
        stored = sparse.encode(tensor.data, sparse.unit_of(tensor.type))  # mostly zeros: smaller as a bitmask
        if stored is None:
            stored = tensor.data
        else:
            msg.location.encoding = pb.DataLocation.BITMASK
        if external_name is not None and tensor.nbytes >= external_data_threshold:
            msg.location.file = external_name
            msg.location.offset = external.add(stored)
        else:
            msg.location.offset = inline.add(stored)
        msg.location.length = len(stored)
    structure = model.SerializeToString(deterministic=True)
    header = _HEADER.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0, len(structure), bytes(32), inline.size)
    header = header[:_SHA_AT] + structure_digest(header, structure) + header[_SHA_AT + 32:]
    pad = b"\0" * (_align(_HEADER.size + len(structure)) - _HEADER.size - len(structure))
    return write_output(target, [header, structure, pad, *inline.chunks], external.chunks)


def write_atomic(files: list[tuple[Path, list]]) -> None:
    """Write each (path, chunks) so that no reader ever sees a partial file (kept for
    callers of earlier versions: see ``maseir.output.replace_files``)."""
    replace_files(files)


class _DataSection:
    """Tensor bytes laid out back to back, each at an aligned offset."""

    def __init__(self):
        self.chunks: list = []
        self.size = 0

    def add(self, data) -> int:
        offset = _align(self.size)
        if offset > self.size:
            self.chunks.append(b"\0" * (offset - self.size))
        self.chunks.append(data)
        self.size = offset + len(data)
        return offset


def load(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Read a .mir file. With ``verify`` (the default) every tensor's sha256 is
    checked (a mismatch raises ChecksumError naming the tensor). Every byte of
    the data sections that no tensor covers must be zero, so no byte of a .mir
    goes unchecked.

    Raises FileFormatError for a missing, truncated, corrupt or too new file,
    or missing external data.
    """
    path = Path(path)
    with open_input(path) as f, ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
        model, data_len, _version = _read_structure(path, f)
        data = bytearray(data_len)
        inline_digests = _read_data(path, f, data, model, pool if verify else None)
    view = memoryview(data).toreadonly()  # tensors share it; nobody can write to it
    _check_unused_bytes(path, "the data section", view,
                            [p.location for p in model.graph.params if not p.location.file])
    externals: dict[str, memoryview] = {}

    def tensor_bytes(msg):
        loc = msg.location
        if loc.file and loc.file not in externals:
            externals[loc.file] = read_external(path, loc.file)
            _check_unused_bytes(path, loc.file, externals[loc.file],
                                [p.location for p in model.graph.params if p.location.file == loc.file],
                                exact_end=True)
        source = externals[loc.file] if loc.file else view
        end = loc.offset + loc.length
        if end > len(source):
            where = "the data section" if not loc.file else loc.file
            raise FileFormatError(f"{path}: tensor {msg.name} lies past the end of {where} (truncated?)")
        if loc.encoding not in (pb.DataLocation.DENSE, pb.DataLocation.BITMASK):
            raise FileFormatError(f"{path}: tensor {msg.name} has an unknown data encoding {loc.encoding}")
        if loc.encoding == pb.DataLocation.BITMASK:
            tensor_type = type_from_proto(msg.type)
            if loc.length >= stored_nbytes(tensor_type):  # save stores such a tensor dense (as load_structure checks)
                raise FileFormatError(f"{path}: corrupt structure: sparse tensor {msg.name} is not smaller than "
                                      "its dense bytes")
            return sparse.decode(bytes(source[loc.offset:end]), stored_nbytes(tensor_type), sparse.unit_of(tensor_type),
                                 f"{path}: tensor {msg.name}")
        return source[loc.offset:end]

    graph = model_from_proto(model, tensor_bytes, str(path))
    if verify:
        digests = {name: future.result() for name, future in inline_digests.items()}
        external = [t for name, t in graph.params.items() if name not in digests]
        digests.update(zip((t.name for t in external), _sha256_all([t.data for t in external])))
        bad = [name for name, t in graph.params.items() if digests[name] != t.sha256]
        if bad:
            raise ChecksumError(f"{path}: tensor {bad[0]} does not match its sha256 "
                                f"(the file is corrupt{'' if len(bad) == 1 else f'; {len(bad)} tensors differ'})")
    return graph


@dataclass(frozen=True)
class Layout:
    """Where a .mir file keeps its tensor bytes, read from its header and structure.

    ``external`` maps each external data file (a path relative to the .mir)
    to the tensors stored in it; ``missing`` lists those files that are not
    next to the .mir (as when git hands a textconv driver a temporary copy).
    """

    version: tuple[int, int]
    data_bytes: int
    external: dict[str, tuple[str, ...]]
    missing: tuple[str, ...]


def load_structure(path: str | os.PathLike) -> tuple[Graph, Layout]:
    """The graph of a .mir without its tensor bytes, and the file's layout.

    Reads the header and the structure only (the structure's sha256 is
    checked; tensor checksums are as recorded, unverified), so it is fast and
    works when external data files are missing. The params have ``data``
    None: such a graph can be shown, diffed by checksum and checked for
    structure, not lowered or saved. Raises FileFormatError like ``load``.
    """
    path = Path(path)
    with open_input(path) as f:
        model, data_len, version = _read_structure(path, f)
    files: dict[str, list[str]] = {}
    for msg in model.graph.params:
        if msg.location.file:
            files.setdefault(msg.location.file, []).append(msg.name)
    missing = tuple(sorted(name for name in files if not _external_exists(path, name)))
    graph = model_from_proto(model, lambda msg: None, str(path))
    for msg in model.graph.params:
        try:
            expected = graph.params[msg.name].expected_nbytes()
        except ValueError as exc:
            raise FileFormatError(f"{path}: corrupt structure: tensor {msg.name}: {exc}") from None
        if msg.location.encoding not in (pb.DataLocation.DENSE, pb.DataLocation.BITMASK):
            raise FileFormatError(f"{path}: tensor {msg.name} has an unknown data encoding {msg.location.encoding}")
        if msg.location.encoding == pb.DataLocation.BITMASK:
            if msg.location.length >= expected:
                raise FileFormatError(f"{path}: corrupt structure: sparse tensor {msg.name} is not smaller than "
                                      "its dense bytes")
        elif msg.location.length != expected:
            raise FileFormatError(f"{path}: corrupt structure: tensor {msg.name} has {msg.location.length} "
                                  f"bytes, its type needs {expected}")
    return graph, Layout(version, data_len, {k: tuple(v) for k, v in files.items()}, missing)


def _external_exists(path: Path, name: str) -> bool:
    try:
        read_external_path(path, name)
    except FileFormatError:
        return False
    return True


def _check_unused_bytes(path: Path, where: str, data, locations, exact_end: bool = False) -> None:
    """Every byte of ``data`` outside the tensors at ``locations`` is zero (alignment
    padding); with ``exact_end`` nothing may follow the last tensor."""
    pos = 0
    for start, end in sorted((loc.offset, loc.offset + loc.length) for loc in locations):
        if start > pos and bytes(data[pos:start]).strip(b"\0"):
            raise FileFormatError(f"{path}: non-zero padding at byte {pos} of {where} (the file is corrupt)")
        pos = max(pos, end)
    if pos < len(data):
        if exact_end:
            raise FileFormatError(f"{path}: {len(data) - pos} unexpected bytes after the last tensor in {where}")
        if bytes(data[pos:]).strip(b"\0"):
            raise FileFormatError(f"{path}: non-zero padding at byte {pos} of {where} (the file is corrupt)")


def external_data_threshold(path: str | os.PathLike) -> int | None:
    """The ``external_data_threshold`` that gives the .mir at ``path`` its layout:
    the size in bytes of its smallest tensor stored in external data, or None
    when every tensor is inline. Reads the header and the structure only.

    ``save`` puts a tensor in external data when it has at least the threshold's
    bytes, so every tensor of a file it wrote with threshold T that is inline is
    smaller than T, and T <= the smallest external one: saving with this value
    puts exactly the same tensors in external data again (and a new tensor
    there when it is at least that large). Raises FileFormatError like ``load``.
    """
    graph, layout = load_structure(path)
    sizes = [graph.params[name].nbytes for names in layout.external.values() for name in names]
    return min(sizes) if sizes else None


def verify_checksums(graph: Graph) -> list[str]:
    """Names of the params whose bytes do not match their recorded sha256."""
    tensors = list(graph.params.values())
    digests = _sha256_all([t.data for t in tensors])
    return [t.name for t, digest in zip(tensors, digests) if digest != t.sha256]


_HASH_WORKERS = min(4, os.cpu_count() or 1)
_CHUNK = 1 << 24


def _sha256(data) -> bytes:
    return hashlib.sha256(data).digest()


def _sha256_all(buffers) -> list[bytes]:
    """sha256 of each buffer, on all cores (hashlib releases the GIL on large buffers)."""
    with ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
        return list(pool.map(_sha256, buffers))


def open_input(path: Path, kind: str = "a .mir file"):
    """``path`` opened for reading, or a one-line FileFormatError saying why not."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not {kind}") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _hint(path: Path, head: bytes) -> str:
    """What to do with a file that is not a .mir but looks like an ONNX model."""
    # An ONNX ModelProto starts with field 1 (ir_version, a varint): tag byte 0x08.
    looks_onnx = len(head) > 1 and head[0] == 0x08 and 3 <= head[1] <= 13  # ONNX IR versions so far
    if path.suffix.lower() == ".onnx" or looks_onnx:
        return f"; it looks like an ONNX model: maseir import {path} -o {path.with_suffix('.mir').name}"
    return ""


def _read_structure(path: Path, f) -> tuple[pb.Model, int, tuple[int, int]]:
    """Check the header, the file length and the structure's sha256; parse the
    structure. Returns it with the data section's length and the file's format
    version; leaves ``f`` at the start of the data section."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        if head and MAGIC.startswith(head[:len(MAGIC)]):
            raise FileFormatError(f"{path}: truncated: {len(head)} bytes, shorter than the header")
        raise FileFormatError(f"{path}: not a .mir file ({len(head)} bytes, no maseir header){_hint(path, head)}")
    magic, major, minor, flags, struct_len, struct_sha, data_len = _HEADER.unpack(head)
    if magic != MAGIC:
        raise FileFormatError(f"{path}: not a .mir file (bad magic bytes){_hint(path, head)}")
    if major > FORMAT_MAJOR:
        raise FileFormatError(
            f"{path}: format version {major}.{minor} is newer than this maseir reads "
            f"({FORMAT_MAJOR}.{FORMAT_MINOR}); upgrade maseir to open it")
    if major < 1:
        raise FileFormatError(f"{path}: format version {major}.{minor} does not exist (corrupt header)")
    if flags:
        raise FileFormatError(f"{path}: unknown header flags {flags:#x} (corrupt, or from a newer maseir)")
    data_start = _align(_HEADER.size + struct_len)
    expected = data_start + data_len
    if size < expected:
        raise FileFormatError(f"{path}: truncated: {size} bytes, the header says {expected}")
    if size > expected:
        raise FileFormatError(f"{path}: {size - expected} unexpected bytes after the data section")
    structure = f.read(struct_len)
    if structure_digest(head, structure) != struct_sha:
        raise ChecksumError(f"{path}: the header or graph structure does not match its sha256 "
                            "(the file is corrupt)")
    if f.read(data_start - _HEADER.size - struct_len).strip(b"\0"):
        raise FileFormatError(f"{path}: non-zero padding before the data section (the file is corrupt)")
    model = pb.Model()
    try:
        model.ParseFromString(structure)
    except DecodeError as exc:
        raise FileFormatError(f"{path}: corrupt structure: {exc}") from None
    return model, data_len, (major, minor)


def _read_data(path: Path, f, data: bytearray, model: pb.Model, pool) -> dict:
    """Read the data section into ``data``, starting each inline tensor's sha256
    on ``pool`` as soon as its bytes are in, so hashing overlaps reading."""
    pending = sorted((p.location.offset + p.location.length, p.location.offset, p.name)
                     for p in model.graph.params
                     if not p.location.file and p.location.encoding == pb.DataLocation.DENSE)
    futures = {}
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        n = f.readinto(view[pos:pos + _CHUNK])
        if not n:
            raise FileFormatError(f"{path}: truncated while reading the data section")
        pos += n
        while pool is not None and pending and pending[0][0] <= pos:
            end, start, name = pending.pop(0)
            futures[name] = pool.submit(_sha256, view[start:end])
    if pool is not None:
        for end, start, name in pending:  # locations past the end are reported by the caller
            futures[name] = pool.submit(_sha256, view[start:min(end, len(data))])
    return futures


def read_external_path(path: Path, name: str) -> Path:
    """The path of external data file ``name`` next to ``path``. Only plain relative
    paths are followed, so a file cannot make maseir read from anywhere else."""
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise FileFormatError(f"{path}: external data path {name!r} must be a plain relative path")
    target = path.parent / rel
    folder = path.parent.resolve()
    if folder not in target.resolve().parents:  # a symlink may not lead out of the folder either
        raise FileFormatError(f"{path}: external data file {name!r} resolves outside {folder}")
    if not target.is_file():
        raise FileFormatError(f"{path}: external data file {target} is missing or unreadable")
    return target


def read_external(path: Path, name: str) -> memoryview:
    """The bytes of external data file ``name`` next to ``path`` (a .mir or an ONNX
    file); see ``read_external_path``."""
    target = read_external_path(path, name)
    try:
        return memoryview(target.read_bytes())
    except OSError:
        raise FileFormatError(f"{path}: external data file {target} is missing or unreadable") from None
