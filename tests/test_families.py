"""Model families beyond BERT: RoBERTa, GPT-2, a Llama-shaped decoder, ViT, ResNet.

Each is a tiny random config folder exported the way a user does it (`maseir export FOLDER
--random-init --task TASK`, once per session), checked against the Python API, against
transformers eager and ONNX Runtime over several batch sizes and lengths with padded rows, and
through `remove dropout`. GPT-2 (whose Conv1D reshapes to batch*seq, a size expression) is checked
the same way with symbolic sizes, and at fixed sizes through the Python API.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

import maseir
from families import CONFIGS, IMAGE_SIZE, PAD, config_folder, gpt2_config, image_inputs, llama_config, reference_model, \
    text_inputs
from maseir import dsl, passes
from maseir.cli.main import main
from maseir.errors import InputError, MaseIRError
from maseir.frontends.onnx import import_model

TOLERANCE = 1e-4
TEXT_SHAPES = [(1, 1), (2, 16), (3, 9), (5, 37)]  # 3 and 5 rows end with a row that is all padding
IMAGE_BATCHES = [1, 2, 5]

EXPORTED = [("roberta", "sequence-classification"), ("distilbert", "sequence-classification"), ("llama", "causal-lm"), ("llama", "sequence-classification"),
            ("vit", "image-classification"), ("resnet", "image-classification")]


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {family: config_folder(root, family) for family in CONFIGS}


_EXPORTS: dict = {}


@pytest.fixture(scope="session")
def exported(folders, tmp_path_factory):
    """exported(family, task) -> (graph that `maseir export FOLDER --random-init --task TASK` wrote, the
    reference model, what the command printed on stderr); each family and task is exported once per session."""
    def get(family, task):
        if (family, task) not in _EXPORTS:
            path = tmp_path_factory.mktemp(f"{family}-{task}") / "m.mir"
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["export", str(folders[family]), "--random-init", "--task", task, "-o", str(path)])
            assert code == 0, err.getvalue()
            assert out.getvalue().startswith(f"wrote {path}")
            _EXPORTS[family, task] = maseir.load(path), reference_model(folders[family], task), err.getvalue()
        return _EXPORTS[family, task]
    return get


def _inputs(family, batch, seq=None):
    return image_inputs(batch, IMAGE_SIZE[family]) if family in IMAGE_SIZE else text_inputs(batch, seq)


def _eager(model, family, inputs):
    names = ("pixel_values",) if family in IMAGE_SIZE else ("input_ids", "attention_mask")
    with torch.no_grad():
        return model(**dict(zip(names, inputs))).logits.numpy()


def _shapes(family):
    return [(b, None) for b in IMAGE_BATCHES] if family in IMAGE_SIZE else TEXT_SHAPES


def _agreement(graph, model, family, shapes):
    """max |to_torch - eager| and max |ORT - eager| over ``shapes``."""
    lowered, runner = maseir.to_torch(graph), maseir.ort_session(graph)
    worst_torch = worst_ort = 0.0
    for batch, seq in shapes:
        inputs = _inputs(family, batch, seq)
        expected = _eager(model, family, inputs)
        with torch.no_grad():
            got = lowered(*inputs).numpy()
        ort_got = runner(*inputs)
        assert got.shape == expected.shape == ort_got.shape
        assert np.isfinite(ort_got).all()
        worst_torch = max(worst_torch, float(np.abs(got - expected).max()))
        worst_ort = max(worst_ort, float(np.abs(ort_got - expected).max()))
    return worst_torch, worst_ort


# --- the families that export with symbolic sizes ------------------------------------------------
@pytest.mark.parametrize("family,task", EXPORTED)
def test_lowerings_equal_transformers(exported, family, task):
    graph, model, _ = exported(family, task)
    assert maseir.check(graph) == []
    worst_torch, worst_ort = _agreement(graph, model, family, _shapes(family))
    assert worst_torch <= TOLERANCE and worst_ort <= TOLERANCE, (worst_torch, worst_ort)


@pytest.mark.parametrize("family,task", EXPORTED)
def test_cli_and_python_api_export_the_same_graph(exported, folders, family, task):
    graph, _, _ = exported(family, task)
    assert maseir.export_pretrained(str(folders[family]), task=task, random_init=True) == graph
    assert graph.metadata["task"] == task and graph.outputs == ["logits"]


@pytest.mark.parametrize("family,task", EXPORTED)
def test_remove_dropout_keeps_the_outputs(exported, family, task):
    graph, _, _ = exported(family, task)
    without, _ = passes.run_pipeline(graph, dsl.parse("remove dropout"))
    assert not [n for n in without.nodes if n.op == "dropout"]
    inputs = _inputs(family, 3, 9)
    with torch.no_grad():
        before, after = maseir.to_torch(graph)(*inputs), maseir.to_torch(without)(*inputs)
    assert torch.equal(before, after)


def test_graph_inputs_and_sizes_follow_the_task(exported):
    vit, _, _ = exported("vit", "image-classification")
    assert [(v.name, v.type.dtype, v.type.shape) for v in vit.inputs] == [("pixel_values", "float32",
                                                                          ("batch", 3, 32, 32))]
    assert vit.metadata["image_size"] == "32x32" and vit.metadata["labels"] == json.dumps(
        ["LABEL_0", "LABEL_1", "LABEL_2"])
    resnet, _, _ = exported("resnet", "image-classification")
    assert resnet.inputs[0].type.shape == ("batch", 3, 224, 224)  # ResNetConfig names no size: ImageNet's
    lm, _, _ = exported("llama", "causal-lm")
    assert [v.type.shape for v in lm.inputs] == [("batch", "seq"), ("batch", "seq")]
    assert lm.value_types()["logits"].shape == ("batch", "seq", 100) and "labels" not in lm.metadata


def test_llama_is_the_decoder_shape(exported):
    """Rotary embeddings (cos, sin), RMSNorm (pow, mean, rsqrt), the SiLU-gated MLP and a causal mask."""
    graph, _, _ = exported("llama", "causal-lm")
    ops_used = {n.op for n in graph.nodes}
    assert {"cos", "sin", "rsqrt", "silu", "scaled_dot_product_attention"} <= ops_used
    assert graph.node("model.layers.0.mlp.act_fn.silu").scope == "model.layers.0.mlp.act_fn"


def test_pooling_classifier_gets_the_eos_token_as_pad_and_says_so(exported):
    graph, model, printed = exported("llama", "sequence-classification")
    notes = json.loads(graph.metadata["notes"])
    assert len(notes) == 1 and f"pad_token_id set to eos_token_id ({PAD})" in notes[0]
    assert printed == f"note: {notes[0]}\n"  # the CLI says so on stderr
    assert model.config.pad_token_id == PAD  # the reference pools as the export does
    ids, mask = text_inputs(3, 10)
    ids[0, 7:] = PAD  # row 0 pools token 6, the last one that is not the pad token
    expected = _eager(model, "llama", (ids, mask))
    with torch.no_grad():
        assert np.abs(maseir.to_torch(graph)(ids, mask).numpy() - expected).max() <= TOLERANCE
    roberta = exported("roberta", "sequence-classification")
    assert roberta[2] == "" and "notes" not in roberta[0].metadata  # RoBERTa has its pad token


@pytest.mark.parametrize("family,task", EXPORTED)
def test_lowered_onnx_imports_back(exported, family, task):
    graph, _, _ = exported(family, task)
    imported = import_model(maseir.to_onnx(graph), f"{family}.onnx")
    inputs = _inputs(family, 3, 9)
    with torch.no_grad():
        assert (maseir.to_torch(imported)(*inputs) - maseir.to_torch(graph)(*inputs)).abs().max() <= TOLERANCE


# --- GPT-2 ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def gpt2_fixed(folders):
    """task -> (graph exported at fixed sizes 3 x 12 through the Python API, the reference model)."""
    out = {}
    for task in ("sequence-classification", "causal-lm"):
        model = reference_model(folders["gpt2"], task)
        assert model.config.use_cache  # GPT-2's default: export turns the cache off itself
        ids, mask = text_inputs(3, 12)
        graph = maseir.export(model, {"input_ids": ids, "attention_mask": mask}, dynamic_dims={})
        assert model.config.use_cache  # and restores the model's own setting
        out[task] = graph, model
    return out


@pytest.mark.parametrize("task", ["sequence-classification", "causal-lm"])
def test_gpt2_at_fixed_sizes_equals_transformers(gpt2_fixed, task):
    graph, model = gpt2_fixed[task]
    assert {"addmm", "split"} <= {n.op for n in graph.nodes}
    for seed in (0, 1):
        ids, mask = text_inputs(3, 12, seed=seed)
        expected = _eager(model, "gpt2", (ids, mask))
        with torch.no_grad():
            got = maseir.to_torch(graph)(ids, mask).numpy()
        assert np.abs(got - expected).max() <= TOLERANCE
        assert np.abs(maseir.ort_session(graph)(ids, mask) - expected).max() <= TOLERANCE
    without, _ = passes.run_pipeline(graph, dsl.parse("remove dropout"))
    with torch.no_grad():
        assert torch.equal(maseir.to_torch(without)(ids, mask), maseir.to_torch(graph)(ids, mask))


def test_gpt2_without_pad_token_says_what_to_set():
    """Case 1: the default config has no pad_token_id; the error says what to change, in maseir's words."""
    from transformers import GPT2ForSequenceClassification
    model = GPT2ForSequenceClassification(gpt2_config()).eval()
    ids, mask = text_inputs(2, 8)
    with pytest.raises(MaseIRError) as info:
        maseir.export(model, {"input_ids": ids, "attention_mask": mask}, dynamic_dims={})
    message = str(info.value)
    assert info.value.cause == "pad_token_id" and "\n" not in message
    assert "set model.config.pad_token_id" in message and f"eos_token_id is {PAD}" in message
    assert "pytree" not in message and "Cannot handle batch sizes" not in message


@pytest.mark.parametrize("task", ["sequence-classification", "causal-lm"])
def test_gpt2_exports_with_symbolic_sizes(folders, tmp_path, task):
    path = tmp_path / "gpt2.mir"
    assert main(["export", str(folders["gpt2"]), "--random-init", "--task", task, "-o", str(path)]) == 0
    graph = maseir.load(path)
    assert maseir.check(graph) == [] and [v.type.shape for v in graph.inputs] == [("batch", "seq")] * 2
    worst_torch, worst_ort = _agreement(graph, reference_model(folders["gpt2"], task), "gpt2", TEXT_SHAPES)
    assert worst_torch <= TOLERANCE and worst_ort <= TOLERANCE, (worst_torch, worst_ort)


def test_causal_lm_loss_with_labels(folders):
    """transformers' causal-lm loss pads the labels with -100 (aten.pad, to seq+1) and flattens the logits
    to [batch*seq, vocab]; the loss and the logits agree with eager in both lowerings."""
    graph = maseir.export_pretrained(str(folders["llama"]), task="causal-lm", random_init=True,
                                     inputs=("input_ids", "attention_mask", "labels"))
    assert graph.outputs == ["loss", "logits"] and maseir.check(graph) == []
    model = reference_model(folders["llama"], "causal-lm")
    lowered, runner = maseir.to_torch(graph), maseir.ort_session(graph)
    for batch, seq in [(1, 2), (2, 16), (5, 37)]:
        ids, mask = text_inputs(batch, seq)
        labels = ids.masked_fill(mask == 0, -100)  # no loss on the padding
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask, labels=labels)
            loss, logits = lowered(ids, mask, labels)
        ort_loss, ort_logits = runner(ids, mask, labels)
        for got_loss, got_logits in ((loss.numpy(), logits.numpy()), (ort_loss, ort_logits)):
            assert abs(float(got_loss) - float(expected.loss)) <= TOLERANCE
            assert np.abs(got_logits - expected.logits.numpy()).max() <= TOLERANCE


# --- export never shows torch's internals -------------------------------------------------------------
def test_llama_with_its_default_cache_exports_through_the_python_api():
    """Case 3: LlamaConfig has use_cache=True; torch.export would meet a DynamicCache in the output."""
    from transformers import LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config()).eval()
    assert model.config.use_cache
    ids, mask = text_inputs(2, 8)
    graph = maseir.export(model, {"input_ids": ids, "attention_mask": mask},
                          dynamic_dims={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}})
    assert graph.outputs == ["logits"] and model.config.use_cache
    ids, mask = text_inputs(3, 13)
    with torch.no_grad():
        assert (maseir.to_torch(graph)(ids, mask) - model(input_ids=ids, attention_mask=mask).logits).abs().max() \
            <= TOLERANCE


class MakesACache(torch.nn.Module):
    def forward(self, x):
        from transformers import DynamicCache
        return x * 2, DynamicCache()


class ReturnsAnObject(torch.nn.Module):
    class Result:
        def __init__(self, value):
            self.value = value

    def forward(self, x):
        return self.Result(x * 2)


class BranchesOnValues(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


@pytest.mark.parametrize("module,cause,words", [
    (MakesACache(), "kv_cache", "returns a key/value cache (DynamicCache)"),
    (ReturnsAnObject(), "output_type", "returns a Result, which is not a tensor"),
    (BranchesOnValues(), "data_dependent", "branches on the values of a tensor (File"),
])
def test_torch_export_internals_are_said_as_what_to_change(module, cause, words):
    with pytest.raises(MaseIRError) as info:
        maseir.export(module, (torch.randn(2, 3),))
    message = str(info.value)
    assert info.value.cause == cause and words in message, message
    assert "\n" not in message and "pytree" not in message and "guard" not in message
    assert info.value.__cause__ is not None  # torch.export's own words stay for --debug


def test_export_refuses_a_task_the_config_has_no_head_for(folders, tmp_path, capsys):
    assert main(["export", str(folders["vit"]), "--random-init", "-o", str(tmp_path / "v.mir")]) == 2
    assert "no sequence-classification model for model_type 'vit'" in capsys.readouterr().err
    with pytest.raises(MaseIRError, match="takes no token_type_ids"):
        maseir.export_pretrained(str(folders["llama"]), task="causal-lm", random_init=True,
                                 inputs=("input_ids", "token_type_ids"))
    with pytest.raises(MaseIRError, match="--inputs must include pixel_values"):
        maseir.export_pretrained(str(folders["vit"]), task="image-classification", random_init=True,
                                 inputs=("input_ids",))
    with pytest.raises(MaseIRError, match="--num-labels is for the classification tasks"):
        maseir.export_pretrained(str(folders["llama"]), task="causal-lm", num_labels=3, random_init=True)


# --- to_torch checks its inputs (case 6) ------------------------------------------------------------
def test_another_image_size_names_the_input_and_the_type(exported):
    graph, _, _ = exported("vit", "image-classification")
    lowered = maseir.to_torch(graph)
    with pytest.raises(InputError) as info:
        lowered(torch.randn(2, 3, 37, 37))
    assert str(info.value) == ("input pixel_values: expected float32[batch, 3, 32, 32], got float32[2, 3, 37, 37] "
                               "(axis 2 is 37, not 32: the graph was exported with that size fixed)")
    with pytest.raises(InputError, match=r"got float32\[3, 32, 32\] \(rank 3, not 4\)"):
        lowered(torch.randn(3, 32, 32))
    with pytest.raises(InputError, match=r"got float64\[2, 3, 32, 32\] \(dtype float64, not float32\)"):
        lowered(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(InputError, match=r"expected a tensor float32\[batch, 3, 32, 32\], got list"):
        lowered([1.0])
    assert lowered(torch.randn(4, 3, 32, 32)).shape == (4, 3)


def test_one_size_per_symbolic_dim_across_inputs(exported):
    graph, _, _ = exported("roberta", "sequence-classification")
    lowered = maseir.to_torch(graph)
    ids, mask = text_inputs(3, 9)
    with pytest.raises(InputError, match=r"^input attention_mask: expected int64\[batch, seq\], got int64\[3, 8\] "
                                         r"\(seq is 8 here but 9 in input_ids\)$"):
        lowered(ids, mask[:, :8])
    with pytest.raises(InputError, match=r"dtype int32, not int64"):
        lowered(ids.int(), mask)
