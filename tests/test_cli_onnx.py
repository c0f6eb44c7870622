"""maseir lower / import / bench: the commands, their JSON, and bad input as one-line errors (exit 2)."""

import json
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import maseir
from maseir.cli.main import main
from conftest import bert_inputs


@pytest.fixture
def mir(tiny_bert, tmp_path):
    _, graph = tiny_bert
    path = tmp_path / "bert.mir"
    maseir.save(graph, path)
    return path


def run_json(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def error_of(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("maseir: error: ") and err.count("\n") == 1, err
    return err


def test_lower_then_import_round_trips(mir, tmp_path, capsys):
    out = tmp_path / "bert.onnx"
    summary = run_json(capsys, "lower", str(mir), "--to", "onnx", "-o", str(out))
    assert summary["opset"] == 21 and summary["external_data"] is None
    onnx.checker.check_model(str(out), full_check=True)
    back = tmp_path / "back.mir"
    summary = run_json(capsys, "import", str(out), "-o", str(back))
    assert summary["dims"] == {"batch": "input_ids[0]", "seq": "input_ids[1]"}
    imported, original = maseir.load(back), maseir.load(mir)
    assert maseir.check(imported) == []
    ids, mask = bert_inputs(3, 11)
    with torch.no_grad():
        diff = maseir.to_torch(imported)(ids, mask) - maseir.to_torch(original)(ids, mask)
    assert diff.abs().max() <= 1e-5
    assert main(["lower", str(mir), "--to", "onnx", "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: ONNX opset 21")


def test_lower_with_external_data(mir, tmp_path, capsys):
    out = tmp_path / "bert.onnx"
    summary = run_json(capsys, "lower", str(mir), "--to", "onnx", "-o", str(out), "--external-data-threshold", "4096")
    assert summary["external_data"] == str(tmp_path / "bert.onnx.data")
    assert (tmp_path / "bert.onnx.data").stat().st_size > out.stat().st_size
    onnx.checker.check_model(str(out), full_check=True)


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_bench_reports_latency_and_throughput(mir, capsys, runtime):
    result = run_json(capsys, "bench", str(mir), "--runtime", runtime, "--batch", "2", "--seq-len", "16",
                      "--threads", "1", "--warmup", "1", "--repeats", "4")
    assert result["runtime"] == runtime and result["threads"] == 1 and result["repeats"] == 4
    assert 0 < result["p50_ms"] <= result["p90_ms"]
    assert result["samples_per_s"] > 0 and result["batch"] == 2 and result["seq_len"] == 16
    assert main(["bench", str(mir), "--runtime", runtime, "--repeats", "2", "--seq-len", "8"]) == 0
    text = capsys.readouterr().out
    assert "p50" in text and "p90" in text and "thread" in text and "samples/s" in text


def test_ort_session_is_built_once(mir):
    from maseir.runtime import bench, ort_session
    graph = maseir.load(mir)
    bench(graph, "onnxruntime", batch=1, seq_len=4, repeats=1, warmup=0, threads=1)
    runner = ort_session(graph, threads=1)
    bench(graph, "onnxruntime", batch=1, seq_len=4, repeats=1, warmup=0, threads=1)
    assert ort_session(graph, threads=1) is runner


# --- bad input ------------------------------------------------------------------------
def test_import_of_a_file_that_is_not_onnx(tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are not the weights you are looking for\n")
    assert "notes.onnx: not an ONNX model" in error_of(capsys, "import", str(bad), "-o", str(tmp_path / "x.mir"))
    assert not (tmp_path / "x.mir").exists()


def test_import_of_an_unsupported_op_lists_it(tmp_path, capsys):
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="pick_top")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.array([1], np.int64), "k")])
    path = tmp_path / "topk.onnx"
    onnx.save(helper.make_model(graph), str(path))
    err = error_of(capsys, "import", str(path), "-o", str(tmp_path / "x.mir"))
    assert "unsupported ONNX ops: TopK (nodes pick_top)" in err


def test_import_with_missing_external_data(tiny_bert, tmp_path, capsys):
    from maseir.lowering.onnx import save_onnx
    _, graph = tiny_bert
    save_onnx(graph, tmp_path / "b.onnx", external_data_threshold=1024)
    (tmp_path / "b.onnx.data").unlink()
    err = error_of(capsys, "import", str(tmp_path / "b.onnx"), "-o", str(tmp_path / "x.mir"))
    assert "b.onnx.data" in err and "missing" in err


def test_lower_and_bench_refuse_bad_paths(mir, tmp_path, capsys):
    assert "no such file" in error_of(capsys, "lower", str(tmp_path / "nope.mir"), "--to", "onnx",
                                      "-o", str(tmp_path / "x.onnx"))
    assert "does not exist" in error_of(capsys, "lower", str(mir), "--to", "onnx",
                                        "-o", str(tmp_path / "no" / "x.onnx"))
    assert "must not be an input file" in error_of(capsys, "lower", str(mir), "--to", "onnx", "-o", str(mir))
    text = tmp_path / "text.mir"
    text.write_text("not a model\n")
    assert "not a .mir" in error_of(capsys, "bench", str(text))  # --batch 0 etc.: tests/test_bench_cli.py


def test_errors_exit_2_from_the_command_line(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    command = [sys.executable, "-m", "maseir.cli.main", "import", str(bad), "-o", str(tmp_path / "y.mir")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("maseir: error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


# --- the acceptance run, on the real MiniLM ----------------------------------------------
@pytest.mark.slow
def test_minilm_export_lower_bench(tmp_path):
    cli = [sys.executable, "-m", "maseir.cli.main"]
    mir, out = tmp_path / "m.mir", tmp_path / "m.onnx"
    subprocess.run([*cli, "export", "minilm", "-o", str(mir)], check=True, capture_output=True)
    subprocess.run([*cli, "lower", str(mir), "--to", "onnx", "-o", str(out)], check=True, capture_output=True)
    onnx.checker.check_model(str(out), full_check=True)
    bench = subprocess.run([*cli, "bench", str(mir), "--runtime", "onnxruntime", "--repeats", "3", "--json"],
                           check=True, capture_output=True, text=True)
    assert json.loads(bench.stdout)["p50_ms"] > 0
    graph = maseir.load(mir)
    start = time.perf_counter()
    maseir.to_onnx(graph)
    assert time.perf_counter() - start < 1.0  # lowering MiniLM, weights in memory included
    runner, lowered = maseir.ort_session(graph), maseir.to_torch(graph)
    for batch, seq in [(1, 8), (4, 64), (2, 200)]:
        ids, mask = bert_inputs(batch, seq, vocab=30522)
        with torch.no_grad():
            expected = lowered(ids, mask).numpy()
        assert np.abs(runner(ids, mask) - expected).max() <= 1e-4


@pytest.mark.parametrize("args,fragment", [
    (["--seq-len", "1000"], "cannot run at batch 1, seq-len 1000"),
    (["--shape", "input_ids=1,1000"], "cannot run at batch 1, seq-len 1000 (input_ids [1,1000]; attention_mask"),
])
def test_bench_sizes_the_model_cannot_take_are_user_errors(mir, capsys, args, fragment):
    assert main(["bench", str(mir), "--repeats", "1", "--warmup", "0", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
