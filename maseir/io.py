"""Reading and writing .mir files (layout in spec/format.md).

A .mir is a 64-byte header, the protobuf structure (spec/maseir.proto), and a
data section of raw little-endian tensor bytes, each tensor 64-byte aligned.
The header holds the format version, both section lengths and the
structure's sha256; every tensor has its own sha256. So a truncated file, a
flipped byte anywhere, or a file from a newer major version is a clear error,
and nothing in a file is ever executed. Saves are atomic (temp file + rename)
and deterministic (same graph, same bytes).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from google.protobuf.message import DecodeError

from ._proto import maseir_pb2 as pb
from .errors import ChecksumError, FileFormatError
from .ir import Graph
from .serialize import model_from_proto, model_to_proto

FORMAT_MAJOR = 1
"""Bumped for changes older readers cannot read; files of a newer major are refused."""
FORMAT_MINOR = 0
"""Bumped for additions older readers can skip; older minors always load."""

MAGIC = b"\x89MIR\r\n\x1a\n"
_HEADER = struct.Struct("<8sHHIQ32sQ")  # magic, major, minor, flags, structure len, sha256, data len
assert _HEADER.size == 64
ALIGN = 64


def producer() -> str:
    """The producer string written into files and history entries."""
    from . import __version__
    return f"maseir {__version__}"


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def save(graph: Graph, path: str | os.PathLike, *, external_data_threshold: int | None = None) -> None:
    """Write ``graph`` to ``path`` atomically.

    Tensors of at least ``external_data_threshold`` bytes go to
    ``<name>.data`` next to the file (referenced by a relative path), which
    keeps the .mir itself small, e.g. for version control.
    """
    path = Path(path)
    unhashed = [t for t in graph.params.values() if t._sha256 is None]
    for tensor, digest in zip(unhashed, _sha256_all([t.data for t in unhashed])):
        tensor._sha256 = digest
    model = model_to_proto(graph, producer())
    external_name = path.name + ".data"
    inline, external = _DataSection(), _DataSection()
    for msg in model.graph.params:
        tensor = graph.params[msg.name]
        if external_data_threshold is not None and tensor.nbytes >= external_data_threshold:
            msg.location.file = external_name
            msg.location.offset = external.add(tensor.data)
        else:
            msg.location.offset = inline.add(tensor.data)
        msg.location.length = tensor.nbytes
    structure = model.SerializeToString(deterministic=True)
    header = _HEADER.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0, len(structure),
                          hashlib.sha256(structure).digest(), inline.size)
    pad = b"\0" * (_align(_HEADER.size + len(structure)) - _HEADER.size - len(structure))
    if external.size:
        _write_atomic(path.parent / external_name, external.chunks)
    _write_atomic(path, [header, structure, pad, *inline.chunks])


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


def _write_atomic(path: Path, chunks) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Read a .mir file. With ``verify`` (the default) every tensor's sha256 is
    checked and a mismatch raises ChecksumError naming the tensor."""
    path = Path(path)
    blob = _map(path)
    model, view = _parse(path, blob)
    externals: dict[str, memoryview] = {}

    def tensor_bytes(msg):
        loc = msg.location
        source = view if not loc.file else externals.setdefault(loc.file, _read_external(path, loc.file))
        end = loc.offset + loc.length
        if end > len(source):
            where = "the data section" if not loc.file else loc.file
            raise FileFormatError(f"{path}: tensor {msg.name} lies past the end of {where} (truncated?)")
        return source[loc.offset:end]

    graph = model_from_proto(model, tensor_bytes)
    if verify:
        bad = verify_checksums(graph)
        if bad:
            raise ChecksumError(f"{path}: tensor {bad[0]} does not match its sha256 "
                                f"(the file is corrupt{'' if len(bad) == 1 else f'; {len(bad)} tensors differ'})")
    return graph


def verify_checksums(graph: Graph) -> list[str]:
    """Names of the params whose bytes do not match their recorded sha256."""
    tensors = list(graph.params.values())
    digests = _sha256_all([t.data for t in tensors])
    return [t.name for t, digest in zip(tensors, digests) if digest != t.sha256]


def _sha256_all(buffers) -> list[bytes]:
    """sha256 of each buffer, on all cores (hashlib releases the GIL on large buffers)."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda data: hashlib.sha256(data).digest(), buffers))


def _map(path: Path):
    """The file's bytes, memory-mapped read-only: tensors are views into it, and
    checksumming reads the page cache directly instead of a copy."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not a .mir file") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _parse(path: Path, blob) -> tuple[pb.Model, memoryview]:
    if len(blob) < _HEADER.size:
        head = blob[:len(MAGIC)]
        if head and MAGIC.startswith(head):
            raise FileFormatError(f"{path}: truncated: {len(blob)} bytes, shorter than the header")
        raise FileFormatError(f"{path}: not a .mir file ({len(blob)} bytes, no maseir header)")
    magic, major, minor, _flags, struct_len, struct_sha, data_len = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise FileFormatError(f"{path}: not a .mir file (bad magic bytes)")
    if major > FORMAT_MAJOR:
        raise FileFormatError(
            f"{path}: format version {major}.{minor} is newer than this maseir reads "
            f"({FORMAT_MAJOR}.{FORMAT_MINOR}); upgrade maseir to open it")
    data_start = _align(_HEADER.size + struct_len)
    expected = data_start + data_len
    if len(blob) < expected:
        raise FileFormatError(f"{path}: truncated: {len(blob)} bytes, the header says {expected}")
    if len(blob) > expected:
        raise FileFormatError(f"{path}: {len(blob) - expected} unexpected bytes after the data section")
    structure = blob[_HEADER.size:_HEADER.size + struct_len]
    if hashlib.sha256(structure).digest() != struct_sha:
        raise ChecksumError(f"{path}: the graph structure does not match its sha256 (the file is corrupt)")
    model = pb.Model()
    try:
        model.ParseFromString(structure)
    except DecodeError as exc:
        raise FileFormatError(f"{path}: corrupt structure: {exc}") from None
    return model, memoryview(blob)[data_start:]


def _read_external(path: Path, name: str) -> memoryview:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise FileFormatError(f"{path}: external data path {name!r} must be a plain relative path")
    target = path.parent / rel
    try:
        return memoryview(target.read_bytes())
    except OSError:
        raise FileFormatError(f"{path}: external data file {target} is missing or unreadable") from None
