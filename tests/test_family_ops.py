"""The ops the model families brought (cumsum, cos, sin, argmax, addmm, split), one random graph at a
time: the torch lowering against ONNX Runtime (at opset 21 and at opset 17), and ONNX import of the
lowered file back to the same results."""

import numpy as np
import onnx
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maseir
from maseir.frontends.onnx import import_model
from test_lowering_onnx import Fn, run_ort

OP_SETTINGS = settings(max_examples=8, deadline=None)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


def _tensor(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    if dtype == "float32":
        return torch.randn(shape, generator=gen)
    if dtype == "bool":
        return torch.rand(shape, generator=gen) > 0.5
    return torch.randint(-3, 4, shape, generator=gen).to(getattr(torch, dtype))  # small range: ties


def assert_three_ways(fn, inputs, params=()):
    """The torch lowering, ORT at opsets 21 and 17, and the ONNX file imported back compute the same."""
    graph = maseir.export(Fn(fn, params).eval(), tuple(inputs), dynamic_dims={})
    assert maseir.check(graph) == []
    with torch.no_grad():
        expected = maseir.to_torch(graph)(*inputs)
        direct = fn(Fn(lambda m: None, params), *inputs)
    assert torch.equal(expected, direct) or torch.allclose(expected, direct, atol=1e-6)
    for opset in (21, 17):
        model = maseir.to_onnx(graph, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        (got,) = run_ort(model, *[x.numpy() for x in inputs])
        assert got.dtype == expected.numpy().dtype and got.shape == tuple(expected.shape)
        assert np.allclose(got, expected.numpy(), atol=1e-5, rtol=1e-5), (opset, np.abs(got - expected.numpy()).max())
    imported = import_model(maseir.to_onnx(graph), "op.onnx")
    with torch.no_grad():
        again = maseir.to_torch(imported)(*inputs)
    assert again.dtype == expected.dtype and torch.allclose(again, expected, atol=1e-5)


@OP_SETTINGS
@given(shapes, st.data(), st.sampled_from(["float32", "int64", "int32", "bool"]), st.integers(0, 99))
def test_cumsum(shape, data, dtype, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert_three_ways(lambda m, x: torch.cumsum(x, dim), [_tensor(shape, dtype, seed)])


@OP_SETTINGS
@given(shapes, st.integers(0, 99))
def test_cos_and_sin(shape, seed):
    x = _tensor(shape, "float32", seed) * 4
    assert_three_ways(lambda m, x: torch.cos(x) * 2 + torch.sin(x), [x])


@OP_SETTINGS
@given(shapes, st.data(), st.sampled_from(["float32", "int64"]), st.booleans(), st.integers(0, 99))
def test_argmax_takes_the_first_maximum(shape, data, dtype, keepdim, seed):
    dim = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    assert_three_ways(lambda m, x: torch.argmax(x, dim=dim, keepdim=keepdim), [_tensor(shape, dtype, seed)])


@OP_SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.sampled_from(["row", "full", "one"]),
       st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.sampled_from([0.5, 1.0, 3.0]), st.integers(0, 99))
def test_addmm(n, k, m, bias_shape, beta, alpha, seed):
    bias = {"row": (m,), "full": (n, m), "one": (1, m)}[bias_shape]
    weight = _tensor((k, m), "float32", seed + 1)
    assert_three_ways(lambda mod, b, x: torch.addmm(b, x, mod.p0, beta=beta, alpha=alpha),
                      [_tensor(bias, "float32", seed), _tensor((n, k), "float32", seed + 2)], [weight])


@OP_SETTINGS
@given(shapes, st.data(), st.integers(0, 99))
def test_split(shape, data, seed):
    dim = data.draw(st.integers(0, len(shape) - 1))
    size = data.draw(st.integers(1, shape[dim]))
    assert_three_ways(lambda m, x: torch.cat([p * (i + 1) for i, p in enumerate(torch.split(x, size, dim))], dim),
                      [_tensor(shape, "float32", seed)])
