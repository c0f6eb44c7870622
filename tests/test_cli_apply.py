"""maseir apply / passes / diff through the command line."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import maseir
from maseir.cli.main import main
from maseir.errors import MaseIRError
from maseir.passes import REGISTRY, PassSpec

LAB0 = "# Tutorial 1: find the dropout nodes, then drop them for inference\ncount dropout\nremove dropout\ncount dropout\n"


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "maseir.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))


@pytest.fixture()
def files(tmp_path, tiny_bert):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "bert.mir")
    (tmp_path / "lab0.pass").write_text(LAB0)
    return tmp_path


def test_apply_lab0_writes_the_output_and_keeps_the_input(files):
    before = (files / "bert.mir").read_bytes()
    result = run("apply", "lab0.pass", "bert.mir", "-o", "nodrop.mir", cwd=files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[1] count dropout   dropout: 6",
        "[2] remove dropout  removed 6 nodes; set dropout_p=0 in 2 attention nodes",
        "[3] count dropout   dropout: 0",
        "wrote nodrop.mir"]
    assert (files / "bert.mir").read_bytes() == before
    out = maseir.load(files / "nodrop.mir")
    assert [h.step for h in out.history] == ["count dropout", "remove dropout", "count dropout"]
    shown = run("show", "nodrop.mir", cwd=files).stdout
    assert "history 2: remove dropout" in shown
    assert sorted(os.listdir(files)) == ["bert.mir", "lab0.pass", "nodrop.mir"]


def test_inline_analysis_needs_no_output(files):
    result = run("apply", "-e", "count linear", "-e", "report", "bert.mir", cwd=files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[1] count linear  linear: 14\n[2] report")
    assert sorted(os.listdir(files)) == ["bert.mir", "lab0.pass"]


def test_json_reports(files):
    result = run("apply", "lab0.pass", "bert.mir", "-o", "out.mir", "--json", cwd=files)
    data = json.loads(result.stdout)
    assert [s["report"] for s in data["steps"]] == [{"dropout": 6}, {"removed": 6, "attention_dropout_zeroed": 2},
                                                    {"dropout": 0}]
    assert [s["changed"] for s in data["steps"]] == [False, True, False]


@pytest.mark.parametrize("args,fragment", [
    (["apply", "-e", "remove dropout", "bert.mir"], "changes the graph; give -o OUT"),
    (["apply", "lab0.pass", "bert.mir", "-o", "bert.mir"], "must not be an input file"),
    (["apply", "missing.pass", "bert.mir", "-o", "o.mir"], "missing.pass: no such pipeline file"),
    (["apply", "lab0.pass", "missing.mir", "-o", "o.mir"], "missing.mir: no such file"),
])
def test_apply_user_errors_are_one_line(files, args, fragment):
    result = run(*args, cwd=files)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("maseir: error: ")
    assert fragment in result.stderr
    assert not (files / "o.mir").exists()


def test_pipeline_errors_show_the_line_and_a_caret(files):
    (files / "bad.pass").write_text("count dropout\nremove linear\n")
    result = run("apply", "bad.pass", "bert.mir", "-o", "o.mir", cwd=files)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "maseir: error: bad.pass:2:8: remove linear: linear is not an identity at inference, so removing it "
        "would change the outputs; removable: dropout",
        "  remove linear",
        "         ^"]


def test_failure_in_step_two_leaves_no_output(tmp_path, capsys):
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1)).eval()
    maseir.save(maseir.export(model, (torch.randn(2, 3),)), tmp_path / "m.mir")

    def explode(graph, args):
        raise MaseIRError("nothing to fold here")

    REGISTRY["explode"] = PassSpec("explode", explode, "always fails")
    try:
        code = main(["apply", "-e", "remove dropout", "-e", "explode", str(tmp_path / "m.mir"),
                     "-o", str(tmp_path / "out.mir")])
    finally:
        del REGISTRY["explode"]
    assert code == 2
    assert "step 2 (2: explode): nothing to fold here" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["m.mir"]


def test_passes_lists_every_pass(files):
    text = run("passes", cwd=files).stdout
    assert "count [OP]" in text and "remove dropout" in text and "report" in text
    listed = json.loads(run("passes", "--json", cwd=files).stdout)
    assert {p["pass"] for p in listed} == set(REGISTRY)


def test_diff_exit_codes(files):
    run("apply", "-e", "remove dropout", "bert.mir", "-o", "nodrop.mir", cwd=files)
    same = run("diff", "bert.mir", "bert.mir", cwd=files)
    assert same.returncode == 0 and same.stdout == "same\n"
    different = run("diff", "bert.mir", "nodrop.mir", cwd=files)
    assert different.returncode == 1
    assert different.stdout.count("\n- node ") == 6
    data = json.loads(run("diff", "bert.mir", "nodrop.mir", "--json", cwd=files).stdout)
    assert data["same"] is False and len(data["nodes_removed"]) == 6
    assert run("diff", "bert.mir", "missing.mir", cwd=files).returncode == 2


def test_output_may_not_be_the_inputs_external_data(tmp_path, tiny_bert):
    _, graph = tiny_bert
    maseir.save(graph, tmp_path / "e.mir", external_data_threshold=1024)
    before = (tmp_path / "e.mir.data").read_bytes()
    result = run("apply", "-e", "count dropout", "e.mir", "-o", "e.mir.data", cwd=tmp_path)
    assert result.returncode == 2 and "must not be an input file or its data" in result.stderr
    assert (tmp_path / "e.mir.data").read_bytes() == before


def test_commands_refuse_a_malformed_graph(tmp_path, tiny_bert, capsys):
    _, graph = tiny_bert
    bad = graph.copy()
    bad.nodes[3].inputs[0] = "nowhere"
    maseir.save(bad, tmp_path / "bad.mir")
    for args in (["apply", "-e", "count", str(tmp_path / "bad.mir")],
                 ["lower", str(tmp_path / "bad.mir"), "--to", "onnx", "-o", str(tmp_path / "bad.onnx")],
                 ["bench", str(tmp_path / "bad.mir"), "--repeats", "1"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "invalid graph" in err and "nowhere" in err
    assert not (tmp_path / "bad.onnx").exists()
