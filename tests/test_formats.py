"""maseir/formats.py, the one numeric reference: fixed-point codes and rounding against
an exact rational oracle (DESIGN.md's formula), numpy and torch giving the same bits,
ONNX Runtime's QuantizeLinear/DequantizeLinear (and DynamicQuantizeLinear) giving the
same values, the straight-through gradient, choosing f, and the stored bytes (int8,
int16, int4 packed as ONNX packs it)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from maseir import formats
from maseir.ir import NumberFormat, TensorType

from models import SETTINGS

# x * 2^f of a value near float32's largest overflows to inf, which saturates: the right code
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

OPSET = 21
FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


# --- the oracle: DESIGN.md's formula in exact rational arithmetic ---------------------------
def oracle_code(x: float, width: int, frac: int) -> int:
    """clamp(round_half_to_even(x * 2^f), -2^(w-1), 2^(w-1) - 1), computed exactly."""
    qmin, qmax = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    if x in (float("inf"), float("-inf")):
        return qmax if x > 0 else qmin
    return max(qmin, min(qmax, round(Fraction(x) * Fraction(2) ** frac)))  # round(Fraction): half to even


def oracle_codes(x: np.ndarray, width: int, fracs, axis: int = 0) -> np.ndarray:
    """oracle_code of every element; ``fracs`` an int, or one per slice along ``axis``."""
    out = np.empty(x.shape, dtype=np.int64)
    for index in np.ndindex(x.shape):
        f = fracs if isinstance(fracs, int) else fracs[index[axis]]
        out[index] = oracle_code(float(x[index]), width, f)
    return out


def oracle_auto_frac(low: float, high: float, width: int) -> int | None:
    """The largest f in -MAX_FRAC..MAX_FRAC at which neither end of [low, high] clips."""
    qmin, qmax = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    for f in range(formats.MAX_FRAC, -formats.MAX_FRAC - 1, -1):
        scale = Fraction(2) ** f
        if round(Fraction(high) * scale) <= qmax and round(Fraction(low) * scale) >= qmin:
            return f
    return None


# --- inputs: random values, exact halves, values beyond the range -------------------------
@st.composite
def cases(draw, min_frac=-6, max_frac=18, shape=None, widths=None):
    """(x float32 array, width, frac): values spread over 1.5x the format's range, exact
    halves (k + 1/2) 2^-f near and beyond both ends, zeros, and huge and infinite values."""
    width = draw(st.integers(formats.MIN_WIDTH, formats.MAX_WIDTH) if widths is None else widths)
    frac = draw(st.integers(min_frac, max_frac))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    qmin, qmax = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    n = int(np.prod(shape)) if shape else draw(st.integers(1, 40))
    spread = rng.uniform(1.5 * qmin, 1.5 * qmax, n) * 2.0 ** -frac
    halves = (rng.integers(qmin - 3, qmax + 3, n) + 0.5) * 2.0 ** -frac
    special = np.array([0.0, -0.0, qmin * 2.0 ** -frac, qmax * 2.0 ** -frac, (qmax + 0.5) * 2.0 ** -frac,
                        (qmin - 0.5) * 2.0 ** -frac, 1e30, -1e30, np.inf, -np.inf, 3.4e38])
    drawn = np.array(draw(st.lists(FINITE32, min_size=n, max_size=n)), dtype=np.float64)
    pools = np.stack([spread, halves, rng.choice(special, n), drawn])
    x = pools[rng.integers(0, 4, n), np.arange(n)].astype(np.float32)
    return (x.reshape(shape) if shape else x), width, frac


# --- ONNX Runtime on a one- or two-node graph ---------------------------------------------
def run_onnx(nodes, inputs: dict[str, np.ndarray], outputs: list[tuple[str, int, list]], initializers=()):
    """ONNX Runtime (no graph optimisation) on ``nodes``; ``outputs`` as (name, type, shape)."""
    graph = helper.make_graph(
        nodes, "reference",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(a.shape)) for name, a in inputs.items()],
        [helper.make_tensor_value_info(*out) for out in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


CONTAINER_TYPES = {"int4": TensorProto.INT4, "int8": TensorProto.INT8, "int16": TensorProto.INT16}


def ort_fixed_point(x: np.ndarray, width: int, frac: int):
    """ONNX's fixed point as DESIGN.md lowers it: a Clip to the grid where it is narrower
    than the container, QuantizeLinear (scale 2^-f, zero point 0), DequantizeLinear.
    Returns (codes as int64, dequantized float32)."""
    container = formats.onnx_container(width)
    qmin, qmax = formats.grid(formats.fixed(width, frac))
    step = 2.0 ** -frac
    inits = [helper.make_tensor("scale", TensorProto.FLOAT, [], [step]),
             helper.make_tensor("zero", CONTAINER_TYPES[container], [], [0]),
             helper.make_tensor("lo", TensorProto.FLOAT, [], [qmin * step]),
             helper.make_tensor("hi", TensorProto.FLOAT, [], [qmax * step])]
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["clipped"]),
             helper.make_node("QuantizeLinear", ["clipped", "scale", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]),
             helper.make_node("Cast", ["q"], ["q32"], to=TensorProto.INT32)]
    q, y = run_onnx(nodes, {"x": x}, [("q32", TensorProto.INT32, list(x.shape)), ("y", TensorProto.FLOAT, list(x.shape))],
                    inits)
    return q.astype(np.int64), y


# --- codes and rounding -------------------------------------------------------------------
@SETTINGS
@given(cases())
def test_codes_are_the_design_formula(case):
    x, width, frac = case
    fmt = formats.fixed(width, frac)
    expected = oracle_codes(x, width, frac)
    got = formats.codes(x, fmt)
    assert got.dtype == np.float32 and np.array_equal(got.astype(np.int64), expected)
    assert np.array_equal(formats.round_to(x, fmt), (expected * 2.0 ** -frac).astype(np.float32))


@SETTINGS
@given(cases())
def test_rounded_values_are_within_half_a_step_in_range_and_saturate_outside(case):
    x, width, frac = case
    fmt = formats.fixed(width, frac)
    qmin, qmax = formats.grid(fmt)
    low, high = qmin * 2.0 ** -frac, qmax * 2.0 ** -frac
    y = formats.round_to(x.astype(np.float64), fmt)
    inside = (x >= low) & (x <= high)
    assert np.all(np.abs(y[inside] - x[inside]) <= 2.0 ** -(frac + 1))
    assert np.all(y[x > high] == high) and np.all(y[x < low] == low)
    assert np.all((y >= low) & (y <= high))


@pytest.mark.parametrize("width,frac", [(8, 0), (8, 4), (4, 2), (16, 8), (2, -3), (5, 12)])
def test_exact_halves_round_to_even(width, frac):
    qmin, qmax = formats.grid(formats.fixed(width, frac))
    k = np.arange(qmin, qmax).astype(np.float64)
    halves = ((k + 0.5) * 2.0 ** -frac).astype(np.float32)
    even = np.where(k % 2 == 0, k, k + 1)
    assert np.array_equal(formats.codes(halves, formats.fixed(width, frac)), even)
    assert np.array_equal(formats.codes(torch.from_numpy(halves), formats.fixed(width, frac)).numpy(), even)


@SETTINGS
@given(cases())
def test_is_idempotent(case):
    x, width, frac = case
    fmt = formats.fixed(width, frac)
    once = formats.round_to(x, fmt)
    assert np.array_equal(formats.round_to(once, fmt), once)
    assert np.array_equal(formats.codes(once, fmt), formats.codes(x, fmt))


@SETTINGS
@given(cases())
def test_numpy_and_torch_give_the_same_bits(case):
    x, width, frac = case
    fmt = formats.fixed(width, frac)
    t = torch.from_numpy(x.copy())
    for fn in (formats.codes, formats.round_to):
        a, b = fn(x, fmt), fn(t, fmt).numpy()
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # the straight-through form (x + (round(x) - x) detached) gives the same numbers, though
    # a zero may lose its sign: -0.5 + 0.5 is +0
    assert np.array_equal(formats.fake_quantize(t, fmt).detach().numpy(), formats.round_to(x, fmt))
    as_args = formats.fake_quantize_as(t, *formats.format_args(fmt))
    assert np.array_equal(as_args.detach().numpy(), formats.round_to(x, fmt))


@SETTINGS
@given(cases())
def test_onnx_runtime_quantize_linear_gives_the_same_codes(case):
    x, width, frac = case
    q, y = ort_fixed_point(x, width, frac)
    assert np.array_equal(q, formats.codes(x, formats.fixed(width, frac)).astype(np.int64))
    assert np.array_equal(y, formats.round_to(x, formats.fixed(width, frac)))


def test_onnx_quantize_linear_without_clip_saturates_to_the_container():
    """Where the width fills the container (4, 8, 16 bits), QuantizeLinear alone is the rule."""
    rng = np.random.default_rng(0)
    for width, container in ((4, "int4"), (8, "int8"), (16, "int16")):
        frac = 3
        qmin, qmax = formats.grid(formats.fixed(width, frac))
        x = np.concatenate([(np.arange(qmin - 2, qmax + 2) + 0.5) * 2.0 ** -frac,
                            rng.uniform(2 * qmin, 2 * qmax, 200) * 2.0 ** -frac, [np.inf, -np.inf]])
        x = x.astype(np.float32)
        inits = [helper.make_tensor("scale", TensorProto.FLOAT, [], [2.0 ** -frac]),
                 helper.make_tensor("zero", CONTAINER_TYPES[container], [], [0])]
        nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"])]
        (y,) = run_onnx(nodes, {"x": x}, [("y", TensorProto.FLOAT, list(x.shape))], inits)
        assert np.array_equal(y, formats.round_to(x, formats.fixed(width, frac))), width


def test_signed_codes_equal_unsigned_codes_with_zero_point_128():
    """The ONNX lowering quantizes 8-bit-or-narrower activations as uint8 with zero point
    128 (after a Clip): the same values as the signed grid."""
    x = np.concatenate([(np.arange(-140, 140) + 0.5) / 16, np.random.default_rng(1).normal(0, 6, 300)])
    x = x.astype(np.float32)
    for width in (3, 6, 8):
        fmt = formats.fixed(width, 4)
        qmin, qmax = formats.grid(fmt)
        inits = [helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 16]),
                 helper.make_tensor("zero", TensorProto.UINT8, [], [128]),
                 helper.make_tensor("lo", TensorProto.FLOAT, [], [qmin / 16]),
                 helper.make_tensor("hi", TensorProto.FLOAT, [], [qmax / 16])]
        nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
                 helper.make_node("QuantizeLinear", ["c", "scale", "zero"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"])]
        (y,) = run_onnx(nodes, {"x": x}, [("y", TensorProto.FLOAT, list(x.shape))], inits)
        assert np.array_equal(y, formats.round_to(x, fmt)), width


# --- per channel ------------------------------------------------------------------------------
@st.composite
def channel_cases(draw, widths=None):
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    axis = draw(st.sampled_from([0, 1]))
    x, width, _ = draw(cases(shape=(rows, cols), widths=widths))
    fracs = tuple(draw(st.lists(st.integers(-4, 14), min_size=x.shape[axis], max_size=x.shape[axis])))
    return x, width, fracs, axis


@SETTINGS
@given(channel_cases())
def test_per_channel_codes_use_each_slices_frac(case):
    x, width, fracs, axis = case
    fmt = NumberFormat("fixed", width, 0, fracs=fracs, axis=axis)
    expected = oracle_codes(x, width, fracs, axis)
    assert np.array_equal(formats.codes(x, fmt).astype(np.int64), expected)
    t = torch.from_numpy(x.copy())
    assert formats.round_to(t, fmt).numpy().tobytes() == formats.round_to(x, fmt).tobytes()
    assert np.array_equal(formats.fake_quantize(t, fmt).detach().numpy(), formats.round_to(x, fmt))


@SETTINGS
@given(channel_cases(widths=st.sampled_from([8, 16])))  # QuantizeLinear alone saturates to the container
def test_per_channel_codes_match_onnx_per_axis_quantize_linear(case):
    x, width, fracs, axis = case
    fmt = NumberFormat("fixed", width, 0, fracs=fracs, axis=axis)
    container = formats.onnx_container(width)
    steps = [2.0 ** -f for f in fracs]
    inits = [helper.make_tensor("scale", TensorProto.FLOAT, [len(steps)], steps),
             helper.make_tensor("zero", CONTAINER_TYPES[container], [len(steps)], [0] * len(steps))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], axis=axis),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], axis=axis)]
    (y,) = run_onnx(nodes, {"x": x}, [("y", TensorProto.FLOAT, list(x.shape))], inits)
    assert np.array_equal(y, formats.round_to(x, fmt))


def test_fixed_per_channel_collapses_one_channel_and_checks_width():
    assert formats.fixed_per_channel(8, [3]) == formats.fixed(8, 3)
    fmt = formats.fixed_per_channel(8, [3, 3, 5], axis=0)
    assert fmt.fracs == (3, 3, 5) and str(fmt) == "fixed<8,ch0:3..5>"
    for width in (1, 17, 0, 33):
        with pytest.raises(ValueError, match=str(width)):
            formats.fixed(width, 0)


# --- the straight-through estimator ---------------------------------------------------------
@SETTINGS
@given(cases())
def test_fake_quantize_passes_the_gradient_inside_the_range_only(case):
    x, width, frac = case
    fmt = formats.fixed(width, frac)
    qmin, qmax = formats.grid(fmt)
    low, high = qmin * 2.0 ** -frac, qmax * 2.0 ** -frac
    t = torch.from_numpy(x.copy()).requires_grad_()
    weights = torch.arange(1, x.size + 1, dtype=torch.float32)
    (formats.fake_quantize(t, fmt) * weights).sum().backward()
    grad = t.grad.numpy()
    strictly_inside = (x > low) & (x < high)
    outside = (x < low) | (x > high)
    assert np.array_equal(grad[strictly_inside], weights.numpy()[strictly_inside])
    assert np.all(grad[outside] == 0)


def test_fake_quantize_per_channel_gradient_uses_each_channels_range():
    fmt = NumberFormat("fixed", 4, 0, fracs=(0, 2), axis=0)  # ranges [-8, 7] and [-2, 1.75]
    x = torch.tensor([[5.0, 9.0], [1.5, 1.9]], requires_grad=True)
    formats.fake_quantize(x, fmt).sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0], [1.0, 0.0]]


def test_fake_quantize_leaves_integer_tensors_alone():
    ids = torch.arange(5)
    assert formats.fake_quantize(ids, formats.fixed(4, 0)) is ids


# --- choosing f -------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(formats.MIN_WIDTH, formats.MAX_WIDTH), FINITE32, FINITE32)
def test_auto_frac_is_the_largest_f_at_which_nothing_clips(width, a, b):
    low, high = min(a, b, 0.0), max(a, b, 0.0)
    expected = width - 1 if low == high == 0 else oracle_auto_frac(low, high, width)
    if expected is None:
        with pytest.raises(ValueError, match="too wide"):
            formats.auto_frac(low, high, width)
        return
    assert formats.auto_frac(low, high, width) == expected


@pytest.mark.parametrize("low,high,width", [
    (-1.1, 0.0, 2),      # -2.2 rounds to -2, the grid's most negative code: f = 1 does not clip
    (-0.26, 0.1, 2),     # the same at f = 3 (-2.08 -> -2)
    (-128.4, 0.0, 8),    # the negative end holds one more code than the positive one
    (0.0, 127.4, 8),     # 127.4 rounds to 127: no clip at f = 0
    (0.0, 127.5, 8),     # 127.5 rounds half to even to 128: clips at f = 0
    (-2.0 ** -70, 2.0 ** -70, 8),  # tiny: f stops at MAX_FRAC
])
def test_auto_frac_edges(low, high, width):
    assert formats.auto_frac(low, high, width) == oracle_auto_frac(low, high, width)


@pytest.mark.parametrize("low,high", [(float("-inf"), 1.0), (0.0, float("inf")), (float("nan"), 1.0)])
def test_auto_frac_refuses_a_range_that_is_not_finite(low, high):
    with pytest.raises(ValueError, match="not finite"):
        formats.auto_frac(low, high, 8)


@SETTINGS
@given(channel_cases())
def test_auto_fracs_never_clip_a_channel_and_are_the_largest(case):
    x, width, _, axis = case
    x = np.where(np.abs(x) < 1e15, x, 1.0).astype(np.float32)  # beyond 2^64: "too wide", tested above
    fracs = formats.auto_fracs(x, width, axis)
    assert len(fracs) == x.shape[axis]
    fmt = NumberFormat("fixed", width, 0, fracs=fracs, axis=axis)
    qmin, qmax = formats.grid(fmt)
    q = formats.codes(x.astype(np.float64), fmt)
    unclipped = formats.codes(x.astype(np.float64), NumberFormat("fixed", 64, 0, fracs=fracs, axis=axis))
    assert np.array_equal(q, unclipped)  # no value saturates
    for channel, f in enumerate(fracs):
        row = np.take(x, channel, axis=axis).astype(np.float64)
        low, high = min(float(row.min()), 0.0), max(float(row.max()), 0.0)
        assert f == (width - 1 if low == high == 0 else oracle_auto_frac(low, high, width))


# --- storage ----------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(formats.MIN_WIDTH, formats.MAX_WIDTH), st.integers(0, 41), st.integers(0, 2**32 - 1))
def test_packed_codes_round_trip(width, n, seed):
    qmin, qmax = formats.grid(formats.fixed(width, 0))
    q = np.random.default_rng(seed).integers(qmin, qmax + 1, n)
    q[: min(n, 2)] = [qmin, qmax][: min(n, 2)]
    data = formats.pack_codes(q, width)
    bits = {"int4": 4, "int8": 8, "int16": 16}[formats.onnx_container(width)]
    assert len(data) == (n * bits + 7) // 8
    assert np.array_equal(formats.unpack_codes(data, n, width), q)


@SETTINGS
@given(cases(shape=(3, 5)))
def test_encode_then_decode_gives_the_rounded_values(case):
    x, width, frac = case
    fmt = formats.fixed(width, frac)
    type_ = TensorType("float32", x.shape, fmt)
    data = formats.encode(x, fmt)
    assert len(data) == formats.stored_nbytes(type_)
    decoded = formats.decode(data, type_)
    assert decoded.dtype == np.float32 and decoded.shape == x.shape
    assert np.array_equal(decoded, formats.round_to(x, fmt))


def test_encode_per_channel_then_decode():
    x = np.random.default_rng(2).normal(0, 1, (4, 6)).astype(np.float32) * np.array([[1], [4], [0.1], [30]])
    x = x.astype(np.float32)
    fmt = formats.fixed_per_channel(8, formats.auto_fracs(x, 8, 0), 0)
    decoded = formats.decode(formats.encode(x, fmt), TensorType("float32", x.shape, fmt))
    assert np.array_equal(decoded, formats.round_to(x, fmt))
    assert np.all(np.abs(decoded - x) <= np.array([2.0 ** -(f + 1) for f in fmt.fracs])[:, None])


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_int4_packing_is_onnxs(n):
    """pack_codes' bytes as an ONNX INT4 initializer dequantize to the codes' values, and
    onnx.helper packs the same codes to the same bytes."""
    q = np.random.default_rng(n).integers(-8, 8, n)
    q[0] = -8
    data = formats.pack_codes(q, 4)
    codes = TensorProto()
    codes.name, codes.data_type = "codes", TensorProto.INT4
    codes.dims.append(n)
    codes.raw_data = data
    inits = [codes, helper.make_tensor("scale", TensorProto.FLOAT, [], [0.25]),
             helper.make_tensor("zero", TensorProto.INT4, [], [0])]
    graph = helper.make_graph([helper.make_node("DequantizeLinear", ["codes", "scale", "zero"], ["y"])], "int4",
                              [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
    assert np.array_equal(y, q * 0.25)
    assert helper.make_tensor("t", TensorProto.INT4, [n], q.tolist()).SerializeToString() \
        == helper.make_tensor("t", TensorProto.INT4, [n], data, raw=True).SerializeToString() \
        or np.array_equal(onnx.numpy_helper.to_array(helper.make_tensor("t", TensorProto.INT4, [n], q.tolist())),
                          onnx.numpy_helper.to_array(helper.make_tensor("t", TensorProto.INT4, [n], data, raw=True)))
    assert np.array_equal(onnx.numpy_helper.to_array(codes).astype(np.int64), q)


def test_stored_nbytes_by_container():
    for width, per in ((2, 0.5), (4, 0.5), (5, 1), (8, 1), (9, 2), (16, 2)):
        assert formats.stored_nbytes(TensorType("float32", (3, 7), formats.fixed(width, 0))) == int(np.ceil(21 * per))
    assert formats.stored_nbytes(TensorType("float32", (3, 7), NumberFormat("float32"))) == 84


# --- dynamic quantization ---------------------------------------------------------------------
def ort_dynamic(x: np.ndarray):
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zero"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"])]
    y, scale = run_onnx(nodes, {"x": x}, [("y", TensorProto.FLOAT, list(x.shape)), ("scale", TensorProto.FLOAT, [])])
    return y, float(scale)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 64), st.sampled_from(["normal", "positive", "negative", "halves"]))
def test_dynamic_rounding_numpy_torch_and_onnx_runtime_agree(seed, n, kind):
    """numpy and torch give the same bits; ONNX Runtime's DynamicQuantizeLinear and
    DequantizeLinear the same values within one step of its scale (the issue's bound)."""
    rng = np.random.default_rng(seed)
    x = {"normal": rng.normal(0, 3, n), "positive": rng.uniform(0.5, 9, n), "negative": -rng.uniform(0, 2, n),
         "halves": rng.integers(-50, 50, n) + 0.5}[kind].astype(np.float32)
    fmt = formats.dynamic(8)
    expected, step = ort_dynamic(x)
    numpy_values = formats.round_to(x, fmt)
    torch_values = formats.fake_quantize(torch.from_numpy(x.copy()), fmt).detach().numpy()
    assert numpy_values.dtype == np.float32 and numpy_values.tobytes() == torch_values.tobytes()
    assert np.all(np.abs(torch_values - expected) <= step * (1 + 1e-6))
    # the zero point is rounded onto the grid, so an end of the range may be a step away; no more
    assert np.all(np.abs(numpy_values - x) <= step * (1 + 1e-6))


def test_dynamic_of_zeros_is_zeros():
    x = np.zeros(5, dtype=np.float32)
    assert np.array_equal(formats.round_to(x, formats.dynamic(8)), x)
    assert np.array_equal(formats.fake_quantize(torch.zeros(5), formats.dynamic(8)).numpy(), x)
    assert np.array_equal(ort_dynamic(x)[0], x)


def test_dynamic_passes_the_gradient_unchanged():
    x = torch.randn(10, requires_grad=True)
    formats.fake_quantize(x, formats.dynamic(8)).sum().backward()
    assert torch.equal(x.grad, torch.ones(10))


def test_dynamic_is_8_bit_only():
    with pytest.raises(ValueError, match="8-bit"):
        formats.dynamic(4)
