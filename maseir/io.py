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
import os
import struct
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from google.protobuf.message import DecodeError

from ._proto import maseir_pb2 as pb
from .arguments import require_graph, require_path
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
    keeps the .mir itself small, e.g. for version control. A ``graph`` that
    is not a Graph or a ``path`` that is not a str / PathLike is an
    ArgumentError.
    """
    require_graph(graph, "save")
    path = Path(require_path(path, "save"))
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
    files = [(path.parent / external_name, external.chunks)] if external.size else []
    write_atomic(files + [(path, [header, structure, pad, *inline.chunks])])


def write_atomic(files: list[tuple[Path, list]]) -> None:
    """Write each (path, chunks) so that no reader ever sees a partial file.

    Every file is written and fsynced to a temporary name next to it before
    any is renamed into place (in the order given), so a failed write leaves
    the old files intact."""
    staged = []
    try:
        for path, chunks in files:
            staged.append((_stage(Path(path), chunks), Path(path)))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


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


def _stage(path: Path, chunks) -> str:
    """Write ``chunks`` to a fsynced temporary file next to ``path``; returns its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file follows the umask
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Read a .mir file. With ``verify`` (the default) every tensor's sha256 is
    checked and a mismatch raises ChecksumError naming the tensor."""
    path = Path(path)
    with open_input(path) as f, ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
        model, data_len = _read_structure(path, f)
        data = bytearray(data_len)
        inline_digests = _read_data(path, f, data, model, pool if verify else None)
    view = memoryview(data).toreadonly()  # tensors share it; nobody can write to it
    externals: dict[str, memoryview] = {}

    def tensor_bytes(msg):
        loc = msg.location
        if loc.file and loc.file not in externals:
            externals[loc.file] = read_external(path, loc.file)
        source = externals[loc.file] if loc.file else view
        end = loc.offset + loc.length
        if end > len(source):
            where = "the data section" if not loc.file else loc.file
            raise FileFormatError(f"{path}: tensor {msg.name} lies past the end of {where} (truncated?)")
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


def _read_structure(path: Path, f) -> tuple[pb.Model, int]:
    """Check the header, the file length and the structure's sha256; parse the
    structure. Leaves ``f`` at the start of the data section."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        if head and MAGIC.startswith(head[:len(MAGIC)]):
            raise FileFormatError(f"{path}: truncated: {len(head)} bytes, shorter than the header")
        raise FileFormatError(f"{path}: not a .mir file ({len(head)} bytes, no maseir header)")
    magic, major, minor, flags, struct_len, struct_sha, data_len = _HEADER.unpack(head)
    if magic != MAGIC:
        raise FileFormatError(f"{path}: not a .mir file (bad magic bytes)")
    if major > FORMAT_MAJOR:
        raise FileFormatError(
            f"{path}: format version {major}.{minor} is newer than this maseir reads "
            f"({FORMAT_MAJOR}.{FORMAT_MINOR}); upgrade maseir to open it")
    if flags:
        raise FileFormatError(f"{path}: unknown header flags {flags:#x} (corrupt, or from a newer maseir)")
    data_start = _align(_HEADER.size + struct_len)
    expected = data_start + data_len
    if size < expected:
        raise FileFormatError(f"{path}: truncated: {size} bytes, the header says {expected}")
    if size > expected:
        raise FileFormatError(f"{path}: {size - expected} unexpected bytes after the data section")
    structure = f.read(struct_len)
    if hashlib.sha256(structure).digest() != struct_sha:
        raise ChecksumError(f"{path}: the graph structure does not match its sha256 (the file is corrupt)")
    if f.read(data_start - _HEADER.size - struct_len).strip(b"\0"):
        raise FileFormatError(f"{path}: non-zero padding before the data section (the file is corrupt)")
    model = pb.Model()
    try:
        model.ParseFromString(structure)
    except DecodeError as exc:
        raise FileFormatError(f"{path}: corrupt structure: {exc}") from None
    return model, data_len


def _read_data(path: Path, f, data: bytearray, model: pb.Model, pool) -> dict:
    """Read the data section into ``data``, starting each inline tensor's sha256
    on ``pool`` as soon as its bytes are in, so hashing overlaps reading."""
    pending = sorted((p.location.offset + p.location.length, p.location.offset, p.name)
                     for p in model.graph.params if not p.location.file)
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


def read_external(path: Path, name: str) -> memoryview:
    """The bytes of external data file ``name`` next to ``path`` (a .mir or an ONNX
    file). Only plain relative paths are followed, so a file cannot make maseir
    read from anywhere else."""
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise FileFormatError(f"{path}: external data path {name!r} must be a plain relative path")
    target = path.parent / rel
    folder = path.parent.resolve()
    if folder not in target.resolve().parents:  # a symlink may not lead out of the folder either
        raise FileFormatError(f"{path}: external data file {name!r} resolves outside {folder}")
    try:
        return memoryview(target.read_bytes())
    except OSError:
        raise FileFormatError(f"{path}: external data file {target} is missing or unreadable") from None
