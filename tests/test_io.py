"""Robustness of .mir file I/O (maseir.io): round trips, determinism, and a
clear MaseIRError (never another exception) for every damaged file."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maseir
import maseir.io as mio
import maseir.output as moutput
from maseir._proto import maseir_pb2 as pb
from maseir.errors import ChecksumError, FileFormatError, MaseIRError, OutputError

# The container layout, written out here from the format description rather
# than taken from maseir.io, so the tests pin the format itself.
HEADER = struct.Struct("<8sHHIQ32sQ")  # magic, major, minor, flags, structure len, structure sha256, data len
ALIGN = 64


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def mlp_graph(seed: int) -> maseir.Graph:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    return maseir.export(model, (torch.randn(2, 4),))


@pytest.fixture(scope="module")
def graph() -> maseir.Graph:
    return mlp_graph(0)


@pytest.fixture(scope="module")
def other_graph() -> maseir.Graph:
    """Same structure and tensor sizes as ``graph``, different weights."""
    return mlp_graph(1)


@pytest.fixture(scope="module")
def blob(graph, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("blob") / "m.mir"
    maseir.save(graph, path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A module-wide folder, for tests (hypothesis) that cannot take tmp_path."""
    return tmp_path_factory.mktemp("scratch")


def layout(blob: bytes) -> SimpleNamespace:
    """Where everything lies in a .mir: header fields, sections, each inline tensor."""
    magic, major, minor, flags, struct_len, struct_sha, data_len = HEADER.unpack_from(blob)
    data_start = align(HEADER.size + struct_len)
    model = pb.Model()
    model.ParseFromString(blob[HEADER.size:HEADER.size + struct_len])
    tensors = {t.name: (data_start + t.location.offset, t.location.length)
               for t in model.graph.params if not t.location.file}
    return SimpleNamespace(magic=magic, major=major, minor=minor, flags=flags, struct_len=struct_len,
                           struct_sha=struct_sha, data_len=data_len, data_start=data_start,
                           model=model, tensors=tensors)


def flip(blob: bytes, offset: int, mask: int = 0xFF) -> bytes:
    out = bytearray(blob)
    out[offset] ^= mask
    return bytes(out)


def with_structure(blob: bytes, mutate) -> bytes:
    """``blob`` with its structure message edited by ``mutate(model)``, and a
    header (length, sha256) that matches, so only the edit is wrong."""
    lay = layout(blob)
    model = pb.Model()
    model.CopyFrom(lay.model)
    mutate(model)
    structure = model.SerializeToString(deterministic=True)
    header = sealed(HEADER.pack(lay.magic, lay.major, lay.minor, lay.flags, len(structure), bytes(32),
                                lay.data_len), structure)
    pad = b"\0" * (align(HEADER.size + len(structure)) - HEADER.size - len(structure))
    return header + structure + pad + blob[lay.data_start:]


def sealed(header: bytes, structure: bytes) -> bytes:
    """``header`` with the sha256 its version asks for (1.0: the structure alone;
    1.1 on: the header's other fields and the structure)."""
    if struct.unpack_from("<H", header, 10)[0] == 0:
        digest = hashlib.sha256(structure).digest()
    else:
        digest = hashlib.sha256(header[:24] + header[56:] + structure).digest()
    return header[:24] + digest + header[56:]


def with_version(blob: bytes, major: int, minor: int) -> bytes:
    """``blob`` rewritten as a file of version major.minor, its header sealed again."""
    lay = layout(blob)
    header = sealed(blob[:8] + struct.pack("<HH", major, minor) + blob[12:HEADER.size],
                    blob[HEADER.size:HEADER.size + lay.struct_len])
    return header + blob[HEADER.size:]


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` as a new file (new inode): load memory-maps files, so
    rewriting one in place would change (or, when shorter, crash) a graph
    loaded from it earlier."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


def test_layout_matches_the_documented_header(blob):
    assert HEADER.size == 64 and mio._HEADER.format == HEADER.format
    lay = layout(blob)
    assert lay.magic == mio.MAGIC
    assert (lay.major, lay.minor, lay.flags) == (mio.FORMAT_MAJOR, mio.FORMAT_MINOR, 0)
    assert len(blob) == lay.data_start + lay.data_len
    assert lay.struct_sha == hashlib.sha256(blob[:24] + blob[56:64] + blob[64:64 + lay.struct_len]).digest()
    assert set(lay.tensors) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for start, length in lay.tensors.values():
        assert (start - lay.data_start) % ALIGN == 0 and start + length <= len(blob)


# --- round trips and determinism ---------------------------------------------------
def test_round_trip_gives_an_equal_graph(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path)
    loaded = maseir.load(path)
    assert loaded == graph
    assert maseir.show(loaded) == maseir.show(graph)
    # == compares tensors by sha256; check the bytes themselves too.
    for name, tensor in graph.params.items():
        assert bytes(loaded.params[name].data) == bytes(tensor.data)


def test_save_is_deterministic(graph, blob, tmp_path):
    a, b, c = tmp_path / "a.mir", tmp_path / "b.mir", tmp_path / "c.mir"
    maseir.save(graph, a)
    maseir.save(graph, b)
    assert a.read_bytes() == b.read_bytes() == blob
    maseir.save(maseir.load(a), c)  # a loaded graph saves back to the same bytes
    assert c.read_bytes() == blob


def test_save_accepts_str_paths_and_overwrites(graph, other_graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(other_graph, str(path))
    maseir.save(graph, str(path))
    assert maseir.load(str(path)) == graph
    assert os.listdir(tmp_path) == ["m.mir"]


# --- files that are not .mir files ---------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "missing.mir"
    with pytest.raises(FileFormatError, match="no such file") as info:
        maseir.load(path)
    assert str(path) in str(info.value)


def test_directory(tmp_path):
    folder = tmp_path / "folder.mir"
    folder.mkdir()
    with pytest.raises(FileFormatError, match="directory") as info:
        maseir.load(folder)
    assert str(folder) in str(info.value)


NOT_MIR = {
    "random": random.Random(0).randbytes(300),
    "random-short": random.Random(1).randbytes(20),
    "text": b"node x: float32[4] = relu(y)\n" * 10,
    "empty": b"",
    "png": b"\x89PNG\r\n\x1a\n" + bytes(200),  # the magic mimics PNG's on purpose
    "zeros": bytes(4096),
}


@pytest.mark.parametrize("content", NOT_MIR.values(), ids=NOT_MIR.keys())
def test_not_a_mir_file(tmp_path, content):
    path = write(tmp_path / "x.mir", content)
    with pytest.raises(FileFormatError, match="not a .mir file") as info:
        maseir.load(path)
    assert str(path) in str(info.value)


def test_truncated_at_every_offset(blob, tmp_path):
    path = tmp_path / "t.mir"
    for n in range(len(blob)):
        write(path, blob[:n])
        with pytest.raises(FileFormatError) as info:
            maseir.load(path)
        message = str(info.value)
        assert str(path) in message, n
        assert ("truncated" if n else "not a .mir file") in message, (n, message)


def test_trailing_bytes(blob, tmp_path):
    path = write(tmp_path / "t.mir", blob + b"\0")
    with pytest.raises(FileFormatError, match="1 unexpected bytes after the data section"):
        maseir.load(path)


# --- corruption ---------------------------------------------------------------------
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_tensor_byte_names_the_tensor(blob, tmp_path, where):
    for name, (start, length) in layout(blob).tensors.items():
        offset = {"first": start, "middle": start + length // 2, "last": start + length - 1}[where]
        path = write(tmp_path / "c.mir", flip(blob, offset, 0x01))
        with pytest.raises(ChecksumError) as info:
            maseir.load(path)
        message = str(info.value)
        assert f"tensor {name} " in message and str(path) in message
        # verify=False reads the file anyway (``maseir check`` relies on it) ...
        loaded = maseir.load(path, verify=False)
        # ... and verify_checksums then names exactly the damaged tensor.
        assert mio.verify_checksums(loaded) == [name]


def test_two_flipped_tensors_are_counted(blob, tmp_path):
    lay = layout(blob)
    damaged = blob
    for name in ("0.weight", "2.weight"):
        damaged = flip(damaged, lay.tensors[name][0])
    with pytest.raises(ChecksumError, match="2 tensors differ"):
        maseir.load(write(tmp_path / "c.mir", damaged))


def test_flipped_structure_byte_at_every_offset(blob, tmp_path):
    lay = layout(blob)
    path = tmp_path / "c.mir"
    for offset in range(HEADER.size, HEADER.size + lay.struct_len):
        write(path, flip(blob, offset, 0x01))
        with pytest.raises(ChecksumError, match="structure does not match its sha256"):
            maseir.load(path)


def test_flipped_structure_sha(blob, tmp_path):
    path = write(tmp_path / "c.mir", flip(blob, 24))  # inside the sha256 field (bytes 24..55)
    with pytest.raises(ChecksumError, match="structure"):
        maseir.load(path)


def test_single_byte_flip_at_every_offset(graph, blob, tmp_path):
    """Every flipped byte is an error, except in the bytes no reader needs:
    the minor version and flags fields and the zero padding before each aligned
    section or tensor (there a load must still give the same graph)."""
    lay = layout(blob)
    covered = set(range(0, 10)) | set(range(16, HEADER.size + lay.struct_len))
    for start, length in lay.tensors.values():
        covered |= set(range(start, start + length))
    path = tmp_path / "c.mir"
    loaded_at = []
    for offset in range(len(blob)):
        write(path, flip(blob, offset))
        try:
            loaded = maseir.load(path)
        except MaseIRError:
            continue
        assert loaded == graph, offset
        loaded_at.append(offset)
    assert not covered & set(loaded_at), sorted(covered & set(loaded_at))


# --- versions -------------------------------------------------------------------------
@pytest.mark.parametrize("major", [mio.FORMAT_MAJOR + 1, 0xFFFF])
def test_newer_major_is_refused(blob, tmp_path, major):
    path = write(tmp_path / "v.mir", with_version(blob, major, 0))
    with pytest.raises(FileFormatError) as info:
        maseir.load(path)
    message = str(info.value)
    assert f"version {major}.0" in message and "newer" in message and "upgrade" in message
    assert f"{mio.FORMAT_MAJOR}.{mio.FORMAT_MINOR}" in message and str(path) in message


@pytest.mark.parametrize("minor", sorted({0, mio.FORMAT_MINOR, mio.FORMAT_MINOR + 1}))
def test_same_major_loads_whatever_the_minor(graph, blob, tmp_path, minor):
    path = write(tmp_path / "v.mir", with_version(blob, mio.FORMAT_MAJOR, minor))
    assert maseir.load(path) == graph


# --- crafted structures (valid sha256, wrong content) -----------------------------------
CRAFTED = {
    "unknown dtype": lambda m: setattr(m.graph.params[0].type, "dtype", "complex64"),
    "wrong shape": lambda m: m.graph.params[0].type.shape.add(size=3),
    "symbolic param": lambda m: m.graph.params[0].type.shape.add(symbol="batch"),
    "param format kind": lambda m: setattr(m.graph.params[0].type.format, "kind", 99),
    "node format kind": lambda m: setattr(m.graph.nodes[0].outputs[0].type.format, "kind", 6),
    "attribute without value": lambda m: m.graph.nodes[0].attrs.add(name="zz"),
    "offset past the end": lambda m: setattr(m.graph.params[0].location, "offset", 2**63),
    "length past the end": lambda m: setattr(m.graph.params[-1].location, "length", 4096),
    "nul in external name": lambda m: setattr(m.graph.params[0].location, "file", "a\0b"),
    "external is a folder": lambda m: setattr(m.graph.params[0].location, "file", "."),
}


@pytest.mark.parametrize("mutate", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_structure_is_a_file_format_error(blob, tmp_path, mutate):
    path = write(tmp_path / "c.mir", with_structure(blob, mutate))
    with pytest.raises(FileFormatError):
        maseir.load(path)


def test_unchanged_rewritten_structure_still_loads(graph, blob, tmp_path):
    """Sanity check of ``with_structure`` itself."""
    assert with_structure(blob, lambda m: None) == blob
    assert maseir.load(write(tmp_path / "c.mir", with_structure(blob, lambda m: None))) == graph


def test_crafted_input_format_kind_is_a_file_format_error(blob, tmp_path):
    path = write(tmp_path / "c.mir",
                 with_structure(blob, lambda m: setattr(m.graph.inputs[0].type.format, "kind", 6)))
    with pytest.raises(FileFormatError):
        maseir.load(path)


def test_crafted_structure_error_names_the_file(blob, tmp_path):
    path = write(tmp_path / "c.mir", with_structure(blob, CRAFTED["unknown dtype"]))
    with pytest.raises(FileFormatError) as info:
        maseir.load(path)
    assert str(path) in str(info.value)


# --- external data ------------------------------------------------------------------------
def test_external_data_round_trip(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    data = tmp_path / "m.mir.data"
    assert sorted(os.listdir(tmp_path)) == ["m.mir", "m.mir.data"]
    lay = layout(path.read_bytes())
    assert lay.data_len == 0 and lay.tensors == {}
    assert {t.location.file for t in lay.model.graph.params} == {"m.mir.data"}
    assert data.stat().st_size >= sum(t.nbytes for t in graph.params.values())
    assert maseir.load(path) == graph
    first = (path.read_bytes(), data.read_bytes())
    maseir.save(maseir.load(path), path, external_data_threshold=1)
    assert (path.read_bytes(), data.read_bytes()) == first


def test_external_data_threshold_splits_by_size(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=64)
    files = {t.name: t.location.file for t in layout(path.read_bytes()).model.graph.params}
    assert files == {"0.weight": "m.mir.data", "2.weight": "m.mir.data", "0.bias": "", "2.bias": ""}
    assert maseir.load(path) == graph


def test_external_data_missing(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    (tmp_path / "m.mir.data").unlink()
    with pytest.raises(FileFormatError, match="m.mir.data is missing") as info:
        maseir.load(path)
    assert str(path) in str(info.value)


def test_external_data_truncated(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    data = tmp_path / "m.mir.data"
    data.write_bytes(data.read_bytes()[:-1])
    with pytest.raises(FileFormatError, match="lies past the end of m.mir.data"):
        maseir.load(path)


def test_external_data_flipped_names_the_tensor(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    params = layout(path.read_bytes()).model.graph.params
    target = next(t for t in params if t.name == "2.weight")
    data = tmp_path / "m.mir.data"
    data.write_bytes(flip(data.read_bytes(), target.location.offset + 5))
    with pytest.raises(ChecksumError, match="tensor 2.weight "):
        maseir.load(path)


@pytest.mark.parametrize("name", ["../outside.data", "sub/../../outside.data", "/tmp/outside.data",
                                  "..\\outside.data", "sub\\m.mir.data"])
def test_external_data_path_must_be_plain_relative(graph, tmp_path, name):
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    # Put real data where the crafted name would lead, so only the name check can refuse it.
    (tmp_path / "outside.data").write_bytes((folder / "m.mir.data").read_bytes())
    crafted = with_structure(path.read_bytes(),
                             lambda m: [setattr(t.location, "file", name) for t in m.graph.params])
    path.write_bytes(crafted)
    with pytest.raises(FileFormatError, match="must be a plain relative path"):
        maseir.load(path)


def test_external_data_in_a_subfolder_is_allowed(graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    (tmp_path / "sub").mkdir()
    (tmp_path / "m.mir.data").rename(tmp_path / "sub" / "w.data")
    path.write_bytes(with_structure(path.read_bytes(),
                                    lambda m: [setattr(t.location, "file", "sub/w.data") for t in m.graph.params]))
    assert maseir.load(path) == graph


def test_external_data_is_read_once(graph, tmp_path, monkeypatch):
    path = tmp_path / "m.mir"
    maseir.save(graph, path, external_data_threshold=1)
    calls = []
    real = mio.read_external
    monkeypatch.setattr(mio, "read_external", lambda *a: calls.append(a) or real(*a))
    assert maseir.load(path) == graph
    assert len(calls) == 1


# --- atomic saves -------------------------------------------------------------------------
def _fail_replace(exc):
    def replace(src, dst):
        raise exc
    return replace


def _fail_fsync(exc):
    def fsync(fd):
        raise exc
    return fsync


FAILURES = {
    "replace-oserror": ("replace", _fail_replace(OSError(28, "No space left on device"))),
    "fsync-oserror": ("fsync", _fail_fsync(OSError(5, "Input/output error"))),
    "fsync-interrupt": ("fsync", _fail_fsync(KeyboardInterrupt())),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_failed_save_leaves_the_old_file_and_no_temp_files(graph, other_graph, tmp_path, monkeypatch, failure):
    path = tmp_path / "m.mir"
    maseir.save(other_graph, path)
    before = path.read_bytes()
    attr, fake = failure
    monkeypatch.setattr(mio.os, attr, fake)
    with pytest.raises((OSError, KeyboardInterrupt)):
        maseir.save(graph, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.mir"]
    assert path.read_bytes() == before
    assert maseir.load(path) == other_graph


def test_failed_first_save_leaves_nothing(graph, tmp_path, monkeypatch):
    monkeypatch.setattr(mio.os, "replace", _fail_replace(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        maseir.save(graph, tmp_path / "m.mir", external_data_threshold=1)
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_folder_fails_cleanly(graph, tmp_path):
    with pytest.raises(OutputError, match="nope does not exist"):
        maseir.save(graph, tmp_path / "nope" / "m.mir")
    assert os.listdir(tmp_path) == []


def test_failed_save_with_external_data_keeps_the_old_pair(graph, other_graph, tmp_path, monkeypatch):
    path = tmp_path / "m.mir"
    maseir.save(other_graph, path, external_data_threshold=1)
    real = moutput._stage

    def stage(dst, chunks):  # the disk fills up while the .mir is written, after the .data
        if str(dst).endswith(".mir"):
            raise OSError(28, "No space left on device")
        return real(dst, chunks)

    monkeypatch.setattr(moutput, "_stage", stage)
    with pytest.raises(OSError):
        maseir.save(graph, path, external_data_threshold=1)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["m.mir", "m.mir.data"]
    assert maseir.load(path) == other_graph


def test_saved_file_mode_follows_the_umask(graph, tmp_path):
    umask = os.umask(0o022)
    try:
        maseir.save(graph, tmp_path / "m.mir")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.mir").stat().st_mode & 0o777 == 0o644


# --- a loaded graph and its file ---------------------------------------------------------
def test_loaded_graph_survives_an_atomic_overwrite(graph, other_graph, tmp_path):
    path = tmp_path / "m.mir"
    maseir.save(graph, path)
    loaded = maseir.load(path)
    maseir.save(other_graph, path)  # a new file replaces the old one
    for name, tensor in graph.params.items():
        assert bytes(loaded.params[name].data) == bytes(tensor.data)
    assert mio.verify_checksums(loaded) == []


def test_loaded_graph_survives_an_in_place_overwrite(graph, other_graph, tmp_path):
    path = tmp_path / "m.mir"
    other = tmp_path / "other.mir"
    maseir.save(graph, path)
    maseir.save(other_graph, other)
    loaded = maseir.load(path)
    with open(path, "r+b") as f:  # what `cp other.mir m.mir` does: same inode, same size here
        f.write(other.read_bytes())
    for name, tensor in graph.params.items():
        assert bytes(loaded.params[name].data) == bytes(tensor.data), name


def test_loaded_graph_survives_truncation_of_its_file(blob, tmp_path):
    path = write(tmp_path / "m.mir", blob)
    script = (
        "import sys, maseir\n"
        "g = maseir.load(sys.argv[1])\n"
        "open(sys.argv[1], 'r+b').truncate(0)\n"
        "print(sum(len(bytes(t.data)) for t in g.params.values()))\n")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-300:]}"


# --- properties -----------------------------------------------------------------------------
damage = st.one_of(
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=200)),
    st.tuples(st.just("prepend"), st.binary(min_size=1, max_size=200)),
    st.tuples(st.just("flip"), st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255))),
    st.tuples(st.just("prepend"), st.just(mio.MAGIC)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change=damage)
def test_damaged_file_loads_equal_or_raises_maseir_error(graph, blob, scratch, change):
    kind, arg = change
    if kind == "append":
        data = blob + arg
    elif kind == "prepend":
        data = arg + blob
    else:
        where, mask = arg
        data = flip(blob, int(where * len(blob)), mask)
    path = write(scratch / "p.mir", data)
    try:
        loaded = maseir.load(path)
    except MaseIRError:
        return
    assert loaded == graph


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(["flip", "drop", "insert"]),
                                st.integers(0, 255)), min_size=1, max_size=4))
def test_mangled_structure_with_valid_sha_never_crashes(blob, scratch, edits):
    """The structure's sha256 only catches accidents: a structure that hashes
    right but is garbage must still be refused as a MaseIRError (or load)."""
    lay = layout(blob)
    structure = bytearray(blob[HEADER.size:HEADER.size + lay.struct_len])
    for where, op, byte in edits:
        i = int(where * len(structure))
        if op == "flip":
            structure[i] ^= byte or 1
        elif op == "drop":
            del structure[i]
        else:
            structure.insert(i, byte)
        if not structure:
            structure.append(0)
    structure = bytes(structure)
    header = HEADER.pack(lay.magic, lay.major, lay.minor, lay.flags, len(structure),
                         hashlib.sha256(structure).digest(), lay.data_len)
    pad = b"\0" * (align(HEADER.size + len(structure)) - HEADER.size - len(structure))
    path = write(scratch / "s.mir", header + structure + pad + blob[lay.data_start:])
    try:
        maseir.load(path)
    except MaseIRError:
        pass


def test_external_data_symlinked_out_of_the_folder_is_refused(graph, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    maseir.save(graph, folder / "m.mir", external_data_threshold=1)
    secret = tmp_path / "secret.bin"
    secret.write_bytes((folder / "m.mir.data").read_bytes())  # same bytes: only the link is wrong
    (folder / "m.mir.data").unlink()
    (folder / "m.mir.data").symlink_to(secret)
    with pytest.raises(FileFormatError, match="resolves outside"):
        maseir.load(folder / "m.mir")
