"""``compact``: pruned neurons and attention heads physically gone, the outputs of the
masked model kept (within 1e-5, in torch and in ONNX Runtime), the file smaller; a
graph with nothing to compact comes back as it is, with a note."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import maseir
from maseir.arrays import to_numpy
from maseir.cli.main import main
from maseir.dsl import parse
from maseir.passes import run_pipeline
from maseir.passes.prune.groups import attention_blocks
from maseir.serialize import digest

from models import SETTINGS, mlps
from prunemodels import sharp_bert, sharp_tiny_bert  # noqa: F401  (a fixture)


def run(graph, text: str, seed: int = 0):
    return run_pipeline(graph, parse(text.strip() + "\n"), seed=seed)


def outputs(graph, *inputs):
    with torch.no_grad():
        out = maseir.to_torch(graph)(*inputs)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def ort_outputs(graph, *inputs):
    out = maseir.ort_session(graph)(*[x.numpy() for x in inputs])
    return list(out) if isinstance(out, tuple) else [out]


def assert_close(got, want, atol=1e-5):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)


def compacted(graph, prune: str, *inputs):
    """(pruned, compacted, compact's outcome), after checking compact is pure and deterministic
    and keeps the pruned graph's outputs in torch, and that ORT agrees on the compacted graph."""
    pruned, _ = run(graph, prune)
    before = digest(pruned)
    out, (outcome,) = run(pruned, "compact")
    again, _ = run(pruned, "compact")
    assert digest(pruned) == before and digest(out) == digest(again)
    assert maseir.check(out) == []
    want = outputs(pruned, *inputs)
    assert_close(outputs(out, *inputs), want)
    assert_close(ort_outputs(out, *inputs), want)
    return pruned, out, outcome


def shapes(graph):
    return {n: tuple(t.type.shape) for n, t in graph.params.items()}


# --- MLPs -----------------------------------------------------------------------------------
def ffn_mlps():
    """Random MLPs whose linears are neuron pairs (activations and dropout between, no
    LayerNorm), so compact has neurons to remove."""
    return mlps(min_width=2, min_linears=2, layer_norm=False)


@SETTINGS
@given(ffn_mlps(), st.floats(0.1, 0.9), st.sampled_from(["local", "global"]), st.integers(0, 2**16))
def test_compact_keeps_the_outputs_of_random_mlps(case, sparsity, scope, seed):
    model, (width,) = case
    graph = maseir.export(model, (torch.randn(2, width),))
    x = torch.randn(5, width)
    pruned, out, outcome = compacted(graph, f"prune granularity=neuron sparsity={sparsity!r} scope={scope} "
                                            f"method=random seed={seed}", x)
    removed = sum(v["removed"] for v in outcome.report["neurons"].values())
    if removed:
        assert sum(t.type.numel() for t in out.params.values()) < sum(t.type.numel() for t in pruned.params.values())
        assert outcome.report["bytes_after"] < outcome.report["bytes_before"]
        for name, counts in outcome.report["neurons"].items():
            node = out.node(name)
            assert out.params[node.inputs[1]].type.shape[0] == counts["kept"]
            assert node.outputs[0].type.shape[-1] == counts["kept"]  # value types follow the params
    else:
        assert out is pruned or digest(out) == digest(pruned)
        assert "nothing to compact" in outcome.summary


@pytest.mark.parametrize("activation", [nn.Sigmoid, nn.GELU, nn.ReLU, nn.Tanh, nn.SiLU])
def test_a_dead_neurons_constant_output_moves_into_the_next_bias(activation):
    """sigmoid(0) = 0.5: each removed neuron adds 0.5 x its column to the next linear's bias."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), activation(), nn.Linear(10, 4)).eval()
    graph = maseir.export(model, (torch.randn(2, 6),))
    x = torch.randn(8, 6)
    pruned, out, outcome = compacted(graph, 'prune granularity=neuron sparsity=0.4 scope_regex="^0$"', x)
    assert shapes(out)["0.weight"] == (6, 6) and shapes(out)["2.weight"] == (4, 6)
    assert outcome.report["neurons"] == {"0.linear": {"removed": 4, "kept": 6}}
    bias_moved = not np.array_equal(to_numpy(out.params["2.bias"]), to_numpy(pruned.params["2.bias"]))
    assert bias_moved == (activation is nn.Sigmoid)
    # the test can fail: without the folded constant the sigmoid's outputs would differ
    if activation is nn.Sigmoid:
        unfolded = out.copy()
        unfolded.params["2.bias"] = pruned.params["2.bias"]
        assert np.abs(outputs(unfolded, x)[0] - outputs(pruned, x)[0]).max() > 1e-3


@pytest.mark.parametrize("quantize,removed", [
    ("quantize bits=8 data=none", False),  # 0.5 x columns does not fit the 8-bit bias: the neurons stay
    ("quantize bits=4 data=none granularity=channel", False),
    ("quantize bits=16 data=none weight.frac=8 bias.frac=12", True),  # it fits: folded exactly
    ("quantize bits=8 data.frac=0 weight.frac=4 bias.frac=4", True),  # sigmoid(0) = 0.5 rounds to 0 on the way
    ("quantize bits=8 data=dynamic", False),  # what 0.5 rounds to depends on each batch's range
])
def test_compacting_sigmoid_neurons_of_a_quantized_graph_keeps_its_outputs(quantize, removed):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.Sigmoid(), nn.Linear(10, 4)).eval()
    graph = maseir.export(model, (torch.randn(2, 6),))
    quantized, _ = run(graph, quantize)
    x = torch.randn(8, 6) * 4
    pruned, out, outcome = compacted(quantized, 'prune granularity=neuron sparsity=0.4 scope_regex="^0$"', x)
    assert (shapes(out)["0.weight"] == (6, 6)) == removed
    assert out.params["2.bias"].type.format == quantized.params["2.bias"].type.format


def test_a_sigmoid_neuron_without_a_next_bias_stays():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.Sigmoid(), nn.Linear(10, 4, bias=False)).eval()
    graph = maseir.export(model, (torch.randn(2, 6),))
    pruned, out, outcome = compacted(graph, 'prune granularity=neuron sparsity=0.4 scope_regex="^0$"',
                                     torch.randn(3, 6))
    assert digest(out) == digest(pruned) and shapes(out) == shapes(graph)


def test_nothing_to_compact_is_a_no_op_with_a_note(tmp_path, capsys):
    torch.manual_seed(0)
    graph = maseir.export(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6)).eval(), (torch.randn(2, 4),))
    out, (outcome,) = run(graph, "compact")
    assert digest(out) == digest(graph) and not outcome.changed
    assert "nothing to compact" in outcome.summary
    unstructured, _ = run(graph, "prune sparsity=0.3")  # zeros, but no whole neuron (row of L1 or column of L2)
    out, (outcome,) = run(unstructured, "compact")
    assert digest(out) == digest(unstructured) and "nothing to compact" in outcome.summary
    maseir.save(graph, tmp_path / "m.mir")
    assert main(["apply", "-e", "compact", str(tmp_path / "m.mir"), "-o", str(tmp_path / "o.mir")]) == 0
    assert "nothing to compact" in capsys.readouterr().out


def test_a_fully_pruned_block_is_kept():
    torch.manual_seed(0)
    graph = maseir.export(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval(), (torch.randn(2, 4),))
    pruned, out, outcome = compacted(graph, 'prune granularity=neuron sparsity=1.0 scope_regex="^0$"',
                                     torch.randn(3, 4))
    assert shapes(out) == shapes(graph)


# --- the bert-tiny shape --------------------------------------------------------------------
def test_compact_removes_attention_heads(sharp_tiny_bert, tmp_path):
    graph, inputs = sharp_tiny_bert
    pruned, out, outcome = compacted(graph, "prune granularity=neuron targets=heads sparsity=0.5", *inputs)
    assert np.abs(outputs(pruned, *inputs)[0] - outputs(graph, *inputs)[0]).max() > 1e-2  # pruning mattered
    assert len(outcome.report["heads"]) == 2
    for block in attention_blocks(graph):
        assert outcome.report["heads"][block.attention.name] == {"removed": 1, "kept": 1}
        for lin in (block.query, block.key, block.value):
            assert shapes(out)[lin.inputs[1]] == (64, 128) and shapes(out)[lin.inputs[2]] == (64,)
        assert shapes(out)[block.output.inputs[1]] == (128, 64)
    (after,) = [b for b in attention_blocks(out) if b.attention.name == block.attention.name]
    assert (after.heads, after.head_dim) == (1, 64)
    _smaller_file(pruned, out, tmp_path)


def test_compact_removes_ffn_neurons(sharp_tiny_bert, tmp_path):
    graph, inputs = sharp_tiny_bert
    pruned, out, outcome = compacted(graph, "prune granularity=neuron targets=ffn sparsity=0.25", *inputs)
    assert {k: v["kept"] for k, v in outcome.report["neurons"].items()} == {
        f"bert.encoder.layer.{i}.intermediate.dense.linear": 384 for i in range(2)}
    for i in range(2):
        assert shapes(out)[f"bert.encoder.layer.{i}.intermediate.dense.weight"] == (384, 128)
        assert shapes(out)[f"bert.encoder.layer.{i}.output.dense.weight"] == (128, 384)
    _smaller_file(pruned, out, tmp_path)


def test_compact_after_heads_ffn_and_unstructured_pruning(sharp_tiny_bert):
    graph, inputs = sharp_tiny_bert
    compacted(graph, "prune sparsity=0.3\nprune granularity=neuron targets=heads sparsity=0.5 scope=global\n"
                     "prune granularity=neuron targets=ffn sparsity=0.5 scope=global norm=l2", *inputs)


def _smaller_file(pruned, out, tmp_path):
    maseir.save(pruned, tmp_path / "pruned.mir")
    maseir.save(out, tmp_path / "compact.mir")
    assert (tmp_path / "compact.mir").stat().st_size < (tmp_path / "pruned.mir").stat().st_size
    assert maseir.load(tmp_path / "compact.mir") == out


def test_compact_heads_as_wide_as_they_are_many():
    """4 heads of 4 features: the reshapes' head count and head size are the same number."""
    graph, inputs = sharp_bert(hidden_size=16, num_attention_heads=4, intermediate_size=32, num_hidden_layers=1)
    pruned, out, outcome = compacted(graph, "prune granularity=neuron targets=heads sparsity=0.5", *inputs)
    (block,) = attention_blocks(out)
    assert (block.heads, block.head_dim) == (2, 4)


def test_compact_of_a_quantized_graph_keeps_formats(sharp_tiny_bert):
    graph, inputs = sharp_tiny_bert
    quantized, _ = run(graph, "quantize bits=8 granularity=channel data=none")
    pruned, out, _ = compacted(quantized, "prune granularity=neuron targets=ffn sparsity=0.5", *inputs)
    name = "bert.encoder.layer.0.intermediate.dense.weight"
    rows = to_numpy(pruned.params[name]).any(axis=1)
    old, new = pruned.params[name].type.format, out.params[name].type.format
    assert new.kind == old.kind and new.width == old.width and new.axis == old.axis == 0
    assert new.fracs == tuple(f for f, keep in zip(old.fracs, rows) if keep)
    assert (to_numpy(out.params[name]) == to_numpy(pruned.params[name])[rows]).all()


class PermutedAttention(nn.Module):
    """Multi-head self-attention written with permute (as many models are), 4 heads of 4."""

    def __init__(self, heads=4, head_dim=4):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        width = heads * head_dim
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = (lin(x).view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)
                   for lin in (self.query, self.key, self.value))
        context = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out(context.permute(0, 2, 1, 3).reshape(b, s, self.heads * self.head_dim))


def test_compact_heads_of_an_attention_written_with_permute():
    torch.manual_seed(0)
    model = PermutedAttention().eval()
    with torch.no_grad():
        for lin in (model.query, model.key):
            lin.weight.mul_(4)  # attention far from uniform
    graph = maseir.export(model, (torch.randn(2, 5, 16),), dynamic_dims={"x": {0: "batch", 1: "seq"}})
    assert {"permute"} <= {n.op for n in graph.nodes} and len(attention_blocks(graph)) == 1
    x = torch.randn(3, 7, 16)
    pruned, out, outcome = compacted(graph, "prune granularity=neuron targets=heads sparsity=0.5", x)
    (block,) = attention_blocks(out)
    assert (block.heads, block.head_dim) == (2, 4)
    assert np.abs(outputs(pruned, x)[0] - outputs(graph, x)[0]).max() > 1e-2
