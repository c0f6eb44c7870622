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
        "would change the outputs; remove takes: dropout",
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
    assert "-e:2:1: step 2 (explode): nothing to fold here" in capsys.readouterr().err
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


# --- reading the pipeline file (issue 7, cases 8 and 10) ------------------------------
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_pipelines_with_a_byte_order_mark_are_read(files, capsys, encoding):
    data = LAB0.encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    elif encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    (files / "bom.pass").write_bytes(data)
    assert main(["apply", str(files / "bom.pass"), str(files / "bert.mir"), "-o", str(files / "o.mir")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "[1] count dropout   dropout: 6"


def test_a_pipeline_that_is_not_utf8_names_the_line_and_byte(files, capsys):
    (files / "latin1.pass").write_bytes("count dropout\n# caf\u00e9\ncount\n".encode("latin-1"))
    assert main(["apply", str(files / "latin1.pass"), str(files / "bert.mir")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"maseir: error: {files / 'latin1.pass'}:2:6: byte 0xe9 at offset 19 is not UTF-8")
    assert err[1:] == ["  # caf\ufffd", "       ^"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n# another\n"])
@pytest.mark.parametrize("output", [[], ["-o", "o.mir"]])
def test_a_pipeline_without_steps_is_refused(files, text, output):
    (files / "empty.pass").write_text(text)
    result = run("apply", "empty.pass", "bert.mir", *output, cwd=files)
    assert result.returncode == 2
    assert result.stderr == "maseir: error: empty.pass: the pipeline has no steps (only blank lines and comments)\n"
    assert not (files / "o.mir").exists()


def test_inline_steps_without_a_step_are_refused(files, capsys):
    assert main(["apply", "-e", "# nothing", "-e", "", str(files / "bert.mir")]) == 2
    assert capsys.readouterr().err.startswith("maseir: error: -e: the pipeline has no steps")


def test_a_regex_argument_reaches_the_validator_with_its_place(files):
    (files / "rx.pass").write_text('count\ncount x="encoder\\.layer"\n')
    result = run("apply", "rx.pass", "bert.mir", cwd=files)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("maseir: error: rx.pass:2:7: count: unknown argument 'x'")


def test_a_long_bad_line_is_shown_as_a_window(files):
    (files / "long.pass").write_text("count dropout x=" + "x" * 80_000 + " $\n")
    result = run("apply", "long.pass", "bert.mir", cwd=files)
    assert result.returncode == 2
    assert len(result.stderr) < 400 and result.stderr.count("\n") == 3
    assert result.stderr.startswith("maseir: error: long.pass:1:80018: unexpected character '$'")


def test_apply_help_names_its_positionals_as_the_usage_does(files):
    out = run("apply", "--help", cwd=files).stdout
    assert "PIPELINE MODEL" in out.splitlines()[0]
    positionals = out.split("positional arguments:\n")[1].split("\n\n")[0]
    assert [line.split()[0] for line in positionals.splitlines() if line.startswith("  ") and
            not line.startswith("   ")] == ["PIPELINE", "MODEL"]
    assert "FILE" not in out


@pytest.mark.parametrize("args,fragment", [
    (["apply", "bert.mir"], "give a pipeline file and a model file"),
    (["apply", "-e", "count", "lab0.pass", "bert.mir"], "with -e, give only the model file"),
])
def test_apply_checks_how_many_files_it_got(files, args, fragment):
    result = run(*args, cwd=files)
    assert result.returncode == 2 and fragment in result.stderr


def test_the_pipeline_is_checked_before_the_model_is_read(files):
    (files / "bad.pass").write_text("count\ncount x=1\n")
    (files / "junk.mir").write_bytes(b"not a model")
    for output in ([], ["-o", "o.mir"]):
        result = run("apply", "bad.pass", "junk.mir", *output, cwd=files)
        assert result.returncode == 2
        assert result.stderr.startswith("maseir: error: bad.pass:2:7: count: unknown argument 'x'")
