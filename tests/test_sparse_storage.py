"""Sparse storage of mostly-zero tensors in a .mir (maseir/sparse.py, the BITMASK
encoding of spec/maseir.proto DataLocation): chosen exactly when it is smaller,
an exact round trip for every dtype and stored code container at any sparsity,
checksums over the dense bytes, every flipped bit of a sparse tensor detected,
external data, ``verify=False``, and the format version that says so."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maseir
import maseir.io as mio
from maseir import formats, sparse
from maseir._proto import maseir_pb2 as pb
from maseir.arrays import to_numpy
from maseir.errors import ChecksumError, FileFormatError, MaseIRError
from maseir.ir import DTYPE_ITEMSIZE, Tensor, TensorType

from models import SETTINGS

HEADER = struct.Struct("<8sHHIQ32sQ")  # spec/format.md: magic, major, minor, flags, S, sha256, D

# Every stored representation: plain dtypes, and fixed-point params stored as int8, int16 or packed int4 codes.
KINDS = {
    **{dtype: (dtype, None) for dtype in DTYPE_ITEMSIZE},
    "fixed<8,4> (int8 codes)": ("float32", formats.fixed(8, 4)),
    "fixed<6,3> (int8 codes)": ("float32", formats.fixed(6, 3)),
    "fixed<16,9> (int16 codes)": ("float32", formats.fixed(16, 9)),
    "fixed<12,5> (int16 codes)": ("float32", formats.fixed(12, 5)),
    "fixed<4,2> (int4 packed)": ("float32", formats.fixed(4, 2)),
    "fixed<3,1> (int4 packed)": ("float32", formats.fixed(3, 1)),
    "fixed<8,[...]> per channel": ("float32", None),  # made per shape below
}


def _kind_type(kind: str, shape: tuple[int, ...]) -> TensorType:
    if kind.startswith("fixed<8,[...]>"):
        return TensorType("float32", shape, formats.fixed_per_channel(8, range(shape[0]), axis=0))
    dtype, fmt = KINDS[kind]
    return TensorType(dtype, shape, fmt if fmt is not None else maseir.ir.default_format(dtype))


def random_stored_bytes(type_: TensorType, sparsity: float, seed: int) -> bytes:
    """Bytes of a tensor of ``type_`` whose elements are exactly zero with probability
    ``sparsity`` and otherwise non-zero (any bytes: NaN and -0.0 patterns included)."""
    rng = np.random.default_rng(seed)
    n = type_.numel()
    zero = rng.random(n) < sparsity
    if formats.is_stored_as_codes(type_.format):
        low, high = formats.grid(type_.format)
        q = rng.integers(low, high + 1, n)
        q[q == 0] = 1
        q[zero] = 0
        return formats.pack_codes(q, type_.format.width)
    size = DTYPE_ITEMSIZE[type_.dtype]
    if type_.dtype == "bool":
        return (~zero).astype(np.uint8).tobytes()
    elements = rng.integers(0, 256, (n, size), dtype=np.uint8)
    elements[~elements.any(axis=1), 0] = 1
    elements[zero] = 0
    return elements.tobytes()


def base_graph() -> maseir.Graph:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).eval()
    return maseir.export(model, (torch.randn(2, 3),))


def with_param(graph: maseir.Graph, name: str, type_: TensorType, data: bytes) -> maseir.Graph:
    new = graph.copy()
    new.params[name] = Tensor(name, type_, data, trainable=False)
    return new


def locations(path: Path) -> dict[str, pb.DataLocation]:
    """Each tensor's DataLocation, read from the file's structure (spec/format.md layout)."""
    blob = path.read_bytes()
    _magic, _major, _minor, _flags, struct_len, _sha, _data_len = HEADER.unpack_from(blob)
    model = pb.Model()
    model.ParseFromString(blob[64:64 + struct_len])
    return {p.name: p.location for p in model.graph.params}


def data_start(path: Path) -> int:
    struct_len = HEADER.unpack_from(path.read_bytes())[4]
    return (64 + struct_len + 63) // 64 * 64


@pytest.fixture(scope="module")
def graph():
    return base_graph()


# --- the encoding itself -------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(KINDS)), st.integers(1, 5000), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_encoding_round_trips_exactly_and_is_only_used_when_smaller(kind, n, sparsity, seed):
    type_ = _kind_type(kind, (n,) if not kind.startswith("fixed<8,[...]>") else (min(n, 50), 1))
    dense = random_stored_bytes(type_, sparsity, seed)
    unit = sparse.unit_of(type_)
    stored = sparse.encode(dense, unit)
    elements = len(dense) // unit
    nonzero = int(np.frombuffer(dense, np.uint8).reshape(elements, unit).any(axis=1).sum())
    encoded_size = (elements + 7) // 8 + nonzero * unit
    if len(dense) < sparse.MIN_BYTES or encoded_size >= len(dense):
        assert stored is None
    else:
        assert stored is not None and len(stored) == encoded_size < len(dense)
        assert sparse.decode(stored, len(dense), unit, "t") == dense


def test_units_are_the_stored_element_sizes():
    assert [sparse.unit_of(_kind_type(k, (4, 1))) for k in ("float32", "float16", "bfloat16", "int64", "bool")] \
        == [4, 2, 2, 8, 1]
    assert [sparse.unit_of(_kind_type(k, (4, 1))) for k in (
        "fixed<8,4> (int8 codes)", "fixed<16,9> (int16 codes)", "fixed<4,2> (int4 packed)")] == [1, 2, 1]


def test_minus_zero_is_a_value_not_a_zero(graph, tmp_path):
    values = np.zeros(1000, dtype=np.float32)
    values[[3, 500]] = -0.0
    values[[7, 999]] = [1.5, -2.0]
    g = with_param(graph, "w", TensorType("float32", (1000,), maseir.ir.default_format("float32")),
                   values.tobytes())
    maseir.save(g, tmp_path / "m.mir")
    loc = locations(tmp_path / "m.mir")["w"]
    assert loc.encoding == pb.DataLocation.BITMASK and loc.length == 125 + 4 * 4  # -0.0 is stored as a value
    back = np.frombuffer(maseir.load(tmp_path / "m.mir").params["w"].data, dtype=np.float32)
    assert np.signbit(back[[3, 500]]).all() and back.tobytes() == values.tobytes()


# --- through save and load -----------------------------------------------------------------
@SETTINGS
@given(st.sampled_from(sorted(KINDS)), st.sampled_from([(7, 300), (1, 2049), (64, 33), (3, 1)]),
       st.floats(0.0, 1.0), st.integers(0, 2**32 - 1), st.booleans())
def test_save_and_load_restore_the_dense_bytes_for_any_dtype_and_sparsity(
        graph, tmp_path_factory, kind, shape, sparsity, seed, verify):
    type_ = _kind_type(kind, shape)
    dense = random_stored_bytes(type_, sparsity, seed)
    g = with_param(graph, "w", type_, dense)
    path = tmp_path_factory.mktemp("rt") / "m.mir"
    maseir.save(g, path)
    loc = locations(path)["w"]
    sparse_form = sparse.encode(dense, sparse.unit_of(type_))
    assert loc.encoding == (pb.DataLocation.DENSE if sparse_form is None else pb.DataLocation.BITMASK)
    assert loc.length == len(dense if sparse_form is None else sparse_form)
    back = maseir.load(path, verify=verify)
    assert back == g and bytes(back.params["w"].data) == dense  # checksums are of the dense bytes
    assert maseir.check(back) == []
    np.testing.assert_array_equal(to_numpy(back.params["w"]), to_numpy(g.params["w"]))


def test_a_sparse_file_is_smaller_and_saves_deterministically(graph, tmp_path):
    type_ = TensorType("float32", (256, 64), maseir.ir.default_format("float32"))
    g = with_param(graph, "w", type_, random_stored_bytes(type_, 0.9, 1))
    dense_g = with_param(graph, "w", type_, random_stored_bytes(type_, 0.0, 1))
    maseir.save(g, tmp_path / "a.mir")
    maseir.save(g, tmp_path / "b.mir")
    maseir.save(dense_g, tmp_path / "d.mir")
    assert (tmp_path / "a.mir").read_bytes() == (tmp_path / "b.mir").read_bytes()
    # 10 % non-zero: a 2048-byte mask plus ~6554 values instead of 16384 values
    assert (tmp_path / "a.mir").stat().st_size < 0.5 * (tmp_path / "d.mir").stat().st_size


def test_structure_only_reading_accepts_sparse_tensors(graph, tmp_path):
    type_ = TensorType("float16", (40, 30), maseir.ir.default_format("float16"))
    g = with_param(graph, "w", type_, random_stored_bytes(type_, 0.8, 2))
    maseir.save(g, tmp_path / "m.mir")
    structure, layout = mio.load_structure(tmp_path / "m.mir")
    assert structure == g and maseir.show(structure) == maseir.show(g)
    assert structure.params["w"].nbytes == 40 * 30 * 2  # the tensor's own size, not the stored one


# --- corruption ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sparse_file(graph, tmp_path_factory):
    """A .mir with a sparse tensor of 259 elements (1036 bytes; its 33-byte mask has 5 padding bits)."""
    type_ = TensorType("float32", (259,), maseir.ir.default_format("float32"))
    g = with_param(graph, "w", type_, random_stored_bytes(type_, 0.95, 3))
    path = tmp_path_factory.mktemp("sparse") / "m.mir"
    maseir.save(g, path)
    loc = locations(path)["w"]
    assert loc.encoding == pb.DataLocation.BITMASK
    return g, path, loc


def _undetected(blob: bytes, offsets, target: Path, load) -> list[tuple[int, int]]:
    missed = []
    for offset in offsets:
        for bit in range(8):
            damaged = bytearray(blob)
            damaged[offset] ^= 1 << bit
            target.write_bytes(bytes(damaged))
            try:
                load(target)
            except MaseIRError:
                continue
            missed.append((offset, bit))
    return missed


def test_every_flipped_bit_of_a_sparse_tensor_is_detected(sparse_file, tmp_path):
    """Mask bits (set or cleared), its padding bits and the values' bits: all an error."""
    _, path, loc = sparse_file
    start = data_start(path) + loc.offset
    assert (loc.length - 33) % 4 == 0  # 33 mask bytes, then the float32 values
    assert _undetected(path.read_bytes(), range(start, start + loc.length), tmp_path / "m.mir", maseir.load) == []


def test_a_damaged_mask_is_detected_even_without_verifying(sparse_file, tmp_path):
    """The mask's own consistency (its count against the values, zero padding bits) is
    checked on every load; with verify=False only the values' bits go unchecked."""
    _, path, loc = sparse_file
    start = data_start(path) + loc.offset
    load = lambda p: maseir.load(p, verify=False)  # noqa: E731
    assert _undetected(path.read_bytes(), range(start, start + 33), tmp_path / "m.mir", load) == []
    blob = bytearray(path.read_bytes())
    blob[start + 32] |= 0x80  # a padding bit past element 258
    (tmp_path / "p.mir").write_bytes(bytes(blob))
    with pytest.raises(FileFormatError, match="padding bits"):
        maseir.load(tmp_path / "p.mir", verify=False)


def test_a_damaged_value_names_the_tensor(sparse_file, tmp_path):
    g, path, loc = sparse_file
    blob = bytearray(path.read_bytes())
    blob[data_start(path) + loc.offset + loc.length - 1] ^= 0x01
    (tmp_path / "v.mir").write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="tensor w does not match its sha256"):
        maseir.load(tmp_path / "v.mir")
    loaded = maseir.load(tmp_path / "v.mir", verify=False)
    assert maseir.io.verify_checksums(loaded) == ["w"]


# --- external data -------------------------------------------------------------------------
def test_sparse_tensors_in_external_data(graph, tmp_path):
    type_ = TensorType("bfloat16", (50, 41), maseir.ir.default_format("bfloat16"))
    g = with_param(graph, "w", type_, random_stored_bytes(type_, 0.9, 4))
    path = tmp_path / "x.mir"
    maseir.save(g, path, external_data_threshold=64)
    loc = locations(path)["w"]
    assert loc.file == "x.mir.data" and loc.encoding == pb.DataLocation.BITMASK
    assert maseir.load(path) == g and maseir.load(path, verify=False) == g
    # the threshold read back from the file puts the same tensors in external data again
    threshold = mio.external_data_threshold(path)
    maseir.save(maseir.load(path), tmp_path / "y.mir", external_data_threshold=threshold)
    assert (tmp_path / "y.mir.data").read_bytes() == (tmp_path / "x.mir.data").read_bytes()
    # and a flipped bit in the sparse bytes of the external file is an error
    data = (tmp_path / "x.mir.data").read_bytes()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "x.mir").write_bytes(path.read_bytes())
    missed = []
    for offset in range(loc.offset, loc.offset + loc.length, 7):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << (offset % 8)
        (copy / "x.mir.data").write_bytes(bytes(damaged))
        try:
            maseir.load(copy / "x.mir")
        except MaseIRError:
            continue
        missed.append(offset)
    assert missed == []


# --- the version and the documentation -----------------------------------------------------
def test_sparse_storage_bumped_the_minor_version_and_is_documented():
    """Issue 10: sparse storage is 'documented in spec/format.md with a minor version bump'."""
    assert (mio.FORMAT_MAJOR, mio.FORMAT_MINOR) >= (1, 2)
    spec = (Path(__file__).parent.parent / "spec" / "format.md").read_text()
    assert f"now **{mio.FORMAT_MAJOR}.{mio.FORMAT_MINOR}**" in spec
    assert "BITMASK" in spec and f"{mio.FORMAT_MAJOR}.{mio.FORMAT_MINOR}: " in spec


def test_a_1_1_file_without_sparse_tensors_still_loads(graph, tmp_path):
    import hashlib
    maseir.save(graph, tmp_path / "m.mir")
    blob = bytearray((tmp_path / "m.mir").read_bytes())
    struct_len = HEADER.unpack_from(blob)[4]
    blob[10:12] = struct.pack("<H", 1)
    blob[24:56] = hashlib.sha256(bytes(blob[:24]) + bytes(blob[56:64]) + bytes(blob[64:64 + struct_len])).digest()
    (tmp_path / "old.mir").write_bytes(bytes(blob))
    assert maseir.load(tmp_path / "old.mir") == graph


def test_a_sparse_encoding_not_smaller_than_its_tensor_is_corrupt_for_every_reader(graph, tmp_path):
    """save never writes one (it stores such a tensor dense), so load refuses it like
    load_structure (show, diff, check --structure) does."""
    import hashlib
    type_ = TensorType("float32", (259,), maseir.ir.default_format("float32"))
    dense = random_stored_bytes(type_, 0.0, 5)
    g = with_param(graph, "zz", type_, dense)  # laid out last
    maseir.save(g, tmp_path / "m.mir")
    blob = (tmp_path / "m.mir").read_bytes()
    struct_len = HEADER.unpack_from(blob)[4]
    model = pb.Model()
    model.ParseFromString(blob[64:64 + struct_len])
    (msg,) = [p for p in model.graph.params if p.name == "zz"]
    encoding = bytes([0xFF] * 32 + [0x07]) + dense  # every element marked non-zero: 33 bytes more than dense
    msg.location.encoding = pb.DataLocation.BITMASK
    msg.location.length = len(encoding)
    data = blob[data_start(tmp_path / "m.mir"):][:msg.location.offset] + encoding
    structure = model.SerializeToString(deterministic=True)
    header = HEADER.pack(mio.MAGIC, mio.FORMAT_MAJOR, mio.FORMAT_MINOR, 0, len(structure), bytes(32), len(data))
    header = header[:24] + hashlib.sha256(header[:24] + header[56:] + structure).digest() + header[56:]
    pad = bytes((64 + len(structure) + 63) // 64 * 64 - 64 - len(structure))
    (tmp_path / "c.mir").write_bytes(header + structure + pad + data)
    with pytest.raises(FileFormatError, match="not smaller than its dense bytes"):
        mio.load_structure(tmp_path / "c.mir")
    for verify in (True, False):
        with pytest.raises(FileFormatError, match="not smaller than its dense bytes"):
            maseir.load(tmp_path / "c.mir", verify=verify)
