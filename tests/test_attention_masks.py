"""Attention masks in the ONNX lowering: ONNX Runtime computes what the torch lowering
(ATen's scaled_dot_product_attention) computes for every mask, including query rows
that the mask hides entirely, which ATen answers with zeros and a plain Softmax with NaN."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import maseir
from conftest import bert_inputs


class Attention(nn.Module):
    def __init__(self, is_causal: bool, scale: float | None):
        super().__init__()
        self.is_causal, self.scale = is_causal, scale

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.is_causal, scale=self.scale)


@st.composite
def attention_cases(draw):
    """(module, q, k, v, masks): shapes, a mask kind and shape, and several masks of that kind.

    Masks are bool or additive (0 / -inf, 0 / finfo.min, random values with -inf), of any
    shape that broadcasts to the scores [..., L, S]; some rows are hidden entirely and some
    masks hide everything.
    """
    batch, heads, q_len, k_len = (draw(st.integers(1, n)) for n in (3, 3, 6, 6))
    head, value_head = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["none", "bool", "-inf", "finfo.min", "values"]))
    is_causal = draw(st.booleans())
    lead = draw(st.sampled_from([(batch, heads), (batch,)]))
    mask_ranks = list(range(2, len(lead) + 3))  # ATen refuses 0-d and 1-d masks
    if kind != "none" and is_causal:
        # ATen combines a mask with is_causal only in its flash kernel: 4-D, equal head
        # sizes, a 2-D or 4-D mask. Elsewhere it refuses, so the case does not exist.
        lead, value_head, mask_ranks = (batch, heads), head, [2, 4]
    scores_shape = (*lead, q_len, k_len)
    mask_shape = None
    if kind != "none":
        mask_rank = draw(st.sampled_from(mask_ranks))
        mask_shape = tuple(draw(st.sampled_from([n, 1])) for n in scores_shape[len(scores_shape) - mask_rank:])
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    q = torch.randn(*lead, q_len, head, generator=gen)
    k = torch.randn(*lead, k_len, head, generator=gen)
    v = torch.randn(*lead, k_len, value_head, generator=gen)
    masks = [_mask(kind, mask_shape, gen, draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])))
             for _ in range(3)] if mask_shape is not None else []
    scale = draw(st.sampled_from([None, 0.5]))
    return Attention(is_causal, scale).eval(), q, k, v, masks


def _mask(kind: str, shape: tuple, gen: torch.Generator, hidden: float) -> torch.Tensor:
    rows = torch.rand(shape[:-1], generator=gen) < hidden  # query rows to hide entirely
    keep = (torch.rand(shape, generator=gen) > 0.4) & ~rows.unsqueeze(-1)
    if kind == "bool":
        return keep
    if kind == "-inf":
        return torch.zeros(shape).masked_fill(~keep, -math.inf)
    if kind == "finfo.min":
        return torch.zeros(shape).masked_fill(~keep, torch.finfo(torch.float32).min)
    return torch.randn(shape, generator=gen).masked_fill(~keep, -math.inf)


@settings(max_examples=60, deadline=None)
@given(attention_cases())
def test_ort_computes_what_torch_computes_for_every_mask(case):
    module, q, k, v, masks = case
    example = (q, k, v, *masks[:1])
    graph = maseir.export(module, example, dynamic_dims={})
    lowered, run = maseir.to_torch(graph), maseir.ort_session(graph)
    for mask in masks or [None]:
        inputs = (q, k, v) if mask is None else (q, k, v, mask)
        with torch.no_grad():
            expected = lowered(*inputs).numpy()
            eager = F.scaled_dot_product_attention(*inputs, is_causal=module.is_causal, scale=module.scale)
        assert np.isfinite(expected).all() and np.array_equal(expected, eager.numpy())
        got = run(*inputs)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-5


def test_a_mask_hiding_every_key_gives_zeros_in_ort():
    """The plain case the property covers, kept readable: one bool mask, one hidden row."""
    q = torch.randn(1, 2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    graph = maseir.export(Attention(False, None), (q, q, q, mask), dynamic_dims={})
    got = maseir.ort_session(graph)(q, q, q, mask)
    assert np.array_equal(got[:, :, 1], np.zeros((1, 2, 4), np.float32))
    assert np.abs(got - F.scaled_dot_product_attention(q, q, q, attn_mask=mask).numpy()).max() <= 1e-5


def test_masks_are_reduced_once_per_graph_not_per_layer(tiny_bert):
    """The hidden-row test reads the mask (shared by every layer), not each layer's scores."""
    _, graph = tiny_bert
    model = maseir.to_onnx(graph)
    reductions = [n for n in model.graph.node if n.op_type.startswith("Reduce")]
    layers = sum(n.op == "scaled_dot_product_attention" for n in graph.nodes)
    assert layers == 2 and len(reductions) == 1


def test_bert_padding_row_gives_finite_logits(tiny_bert):
    """A batch row whose attention_mask is all zeros (a server padding to a fixed batch)."""
    model, graph = tiny_bert
    ids, mask = bert_inputs(3, 16)
    mask[1] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
        lowered = maseir.to_torch(graph)(ids, mask).numpy()
    got = maseir.ort_session(graph)(ids, mask)
    assert np.isfinite(got).all()
    assert np.abs(lowered - expected).max() <= 1e-5
    assert np.abs(got - expected).max() <= 1e-5


def test_hidden_rows_survive_an_onnx_round_trip(tiny_bert, tmp_path):
    """maseir's ONNX imports back (import_onnx) and still answers a padding row with finite logits."""
    from maseir.lowering.onnx import save_onnx

    model, graph = tiny_bert
    save_onnx(graph, tmp_path / "b.onnx")
    imported = maseir.import_onnx(tmp_path / "b.onnx")
    ids, mask = bert_inputs(2, 16)
    mask[0] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
        lowered = maseir.to_torch(imported)(ids, mask).numpy()
    assert np.abs(lowered - expected).max() <= 1e-5
    assert np.abs(maseir.ort_session(imported)(ids, mask) - expected).max() <= 1e-5
