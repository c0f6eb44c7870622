"""``maseir export`` / ``export_pretrained`` of model folders as users have them: a fine-tuned
classifier keeps its own head and label names, a base model takes any head size, and a
folder that cannot give the model asked for is one error line (exit 2) that says why."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import maseir
from maseir.cli.main import main
from maseir.errors import ModelLoadError
from conftest import bert_inputs, tiny_bert_config

LABELS = {0: "negative", 1: "neutral", 2: "positive"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """save_pretrained folders: a 3-label classifier, a base model, a config alone, and broken ones."""
    from transformers import BertForSequenceClassification, BertModel

    root = tmp_path_factory.mktemp("pretrained")
    small = dict(hidden_size=32, intermediate_size=64, vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(0)
    classifier = BertForSequenceClassification(tiny_bert_config(
        **small, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})).eval()
    classifier.save_pretrained(root / "classifier")
    BertModel(tiny_bert_config(**small)).save_pretrained(root / "base")
    tiny_bert_config(**small).save_pretrained(root / "config-only")
    # A config that disagrees with its weights: 2 labels said, a 3-label head saved.
    shutil.copytree(root / "classifier", root / "inconsistent")
    config = json.loads((root / "inconsistent" / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "a", "1": "b"}, {"a": 0, "b": 1}
    (root / "inconsistent" / "config.json").write_text(json.dumps(config))
    shutil.copytree(root / "classifier", root / "truncated")
    weights = root / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4000])
    return root, classifier


def export_cli(args, capfd) -> tuple[int, str]:
    capfd.readouterr()
    code = main(["export", *map(str, args)])
    return code, capfd.readouterr().err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("maseir: error: "), err
    return lines[0]


def test_fine_tuned_classifier_exports_with_its_own_labels(folders, tmp_path, capfd):
    root, classifier = folders
    code, err = export_cli([root / "classifier", "-o", tmp_path / "c.mir"], capfd)
    assert code == 0, err
    graph = maseir.load(tmp_path / "c.mir")
    assert json.loads(graph.metadata["labels"]) == ["negative", "neutral", "positive"]
    ids, mask = bert_inputs(3, 10, vocab=100)
    with torch.no_grad():  # the trained head, not a fresh one
        assert torch.allclose(maseir.to_torch(graph)(ids, mask), classifier(input_ids=ids, attention_mask=mask).logits,
                              atol=1e-5)


def test_num_labels_equal_to_the_folders_is_accepted(folders):
    root, _ = folders
    graph = maseir.export_pretrained(str(root / "classifier"), num_labels=3)
    assert json.loads(graph.metadata["labels"]) == ["negative", "neutral", "positive"]


def test_other_num_labels_than_a_trained_head_is_one_error_line(folders, tmp_path, capfd):
    root, _ = folders
    code, err = export_cli([root / "classifier", "--num-labels", "5", "-o", tmp_path / "c.mir"], capfd)
    assert code == 2
    line = one_error_line(err)
    assert "3 labels (negative, neutral, positive)" in line and "--num-labels 5" in line
    assert not (tmp_path / "c.mir").exists()
    with pytest.raises(ModelLoadError, match="trained for 3 labels"):
        maseir.export_pretrained(str(root / "classifier"), num_labels=2)


def test_base_model_takes_any_num_labels(folders):
    root, _ = folders
    graph = maseir.export_pretrained(str(root / "base"), num_labels=5)
    assert json.loads(graph.metadata["labels"]) == [f"LABEL_{i}" for i in range(5)]
    ids, mask = bert_inputs(2, 7, vocab=100)
    assert maseir.to_torch(graph)(ids, mask).shape == (2, 5)
    assert json.loads(maseir.export_pretrained(str(root / "base")).metadata["labels"]) == ["LABEL_0", "LABEL_1"]


def test_config_only_folder_suggests_random_init(folders, tmp_path, capfd):
    root, _ = folders
    code, err = export_cli([root / "config-only", "-o", tmp_path / "c.mir"], capfd)
    assert code == 2
    line = one_error_line(err)
    assert "config-only" in line and "--random-init" in line
    code, err = export_cli([root / "config-only", "--random-init", "--num-labels", "4", "-o", tmp_path / "c.mir"],
                           capfd)
    assert code == 0, err
    assert len(json.loads(maseir.load(tmp_path / "c.mir").metadata["labels"])) == 4


@pytest.mark.parametrize("folder,expected", [
    ("inconsistent", "classifier.weight is [3, 32] in the weights, [2, 32] in the model"),
    ("truncated", "truncated or corrupt"),
])
def test_weights_that_do_not_fit_are_one_error_line(folders, tmp_path, capfd, folder, expected):
    root, _ = folders
    code, err = export_cli([root / folder, "-o", tmp_path / "c.mir"], capfd)
    assert code == 2
    line = one_error_line(err)
    assert folder in line and expected in line
