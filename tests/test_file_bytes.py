"""Every byte of a .mir (and of its external data file) is covered by a
checksum or required to be zero: flipping any one bit is an error on load.

Also: reading the structure alone (``io.load_structure``, used by show, diff
and ``check --structure``), and the hint for an ONNX file given where a .mir
is expected.
"""

from __future__ import annotations

import struct

import pytest
import torch

import maseir
import maseir.io as mio
from maseir.errors import FileFormatError, GraphError, MaseIRError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A .mir with odd-sized tensors, so the data section has padding between them."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1)).eval()
    graph = maseir.export(model, (torch.randn(2, 3),))
    folder = tmp_path_factory.mktemp("bytes")
    maseir.save(graph, folder / "m.mir")
    maseir.save(graph, folder / "x.mir", external_data_threshold=1)
    return graph, folder


def _flip_every_bit_position(path, tmp, what):
    blob = path.read_bytes()
    target = tmp / path.name
    undetected = []
    for offset in range(len(blob)):
        damaged = bytearray(blob)
        damaged[offset] ^= 1 << (offset % 8)
        target.write_bytes(bytes(damaged))
        try:
            what(target)
        except MaseIRError:
            continue
        undetected.append(offset)
    return undetected


def test_a_flipped_bit_anywhere_in_a_mir_is_detected(small, tmp_path):
    _, folder = small
    blob = (folder / "m.mir").read_bytes()
    _magic, _major, _minor, _flags, struct_len, _sha, data_len = mio._HEADER.unpack_from(blob)
    assert data_len > sum(t.nbytes for t in small[0].params.values())  # there is padding to cover
    assert _flip_every_bit_position(folder / "m.mir", tmp_path, maseir.load) == []


def test_a_flipped_bit_anywhere_in_external_data_is_detected(small, tmp_path):
    _, folder = small
    (tmp_path / "x.mir").write_bytes((folder / "x.mir").read_bytes())
    data = folder / "x.mir.data"
    blob = data.read_bytes()
    undetected = []
    for offset in range(len(blob)):
        damaged = bytearray(blob)
        damaged[offset] ^= 1 << (offset % 8)
        (tmp_path / "x.mir.data").write_bytes(bytes(damaged))
        try:
            maseir.load(tmp_path / "x.mir")
        except MaseIRError:
            continue
        undetected.append(offset)
    assert undetected == []
    (tmp_path / "x.mir.data").write_bytes(blob + b"\0")
    with pytest.raises(FileFormatError, match="unexpected bytes after the last tensor"):
        maseir.load(tmp_path / "x.mir")


def test_padding_between_tensors_is_named(small, tmp_path):
    graph, folder = small
    blob = bytearray((folder / "m.mir").read_bytes())
    struct_len = struct.unpack_from("<Q", blob, 16)[0]
    data_start = (64 + struct_len + 63) // 64 * 64
    first = min(graph.params.values(), key=lambda t: t.name)  # params are laid out by name
    blob[data_start + first.nbytes] ^= 0x10  # the first padding byte after it
    (tmp_path / "p.mir").write_bytes(bytes(blob))
    with pytest.raises(FileFormatError, match="non-zero padding"):
        maseir.load(tmp_path / "p.mir")


def test_version_1_0_files_still_load(small, tmp_path):
    """1.0 headers checksum the structure alone."""
    import hashlib
    graph, folder = small
    blob = (folder / "m.mir").read_bytes()
    struct_len = struct.unpack_from("<Q", blob, 16)[0]
    structure = blob[64:64 + struct_len]
    old = blob[:10] + struct.pack("<H", 0) + blob[12:24] + hashlib.sha256(structure).digest() + blob[56:]
    (tmp_path / "old.mir").write_bytes(old)
    assert maseir.load(tmp_path / "old.mir") == graph


def test_load_structure_reads_no_weights(small, tmp_path):
    graph, folder = small
    (tmp_path / "x.mir").write_bytes((folder / "x.mir").read_bytes())  # without its .data file
    with pytest.raises(FileFormatError, match="missing"):
        maseir.load(tmp_path / "x.mir")
    structure, layout = mio.load_structure(tmp_path / "x.mir")
    assert layout.missing == ("x.mir.data",) and set(layout.external["x.mir.data"]) == set(graph.params)
    assert not structure.has_weights and structure == graph  # tensors compare by recorded sha256
    assert maseir.show(structure) == maseir.show(graph)
    assert maseir.check(structure) == []  # checksums cannot be verified without bytes; structure is fine
    with pytest.raises(GraphError):
        maseir.save(structure, tmp_path / "y.mir")
    with pytest.raises(MaseIRError):
        maseir.to_torch(structure)
    with pytest.raises(MaseIRError):
        maseir.to_onnx(structure)


def test_an_onnx_file_where_a_mir_is_expected_suggests_import(small, tmp_path):
    from maseir.lowering.onnx import save_onnx
    graph, _ = small
    save_onnx(graph, tmp_path / "m.onnx")
    (tmp_path / "renamed.bin").write_bytes((tmp_path / "m.onnx").read_bytes())
    for name in ("m.onnx", "renamed.bin"):
        with pytest.raises(FileFormatError, match="looks like an ONNX model: maseir import"):
            maseir.load(tmp_path / name)
    (tmp_path / "text.mir").write_text("hello, not a model\n" * 10)
    with pytest.raises(FileFormatError) as info:
        maseir.load(tmp_path / "text.mir")
    assert "ONNX" not in str(info.value)
