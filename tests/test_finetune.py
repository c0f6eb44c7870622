"""`finetune`: it learns, is deterministic, trains only what is trainable, and
refuses what cannot be trained before any work."""

from __future__ import annotations

import pytest

import maseir
from maseir.dsl import DSLError, parse
from maseir.passes import PassError, run_pipeline
from maseir.passes.lora import ROLE
from maseir.serialize import digest

from textmodels import reviews, tiny_text_bert, write_rows


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    graph = tiny_text_bert(folder / "model")
    rows = [{"text": t, "label": y} for t, y in reviews(64)]
    data = write_rows(folder / "train.csv", rows)
    return graph, data, folder


def step(data, extra=""):
    return parse(f"finetune dataset={str(data)!r} epochs=8 lr=5e-4 batch=8 seq_len=16 {extra}\n".replace("'", '"'))


def test_finetune_lowers_the_loss_and_is_deterministic(text_model):
    graph, data, _ = text_model
    before = digest(graph)
    out, (outcome,) = run_pipeline(graph, step(data))
    again, _ = run_pipeline(graph, step(data))
    assert digest(graph) == before  # the input graph is untouched
    assert digest(out) == digest(again)  # same input, pipeline and seed: same weights
    report = outcome.report
    assert report["examples"] == 64 and report["steps"] == 8 * 8
    first, last = report["loss_curve"][0][1], report["loss_curve"][-1][1]
    assert last < first * 0.6, report["loss_curve"]
    assert maseir.check(out) == []
    entry = dict(out.history[-1].details)
    assert entry["examples"] == "64" and len(entry["examples_sha256"]) == 64 and entry["split"] == "train"
    other, _ = run_pipeline(graph, step(data, "seed=1"))
    assert digest(other) != digest(out)


def test_finetune_after_lora_changes_only_adapters_and_head(text_model):
    graph, data, _ = text_model
    pipeline = parse(f'lora rank=4 alpha=8\nfinetune dataset="{data}" epochs=1 lr=1e-3 batch=8 seq_len=16\n')
    out, _ = run_pipeline(graph, pipeline)
    adapted, _ = run_pipeline(graph, parse("lora rank=4 alpha=8\n"))
    changed = {name for name, t in out.params.items() if t.sha256 != adapted.params[name].sha256}
    adapters = {name for name, t in adapted.params.items() if t.annotations.get(ROLE) == "B"}
    assert changed, "nothing trained"
    assert all(adapted.params[n].trainable for n in changed)
    assert changed <= {n for n, t in adapted.params.items() if ROLE in t.annotations} | {"classifier.weight",
                                                                                         "classifier.bias"}
    assert adapters & changed  # B moved away from zero


def test_finetune_with_the_graphs_own_loss(tmp_path):
    graph = tiny_text_bert(tmp_path / "m", inputs=("input_ids", "attention_mask", "labels"))
    assert "loss" in graph.outputs
    data = write_rows(tmp_path / "d.jsonl", [{"text": t, "label": y} for t, y in reviews(32)])
    out, (outcome,) = run_pipeline(graph, step(data))
    assert outcome.report["loss_curve"][-1][1] < outcome.report["loss_curve"][0][1]


@pytest.mark.parametrize("text,fragment", [
    ('finetune dataset=nope', "unknown dataset"),
    ('finetune dataset="{missing_cols}"', "column"),
    ('finetune dataset="{three}"', "label"),
    ('finetune dataset="{data}" lr=-1', "out of range"),
    ('finetune dataset="{data}" split=test', "split"),
])
def test_bad_finetune_steps_fail_before_training(text_model, tmp_path, text, fragment, monkeypatch):
    graph, data, folder = text_model
    missing_cols = write_rows(tmp_path / "m.csv", [{"review": "good", "stars": 1}])
    three = write_rows(tmp_path / "three.csv", [{"text": t, "label": y} for t, y in reviews(9, num_labels=3)])
    import maseir.train
    monkeypatch.setattr(maseir.train, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises((DSLError, PassError)) as info:
        run_pipeline(graph, parse(text.format(data=data, missing_cols=missing_cols, three=three) + "\n", "f.pass"))
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_finetune_of_a_fully_frozen_graph_is_refused(text_model):
    graph, data, _ = text_model
    frozen = graph.copy()
    frozen.params = {n: t.replace(trainable=False) for n, t in graph.params.items()}
    with pytest.raises(PassError, match="no trainable params"):
        run_pipeline(frozen, step(data))


def test_finetune_needs_a_tokenizer(text_model):
    graph, data, _ = text_model
    bare = graph.copy()
    bare.tokenizer_json = b""
    with pytest.raises(PassError, match="no tokenizer"):
        run_pipeline(bare, step(data))
