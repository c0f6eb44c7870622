"""maseir.evaluate and ``maseir eval``: both runtimes agree, the figures are what they say, bad input is one line."""

import json
import os

import numpy as np
import pytest
import torch

import maseir
from maseir.cli.main import main
from maseir.errors import MaseIRError
from maseir.evaluate import bits_per_weight, evaluate, format_bits_per_weight, macro_f1, weight_params
from maseir.ir import NumberFormat, Tensor, TensorType
from textmodels import reviews, tiny_text_bert, write_rows


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a tiny text classifier (bert.mir) and a 70-review csv."""
    folder = tmp_path_factory.mktemp("eval")
    graph = tiny_text_bert(folder / "model")
    maseir.save(graph, folder / "bert.mir")
    write_rows(folder / "reviews.csv", [{"text": t, "label": y} for t, y in reviews(70)])
    return folder


@pytest.fixture(scope="module")
def graph(work):
    return maseir.load(work / "bert.mir")


def test_runtimes_agree_on_logits_and_predictions(graph, work):
    results = {runtime: evaluate(graph, str(work / "reviews.csv"), batch_size=16, seq_len=12, runtime=runtime,
                                 threads=1, return_logits=True)
               for runtime in ("onnxruntime", "torch")}
    ort, pt = results["onnxruntime"], results["torch"]
    assert ort["logits"].shape == (70, 2) and ort["logits"].dtype == np.float32
    assert np.abs(ort["logits"] - pt["logits"]).max() <= 1e-4
    assert ort["predictions"] == pt["predictions"] and ort["accuracy"] == pt["accuracy"]
    assert ort["label_ids"] == [y for _, y in reviews(70)]
    assert ort["batches"] == 5 and ort["examples"] == 70 and ort["split"] == "train"


def test_figures_follow_from_the_logits(graph, work):
    r = evaluate(graph, str(work / "reviews.csv"), batch_size=32, seq_len=16, return_logits=True)
    predictions = r["logits"].argmax(1)
    labels = np.array(r["label_ids"])
    assert r["accuracy"] == pytest.approx(float((predictions == labels).mean()))
    assert r["macro_f1"] == pytest.approx(macro_f1(labels.tolist(), predictions.tolist()))
    assert r["label_counts"] == {"0": 35, "1": 35}
    assert r["latency_ms"]["median"] > 0 and r["latency_ms"]["p90"] >= r["latency_ms"]["median"]
    assert r["throughput"] > 0 and r["parameters"] == graph.param_count() and r["file_bytes"] is None
    assert r["bits_per_weight"] == 32.0 and r["source"].endswith("reviews.csv (csv file)")
    # the logits are the model's: the same as running the lowered module on the encoded batches
    from maseir.data import Encoder
    module = maseir.to_torch(graph)
    expected = []
    for batch in Encoder(graph, 16).batches([t for t, _ in reviews(70)], 32):
        with torch.no_grad():
            expected.append(module(*(torch.from_numpy(batch[v.name]) for v in graph.inputs)).numpy())
    assert np.abs(np.concatenate(expected) - r["logits"]).max() <= 1e-4


def test_limit_and_threads_and_digest(graph, work):
    before = torch.get_num_threads()
    r = evaluate(graph, str(work / "reviews.csv"), limit=10, batch_size=4, seq_len=16, runtime="torch", threads=1)
    assert r["examples"] == 10 and r["split_size"] == 70 and r["batches"] == 3 and r["threads"] == 1
    assert torch.get_num_threads() == before  # the thread count is put back
    again = evaluate(graph, str(work / "reviews.csv"), limit=10, batch_size=4, seq_len=16)
    assert again["digest"] == r["digest"] and json.dumps(again)  # plain JSON values


def test_maseir_evaluate_stays_the_function(graph, work):
    import maseir.cli.eval  # noqa: F401  (imports the module maseir.evaluate too)
    from maseir.evaluate import evaluate as function
    for _ in range(2):
        assert maseir.evaluate is function
        assert maseir.evaluate(graph, str(work / "reviews.csv"), limit=3, seq_len=8)["examples"] == 3


def test_graph_with_a_loss_output(tmp_path):
    graph = tiny_text_bert(tmp_path / "m", inputs=("input_ids", "attention_mask", "labels"))
    path = write_rows(tmp_path / "r.jsonl", [{"text": t, "label": y} for t, y in reviews(9)])
    a = evaluate(graph, str(path), seq_len=16, return_logits=True)
    b = evaluate(graph, str(path), seq_len=16, runtime="torch", return_logits=True)
    assert a["logits"].shape == (9, 2) and np.abs(a["logits"] - b["logits"]).max() <= 1e-4


def test_macro_f1_by_hand():
    # class 0: tp 1, fp 0, fn 1 -> 2/3; class 1: tp 2, fp 1, fn 0 -> 4/5
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert macro_f1([1, 1], [1, 1]) == 1.0
    assert macro_f1([0, 1, 0, 1], [1, 1, 1, 1]) == pytest.approx((0 + 2 / 3) / 2)  # a class never predicted


def test_bits_per_weight_come_from_the_stored_bytes(graph):
    names = weight_params(graph)
    assert "bert.embeddings.position_ids" not in names and bits_per_weight(graph) == 32.0
    half = graph.copy()
    name = "bert.embeddings.word_embeddings.weight"
    old = half.params[name]
    values = np.frombuffer(old.data, dtype=np.float32).astype(np.float16)
    half.params[name] = Tensor(name, TensorType("float16", old.type.shape, NumberFormat("float16")),
                               values.tobytes())
    total = sum(half.params[n].type.numel() for n in names)
    n16 = old.type.numel()
    assert bits_per_weight(half) == pytest.approx((16 * n16 + 32 * (total - n16)) / total)
    from maseir import tensors
    for width, stored in ((8, 8), (4, 4), (12, 16)):  # fixed point stores its codes: int8, int4 packed, int16
        fixed = graph.copy()
        fixed.params[name] = tensors.to_ir(name, tensors.to_torch(old), True, NumberFormat("fixed", width, 4))
        assert bits_per_weight(fixed) == pytest.approx((stored * n16 + 32 * (total - n16)) / total)
        assert format_bits_per_weight(fixed) == pytest.approx((width * n16 + 32 * (total - n16)) / total)


def test_errors_come_before_any_work(graph, work, tiny_bert, monkeypatch, tmp_path):
    import maseir.runtime

    def no_session(*args, **kwargs):
        raise AssertionError("a session was built before the input was checked")
    monkeypatch.setattr(maseir.runtime, "ort_session", no_session)
    three = write_rows(tmp_path / "three.csv", [{"text": t, "label": y} for t, y in reviews(9, num_labels=3)])
    with pytest.raises(MaseIRError, match="labels 2 do not fit the model's 2-class head"):
        evaluate(graph, str(three))
    with pytest.raises(MaseIRError, match="the graph has no tokenizer"):
        evaluate(tiny_bert[1], str(work / "reviews.csv"))
    with pytest.raises(MaseIRError, match="unknown runtime 'tensorrt'"):
        evaluate(graph, str(work / "reviews.csv"), runtime="tensorrt")
    with pytest.raises(MaseIRError, match="batch size must be at least 1"):
        evaluate(graph, str(work / "reviews.csv"), batch_size=0)


def test_a_model_that_cannot_run_a_batch_says_which(graph, work):
    with pytest.raises(MaseIRError, match=r"cannot run batch 0 \(2x100 tokens\) with torch"):
        # position embeddings hold 64 positions; these texts are 100 tokens long
        long = write_rows(work / "long.csv", [{"text": "good " * 200, "label": 1}] * 2)
        evaluate(graph, str(long), seq_len=100, runtime="torch")


def test_progress_bar_only_when_asked_or_on_a_terminal(graph, work, capsys):
    evaluate(graph, str(work / "reviews.csv"), seq_len=16, progress=True)
    assert "eval" in capsys.readouterr().err
    evaluate(graph, str(work / "reviews.csv"), seq_len=16)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


# --- the command ---------------------------------------------------------------------
def test_eval_command_text_and_json(work, capsys):
    mir, csv = str(work / "bert.mir"), str(work / "reviews.csv")
    assert main(["eval", mir, "--dataset", csv, "--seq-len", "16", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{mir} on {csv} (csv file)"
    assert out[1] == "  train split: 70 examples (labels 0: 35, 1: 35)"
    assert out[2].startswith("  accuracy ") and "macro-F1" in out[2]
    assert "onnxruntime" in out[3] and "batch 8, seq-len 16" in out[3] and "examples/s" in out[3]
    assert out[4].endswith("32.00 bits per weight") and "MB" in out[4]
    assert main(["eval", mir, "--dataset", csv, "--runtime", "torch", "--limit", "5", "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runtime"] == "torch" and result["examples"] == 5 and result["model"] == mir
    assert result["file_bytes"] == os.path.getsize(mir) and result["threads"] == 1


def error_of(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("maseir: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def test_eval_bad_input_is_one_line_and_writes_nothing(work, tmp_path, capsys, monkeypatch):
    import shutil
    shutil.copy(work / "bert.mir", tmp_path / "bert.mir")
    write_rows(tmp_path / "cols.csv", [{"review": t, "stars": y} for t, y in reviews(4)])
    write_rows(tmp_path / "three.csv", [{"text": t, "label": y} for t, y in reviews(6, num_labels=3)])
    write_rows(tmp_path / "names.csv", [{"text": "a", "label": "positive"}, {"text": "b", "label": "meh"}])
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert "unknown dataset 'imbd'; use one of imdb, rotten_tomatoes, hf:NAME[:CONFIG]" in \
        error_of(capsys, "eval", "bert.mir", "--dataset", "imbd")
    assert "cols.csv: no column 'text', 'label' (columns: review, stars)" in \
        error_of(capsys, "eval", "bert.mir", "--dataset", "cols.csv")
    assert "labels 2 do not fit the model's 2-class head (labels: LABEL_0, LABEL_1; ids 0..1)" in \
        error_of(capsys, "eval", "bert.mir", "--dataset", "three.csv")
    assert "labels 'meh', 'positive' do not fit" in error_of(capsys, "eval", "bert.mir", "--dataset", "names.csv")
    assert "dataset imdb has no split 'dev'; splits: train, test" in \
        error_of(capsys, "eval", "bert.mir", "--split", "dev")
    assert "missing.mir" in error_of(capsys, "eval", "missing.mir")
    assert "seq-len must be at least 2" in error_of(capsys, "eval", "bert.mir", "--seq-len", "1")
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.slow
def test_minilm_on_real_imdb_reviews_in_both_runtimes(tmp_path):
    graph = maseir.export_pretrained("minilm")
    maseir.save(graph, tmp_path / "minilm.mir")
    results = {runtime: evaluate(graph, "imdb", "test", limit=200, runtime=runtime, threads=2,
                                 path=tmp_path / "minilm.mir", return_logits=True)
               for runtime in ("onnxruntime", "torch")}
    ort, pt = results["onnxruntime"], results["torch"]
    assert ort["examples"] == 200 and ort["split"] == "test" and ort["seq_len"] == 128
    assert np.abs(ort["logits"] - pt["logits"]).max() <= 1e-4 and ort["predictions"] == pt["predictions"]
    assert ort["label_counts"] == {"0": 105, "1": 95}
    assert 0 <= ort["accuracy"] <= 1 and ort["bits_per_weight"] == 32.0
    assert ort["file_bytes"] == os.path.getsize(tmp_path / "minilm.mir")
    assert ort["parameters"] == graph.param_count() > 22_000_000
