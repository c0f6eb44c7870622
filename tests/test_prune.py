"""``prune``: the requested sparsity to within one element, the largest weights kept
(l1), one mask per seed, earlier zeros kept, pure and deterministic; neurons, FFN
blocks and attention heads; quantized and LoRA graphs; the zeros survive
``finetune``, ``report`` shows them, both lowerings compute with them; bad steps
are one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import maseir
from maseir import tensors
from maseir.arrays import to_numpy
from maseir.cli.main import main
from maseir.dsl import DSLError, parse
from maseir.passes import PassError, run_pipeline
from maseir.passes.lora import ROLE
from maseir.passes.prune.groups import attention_blocks, head_node_names, neuron_pairs
from maseir.serialize import digest

from models import SETTINGS, mlps
from prunemodels import sharp_tiny_bert  # noqa: F401  (a fixture)
from textmodels import reviews, tiny_text_bert, write_rows


def run(graph, text: str, seed: int = 0):
    return run_pipeline(graph, parse(text.strip() + "\n"), seed=seed)


def linear_weights(graph) -> list[str]:
    return [n.inputs[1] for n in graph.nodes if n.op == "linear"]


def with_values(graph, values: dict[str, np.ndarray]):
    new = graph.copy()
    for name, array in values.items():
        old = graph.params[name]
        new.params[name] = tensors.to_ir(name, torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)),
                                         old.trainable, old.type.format)
    return new


def random_weights(graph, rng, ties: bool) -> dict[str, np.ndarray]:
    """New values for every linear weight: normal, or half-integers in -3..3 (many ties and zeros)."""
    out = {}
    for name in linear_weights(graph):
        shape = graph.params[name].type.shape
        out[name] = rng.integers(-6, 7, shape) * 0.5 if ties else rng.standard_normal(shape)
    return out


def mlp_graph(case, rng, ties):
    model, (width,) = case
    graph = maseir.export(model, (torch.randn(2, width),))
    return with_values(graph, random_weights(graph, rng, ties)), width


def first_by_position(magnitudes: np.ndarray, pruned: np.ndarray, threshold: float) -> bool:
    """Among the elements whose magnitude is the threshold, the pruned ones come first."""
    at = np.flatnonzero(magnitudes.reshape(-1) == threshold)
    flags = pruned.reshape(-1)[at]
    return not (flags[1:] & ~flags[:-1]).any()  # no pruned element after a kept one


# --- unstructured ------------------------------------------------------------------------
@SETTINGS
@given(mlps(), st.floats(0.0, 1.0), st.sampled_from(["local", "global"]), st.booleans(), st.integers(0, 2**16))
def test_l1_pruning_reaches_the_sparsity_and_keeps_the_largest_weights(case, sparsity, scope, ties, seed):
    graph, _ = mlp_graph(case, np.random.default_rng(seed), ties)
    before = digest(graph)
    out, (outcome,) = run(graph, f"prune sparsity={sparsity!r} scope={scope}")
    again, _ = run(graph, f"prune sparsity={sparsity!r} scope={scope}")
    assert digest(graph) == before and digest(out) == digest(again)  # pure and deterministic
    names = linear_weights(graph)
    old = {n: to_numpy(graph.params[n]) for n in names}
    new = {n: to_numpy(out.params[n]) for n in names}
    pruned = {n: (new[n] == 0) for n in names}
    for n in names:
        assert (new[n][~pruned[n]] == old[n][~pruned[n]]).all()  # kept weights are untouched
        assert pruned[n][old[n] == 0].all()  # earlier zeros stay
        assert out.params[n].annotations["prune.sparsity"] == repr(sparsity)
    groups = [[n] for n in names] if scope == "local" else [names]
    for group in groups:
        size = sum(old[n].size for n in group)
        zeros_before = sum(int((old[n] == 0).sum()) for n in group)
        zeros = sum(int(pruned[n].sum()) for n in group)
        assert zeros == max(int(round(sparsity * size)), zeros_before)
        if zeros_before <= sparsity * size:
            assert abs(zeros - sparsity * size) <= 0.5 + 1e-9  # within one element, rounded to the nearest
        magnitudes = np.concatenate([np.abs(old[n]).reshape(-1) for n in group])
        mask = np.concatenate([pruned[n].reshape(-1) for n in group])
        if mask.any() and not mask.all():
            threshold = magnitudes[mask].max()
            assert threshold <= magnitudes[~mask].min()
            assert first_by_position(magnitudes, mask, threshold)  # ties: by tensor order, then flat index
    # biases and everything else are left alone
    assert all(out.params[n] == graph.params[n] for n in graph.params if n not in names)
    assert outcome.report["overall"] == pytest.approx(sum(int(p.sum()) for p in pruned.values())
                                                      / sum(p.size for p in pruned.values()))


@SETTINGS
@given(mlps(), st.floats(0.0, 1.0), st.sampled_from(["local", "global"]), st.integers(0, 2**16))
def test_random_pruning_is_one_mask_per_seed(case, sparsity, scope, seed):
    graph, _ = mlp_graph(case, np.random.default_rng(seed), ties=False)
    step = f"prune method=random sparsity={sparsity!r} scope={scope} seed={seed}"
    out, _ = run(graph, step)
    same, _ = run(graph, step)
    from_apply_seed, _ = run(graph, f"prune method=random sparsity={sparsity!r} scope={scope}", seed=seed)
    assert digest(out) == digest(same) == digest(from_apply_seed)
    names = linear_weights(graph)
    counts = [int((to_numpy(out.params[n]) == 0).sum()) for n in names]
    sizes = [graph.params[n].type.numel() for n in names]
    if scope == "local":
        assert counts == [int(round(sparsity * s)) for s in sizes]
    else:
        assert sum(counts) == int(round(sparsity * sum(sizes)))


def test_random_pruning_depends_on_the_seed():
    torch.manual_seed(0)
    graph = maseir.export(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval(),
                          (torch.randn(2, 16),))
    masks = [tuple(to_numpy(run(graph, f"prune method=random seed={s}")[0].params["0.weight"]).reshape(-1) == 0)
             for s in range(3)]
    assert len(set(masks)) == 3


@SETTINGS
@given(mlps(), st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.sampled_from(["l1", "random"]),
       st.sampled_from(["local", "global"]), st.integers(0, 2**16))
def test_pruning_further_keeps_the_earlier_zeros(case, first, second, method, scope, seed):
    low, high = sorted((first, second))
    graph, _ = mlp_graph(case, np.random.default_rng(seed), ties=False)
    once, _ = run(graph, f"prune method={method} scope={scope} sparsity={low!r}", seed=seed)
    twice, _ = run(once, f"prune method={method} scope={scope} sparsity={high!r}", seed=seed + 1)
    for n in linear_weights(graph):
        earlier, later = to_numpy(once.params[n]) == 0, to_numpy(twice.params[n]) == 0
        assert later[earlier].all()
        if scope == "local":
            assert later.sum() == int(round(high * later.size))


def test_ties_break_by_position():
    torch.manual_seed(0)
    graph = maseir.export(nn.Sequential(nn.Linear(4, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False)).eval(),
                          (torch.randn(2, 4),))
    graph = with_values(graph, {"0.weight": np.ones((2, 4)), "2.weight": -np.ones((2, 2))})
    local, _ = run(graph, "prune sparsity=0.5")
    assert (to_numpy(local.params["0.weight"]) == [[0, 0, 0, 0], [1, 1, 1, 1]]).all()
    assert (to_numpy(local.params["2.weight"]) == [[0, 0], [-1, -1]]).all()
    glob, _ = run(graph, "prune sparsity=0.5 scope=global")  # 6 of 12: the first tensor's eight come first
    assert (to_numpy(glob.params["0.weight"]) == [[0, 0, 0, 0], [0, 0, 1, 1]]).all()
    assert (to_numpy(glob.params["2.weight"]) == -1).all()


def test_both_lowerings_compute_with_the_pruned_weights(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 5)).eval()
    graph = maseir.export(model, (torch.randn(2, 12),))
    out, _ = run(graph, "prune sparsity=0.7 scope=global")
    masked = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 5)).eval()
    masked.load_state_dict({k: torch.from_numpy(np.array(to_numpy(out.params[k]))) for k in model.state_dict()})
    assert sum(int((p == 0).sum()) for p in masked.parameters()) >= 0.7 * (12 * 24 + 24 * 5) - 1
    x = torch.randn(7, 12)
    with torch.no_grad():
        want = masked(x)
        torch.testing.assert_close(maseir.to_torch(out)(x), want, rtol=0, atol=1e-6)
        assert (maseir.to_torch(graph)(x) - want).abs().max() > 1e-3  # pruning changed something
    np.testing.assert_allclose(maseir.ort_session(out)(x.numpy()), want.numpy(), rtol=0, atol=1e-5)
    onnx_model = maseir.to_onnx(out)
    assert not onnx_model.graph.sparse_initializer  # ONNX gets dense weights
    from onnx import numpy_helper
    stored = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    zeros_in_onnx = sum(int((a == 0).sum()) for a in stored.values() if a.ndim == 2)
    assert zeros_in_onnx == sum(int((to_numpy(out.params[n]) == 0).sum()) for n in linear_weights(out))
    maseir.save(out, tmp_path / "p.mir")
    assert maseir.load(tmp_path / "p.mir") == out


def test_other_ops_and_scopes_are_selected():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    graph = maseir.export(model, (torch.randint(0, 50, (2, 5)),))
    emb, _ = run(graph, "prune ops=embedding sparsity=0.25")
    assert (to_numpy(emb.params["0.weight"]) == 0).sum() == 100
    assert all(emb.params[n] == graph.params[n] for n in graph.params if n != "0.weight")
    one, _ = run(graph, "prune scope_regex='^3$' sparsity=0.5".replace("'", '"'))
    assert (to_numpy(one.params["3.weight"]) == 0).sum() == 12
    assert all(one.params[n] == graph.params[n] for n in graph.params if n != "3.weight")


# --- structured: neurons, FFN blocks, heads --------------------------------------------------
def test_neurons_go_by_the_norm_of_their_rows():
    torch.manual_seed(0)
    graph = maseir.export(nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2)).eval(), (torch.randn(2, 4),))
    graph = with_values(graph, {"0.weight": np.array([[1.0, 1, 1, 1], [3, 0.1, 0, 0]])})  # l1 4 vs 3.1; l2 2 vs 3.0
    l1, _ = run(graph, "prune granularity=neuron sparsity=0.5 scope_regex='^0$'".replace("'", '"'))
    l2, _ = run(graph, "prune granularity=neuron norm=l2 sparsity=0.5 scope_regex='^0$'".replace("'", '"'))
    assert (to_numpy(l1.params["0.weight"])[1] == 0).all() and (to_numpy(l1.params["0.weight"])[0] != 0).all()
    assert (to_numpy(l2.params["0.weight"])[0] == 0).all() and (to_numpy(l2.params["0.weight"])[1] != 0).any()
    assert to_numpy(l1.params["0.bias"])[1] == 0 and to_numpy(l2.params["0.bias"])[0] == 0
    assert l1.params["0.weight"].annotations["prune.granularity"] == "neuron"
    assert l2.params["0.weight"].annotations["prune.method"] == "l2"


@SETTINGS
@given(mlps(), st.floats(0.0, 1.0), st.sampled_from(["local", "global"]), st.sampled_from(["l1", "l2", "random"]),
       st.integers(0, 2**16))
def test_neuron_pruning_zeroes_whole_rows(case, sparsity, scope, rank, seed):
    graph, _ = mlp_graph(case, np.random.default_rng(seed), ties=False)
    method = "method=random" if rank == "random" else f"norm={rank}"
    step = f"prune granularity=neuron sparsity={sparsity!r} scope={scope} {method} seed={seed}"
    head = head_node_names(graph)  # the logits' linear: its neurons are the classes, never pruned
    body = [n for n in graph.nodes if n.op == "linear" and n.name not in head]
    if not body:
        with pytest.raises(PassError, match="selects only the task head"):
            run(graph, step)
        return
    before = digest(graph)
    out, (outcome,) = run(graph, step)
    assert digest(graph) == before and digest(run(graph, step)[0]) == digest(out)
    for name in head:
        node = next(n for n in graph.nodes if n.name == name)
        assert np.array_equal(to_numpy(out.params[node.inputs[1]]), to_numpy(graph.params[node.inputs[1]]))
    rows = {n.name: to_numpy(out.params[n.inputs[1]]) for n in body}
    dead = {k: ~w.reshape(w.shape[0], -1).any(axis=1) for k, w in rows.items()}
    for node in body:
        if len(node.inputs) > 2 and node.inputs[2]:
            assert (to_numpy(out.params[node.inputs[2]])[dead[node.name]] == 0).all()
        assert outcome.report["units"][node.name]["pruned"] == int(dead[node.name].sum())
    counts = [int(d.sum()) for d in dead.values()]
    sizes = [d.size for d in dead.values()]
    if scope == "local":
        assert counts == [int(round(sparsity * s)) for s in sizes]
    else:
        assert sum(counts) == int(round(sparsity * sum(sizes)))


def test_ffn_pruning_takes_rows_and_the_matching_columns(sharp_tiny_bert):
    graph, _ = sharp_tiny_bert
    out, (outcome,) = run(graph, "prune granularity=neuron targets=ffn sparsity=0.25")
    pairs = [p for p in neuron_pairs(graph) if "intermediate" in p.first.name]
    assert outcome.report["units"] == {p.first.name: {"units": 512, "pruned": 128} for p in pairs} and len(pairs) == 2
    for pair in pairs:
        w1, b1 = to_numpy(out.params[pair.first.inputs[1]]), to_numpy(out.params[pair.first.inputs[2]])
        w2 = to_numpy(out.params[pair.second.inputs[1]])
        dead_rows = ~w1.any(axis=1)
        assert dead_rows.sum() == 128  # 0.25 of 512
        assert (b1[dead_rows] == 0).all() and (w2[:, dead_rows] == 0).all()
        assert w2[:, ~dead_rows].all() and w1[~dead_rows].any(axis=1).all()
        norms = np.abs(to_numpy(graph.params[pair.first.inputs[1]])).sum(axis=1)
        assert norms[dead_rows].max() <= norms[~dead_rows].min()
        assert out.params[pair.second.inputs[1]].annotations["prune.granularity"] == "neuron:ffn"
    classifier = [n for n in graph.params if n.startswith("classifier")]
    assert all(out.params[n] == graph.params[n] for n in classifier)  # the head is no FFN


def test_head_pruning_takes_query_key_value_rows_and_output_columns(sharp_tiny_bert):
    graph, _ = sharp_tiny_bert
    out, (outcome,) = run(graph, "prune granularity=neuron targets=heads sparsity=0.5")
    blocks = attention_blocks(graph)
    assert outcome.report["units"] == {b.attention.name: {"units": 2, "pruned": 1} for b in blocks}
    assert len(blocks) == 2
    for block in blocks:
        assert (block.heads, block.head_dim) == (2, 64)
        heads = [~to_numpy(out.params[lin.inputs[1]]).reshape(2, -1).any(axis=1)
                 for lin in (block.query, block.key, block.value)]
        assert all((h == heads[0]).all() for h in heads) and heads[0].sum() == 1
        dead = int(np.flatnonzero(heads[0])[0])
        for lin in (block.query, block.key, block.value):
            assert (to_numpy(out.params[lin.inputs[2]]).reshape(2, -1)[dead] == 0).all()
        columns = to_numpy(out.params[block.output.inputs[1]]).reshape(-1, 2, 64)
        assert (columns[:, dead] == 0).all() and columns[:, 1 - dead].all()


# --- quantized and LoRA graphs --------------------------------------------------------------
@pytest.mark.parametrize("quantize", ["quantize bits=8 data=none", "quantize bits=4 data=none",
                                      "quantize bits=4 granularity=channel data=dynamic", "quantize bits=12 data=none"])
def test_pruning_a_quantized_graph_zeroes_codes_and_keeps_formats(quantize, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(9, 63), nn.ReLU(), nn.Linear(63, 5)).eval()  # odd sizes: a shared int4 byte
    graph = maseir.export(model, (torch.randn(2, 9),))
    quantized, _ = run(graph, quantize)
    out, _ = run(quantized, "prune sparsity=0.6")
    for name in linear_weights(graph):
        old, new = quantized.params[name], out.params[name]
        assert new.type == old.type  # the same format, per-channel fracs included
        before, after = to_numpy(old), to_numpy(new)
        assert (after[after != 0] == before[after != 0]).all()  # the other codes (and nibbles) unchanged
        assert (after == 0).sum() == max(int(round(0.6 * after.size)), int((before == 0).sum()))
    x = torch.randn(6, 9)
    with torch.no_grad():
        want = maseir.to_torch(out)(x).numpy()
    np.testing.assert_allclose(maseir.ort_session(out)(x.numpy()), want, rtol=0, atol=1e-5)
    maseir.save(out, tmp_path / "q.mir")
    assert maseir.load(tmp_path / "q.mir") == out


def test_pruning_a_lora_graph_leaves_the_adapters_alone():
    """The adapters are not the model's weights: pruning B (all zeros at first) would keep it
    at zero through finetune, so the adapter could never learn."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    graph = maseir.export(model, (torch.randn(2, 6),))
    adapted, _ = run(graph, "lora rank=2 alpha=4 ops=linear")
    adapters = {n for n, t in adapted.params.items() if ROLE in t.annotations}
    assert adapters
    for step in ("prune sparsity=0.5", "prune sparsity=0.5 method=random scope=global",
                 "prune granularity=neuron sparsity=0.5"):
        out, (outcome,) = run(adapted, step)
        assert all(out.params[n] == adapted.params[n] for n in adapters), step
        expected = {"0.weight", "2.weight"} | ({"4.weight"} if "neuron" not in step else set())  # 4: the head
        assert set(outcome.report["tensors"]) == expected, step
    with pytest.raises(PassError, match="feed-forward"):  # the adapters are no FFN blocks either
        run(adapted, "prune granularity=neuron targets=ffn")


def test_fusing_lora_keeps_a_pruned_weights_zeros():
    """fuse lora masks the update where a pruned base weight is zero (the zeros are its mask)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.Linear(10, 4)).eval()
    graph = maseir.export(model, (torch.randn(2, 6),))
    adapted, _ = run(graph, "prune sparsity=0.5\nlora rank=2 alpha=4 ops=linear")
    trained = adapted.copy()  # as if finetune had moved B away from zero
    for name, t in adapted.params.items():
        if t.annotations.get(ROLE) == "B":
            trained.params[name] = tensors.to_ir(name, torch.randn(t.type.shape), True).replace(
                annotations=t.annotations)
    fused, _ = run(trained, "fuse lora")
    assert "prune.method" in fused.params["0.weight"].annotations
    before = to_numpy(adapted.params["0.weight"]) == 0
    assert (to_numpy(fused.params["0.weight"])[before] == 0).all()


# --- finetune and report --------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prune_finetune")
    graph = tiny_text_bert(folder / "model")
    data = write_rows(folder / "train.csv", [{"text": t, "label": y} for t, y in reviews(32)])
    return graph, data


@pytest.fixture(scope="module")
def tuned(text_model):
    """(pruned, fine-tuned) graphs: unstructured global pruning, then FFN neurons."""
    graph, data = text_model
    pruned, _ = run(graph, "prune sparsity=0.5 scope=global\nprune granularity=neuron targets=ffn sparsity=0.25")
    out, _ = run(pruned, f'finetune dataset="{data}" epochs=1 lr=1e-3 batch=8 seq_len=16')
    return pruned, out


def test_pruned_weights_stay_exactly_zero_through_finetune(tuned):
    pruned, out = tuned
    names = [n for n, t in pruned.params.items() if "prune.method" in t.annotations]
    assert len(names) == 2 * 7  # 6 linears per layer and the pooler (structured pruning masks weights, not biases)
    for n in names:
        before, after = to_numpy(pruned.params[n]), to_numpy(out.params[n])
        assert after[before == 0].tobytes() == bytes(4 * int((before == 0).sum())), n  # still +0.0, every one
        if before.ndim == 2:
            assert ((after == 0) == (before == 0)).all(), n  # no new zeros either
            assert not np.array_equal(before, after), n  # and the rest did train
        assert out.params[n].annotations == pruned.params[n].annotations
    _, (report,) = run(out, "report")
    assert report.report["sparsity"] == {n: round(float((to_numpy(out.params[n]) == 0).mean()), 6) for n in names}
    weights = sum(out.params[n].type.numel() for n in names)
    zeros = sum(int((to_numpy(out.params[n]) == 0).sum()) for n in names)
    assert report.report["sparsity_overall"] == round(zeros / weights, 6)
    assert f"{len(names)} pruned tensors" in report.summary


def test_kept_neurons_biases_train_after_neuron_pruning(tuned):
    """Structured pruning masks the weight matrices only: biases (a kept neuron's zero-initialised one
    among them) train, while the masked rows and columns keep the pruned neurons cut off."""
    pruned, out = tuned
    name = "bert.encoder.layer.0.intermediate.dense.bias"
    weight = name.replace(".bias", ".weight")
    assert not any(k.startswith("prune.") for k in pruned.params[name].annotations)
    assert pruned.params[weight].annotations["prune.granularity"] == "neuron:ffn"
    rows = to_numpy(pruned.params[weight]).any(axis=1)  # the kept neurons
    assert to_numpy(out.params[name])[rows].any()
    assert not to_numpy(out.params[weight])[~rows].any()  # the pruned rows stay exactly zero
    compacted, _ = run(out, "compact")  # their output columns are zero too: compact removes them
    assert compacted.params[weight].type.shape[0] == int(rows.sum())


def test_lora_adapters_learn_on_a_pruned_graph(text_model):
    graph, data = text_model
    out, _ = run(graph, f'lora rank=4 alpha=8\nprune sparsity=0.5\n'
                        f'finetune dataset="{data}" epochs=1 lr=1e-3 batch=8 seq_len=16')
    b_params = [n for n, t in out.params.items() if t.annotations.get(ROLE) == "B"]
    assert b_params and all(to_numpy(out.params[n]).any() for n in b_params)


def test_an_unpruned_graph_reports_no_sparsity(text_model):
    graph, _ = text_model
    _, (outcome,) = run(graph, "report")
    assert "sparsity" not in outcome.report and "pruned" not in outcome.summary


# --- bad input ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    return maseir.export(model, (torch.randint(0, 10, (2, 5)),))


@pytest.mark.parametrize("text,fragment", [
    ("prune sparsity=1.5", "f.pass:2:7: prune: sparsity=1.5: out of range (0 <= sparsity <= 1)"),
    ("prune sparsity=-0.01", "f.pass:2:7: prune: sparsity=-0.01: out of range"),
    ("prune method=foo", "f.pass:2:7: prune: method=foo: choose from l1, random"),
    ("prune scope=everywhere", "f.pass:2:7: prune: scope=everywhere: choose from local, global"),
    ("prune granularity=row", "f.pass:2:7: prune: granularity=row: choose from weight, neuron"),
    ("prune targets=mlp granularity=neuron", "f.pass:2:7: prune: targets=mlp: choose from ffn, heads"),
    ("prune norm=l3", "f.pass:2:7: prune: norm=l3: choose from l1, l2"),
])
def test_bad_prune_arguments_are_refused_with_line_and_column(small, text, fragment):
    with pytest.raises(DSLError) as info:
        run_pipeline(small, parse("report\n" + text + "\n", "f.pass"))
    assert fragment in str(info.value).splitlines()[0]


@pytest.mark.parametrize("text,fragment", [
    ("prune granularity=neuron ops=embedding", "granularity=neuron prunes the output neurons of linear layers; "
                                               "embedding has none"),
    ("prune targets=ffn", "targets=ffn prunes whole neurons or heads: give granularity=neuron"),
    ("prune granularity=neuron targets=heads", "targets=heads: the graph has no attention blocks"),
    ("prune ops=conv2d", "no node has op conv2d"),
    ('prune scope_regex="nothing"', "matches no node"),
])
def test_prune_steps_that_do_not_fit_the_graph_name_the_step(small, text, fragment):
    with pytest.raises(PassError) as info:
        run_pipeline(small, parse("report\n" + text + "\n", "f.pass"))
    message = str(info.value)
    assert fragment in message and "f.pass:2:1: step 2 (prune" in message and "\n" not in message


def test_the_cli_reports_a_bad_prune_step_in_one_line(small, tmp_path, capsys):
    maseir.save(small, tmp_path / "m.mir")
    (tmp_path / "p.pass").write_text("# prune\nprune sparsity=1.5\n")
    assert main(["apply", str(tmp_path / "p.pass"), str(tmp_path / "m.mir"), "-o", str(tmp_path / "o.mir")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"maseir: error: {tmp_path / 'p.pass'}:2:7: prune: sparsity=1.5") and "Traceback" not in err
    assert not (tmp_path / "o.mir").exists()
    (tmp_path / "n.pass").write_text("prune granularity=neuron ops=embedding\n")
    assert main(["apply", str(tmp_path / "n.pass"), str(tmp_path / "m.mir"), "-o", str(tmp_path / "o.mir")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"maseir: error: {tmp_path / 'n.pass'}:1:1: step 1 (prune") and len(err.strip().splitlines()) == 1


@SETTINGS
@given(mlps(), st.floats(0.0, 1.0), st.sampled_from(["weight", "neuron"]), st.sampled_from(["l1", "random"]),
       st.integers(0, 2**16))
def test_pruned_weights_of_random_mlps_stay_zero_through_training(case, sparsity, granularity, method, seed):
    from maseir.train import TrainConfig, train
    model, (width,) = case
    graph = maseir.export(model, (torch.randn(2, width),))
    assume(granularity == "weight" or not head_node_names(graph) >= {n.name for n in graph.nodes if n.op == "linear"})
    pruned, _ = run(graph, f"prune sparsity={sparsity!r} granularity={granularity} method={method}", seed=seed)
    classes = graph.value_types()[graph.outputs[0]].shape[-1]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, width)).astype(np.float32)
    y = rng.integers(0, classes, 12)

    def batches(order):
        for start in range(0, len(order), 4):
            rows = order[start:start + 4]
            yield {"input": x[rows]}, y[rows]

    result = train(pruned, batches, 12, TrainConfig(epochs=2, lr=1e-2, batch=4, warmup=0.0, seed=seed, threads=1),
                   logits_output=graph.outputs[0], progress=False)
    moved = False
    for name, tensor in pruned.params.items():
        before, after = to_numpy(tensor), to_numpy(result.graph.params[name])
        if "prune.method" in tensor.annotations:
            assert after[before == 0].tobytes() == bytes(4 * int((before == 0).sum())), name
        moved |= not np.array_equal(before[before != 0], after[before != 0])
    matrices_left = any(to_numpy(t).any() for t in pruned.params.values() if len(t.type.shape) == 2)
    assert moved or not matrices_left  # weight decay alone moves every non-zero matrix
