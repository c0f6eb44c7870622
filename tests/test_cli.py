"""The ``maseir`` command, run as a real process (``python -m maseir.cli.main``)
and, where simpler, in process through ``maseir.cli.main.main``.

Each subprocess pays for importing torch (a few seconds), so every subprocess
run is started once, up front, in a small thread pool (``cli`` fixture); the
tests then wait for the run they look at. The in-process exports (``exports``
fixture) and the in-process tests overlap with them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import maseir
import maseir.io as mio
from maseir._proto import maseir_pb2 as pb
from maseir.cli.main import main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ERROR = "maseir: error: "
FLIPPED_TENSOR = "0.weight"


def run_cli(args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maseir.cli.main", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def tensor_offset(blob: bytes, name: str) -> int:
    """Absolute offset of an inline tensor's first byte."""
    _magic, _major, _minor, _flags, struct_len, _sha, _data_len = mio._HEADER.unpack_from(blob)
    model = pb.Model()
    model.ParseFromString(blob[64:64 + struct_len])
    data_start = (64 + struct_len + 63) // 64 * 64
    return data_start + next(t.location.offset for t in model.graph.params if t.name == name)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with a config-only tiny BERT, a small valid .mir and broken files."""
    import transformers

    work = tmp_path_factory.mktemp("cli")
    transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            vocab_size=100, max_position_embeddings=64).save_pretrained(work / "bert")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    maseir.save(maseir.export(mlp, (torch.randn(2, 4),)), work / "mlp.mir")
    blob = (work / "mlp.mir").read_bytes()
    flipped = bytearray(blob)
    flipped[tensor_offset(blob, FLIPPED_TENSOR) + 3] ^= 0x40
    (work / "flipped.mir").write_bytes(bytes(flipped))
    (work / "truncated.mir").write_bytes(blob[:len(blob) // 2])
    (work / "newer.mir").write_bytes(blob[:8] + struct.pack("<H", mio.FORMAT_MAJOR + 1) + blob[10:])
    (work / "random.mir").write_bytes(os.urandom(500))
    (work / "notes.txt").write_text("not a model\n")
    (work / "folder").mkdir()
    return work


# Bad inputs: (args, text the one error line must hold). Paths are relative to ``work``.
USER_ERRORS = {
    "show-missing": (["show", "missing.mir"], "missing.mir: no such file"),
    "check-missing": (["check", "missing.mir"], "missing.mir: no such file"),
    "show-folder": (["show", "folder"], "folder: is a directory"),
    "show-random-bytes": (["show", "random.mir"], "random.mir: not a .mir file"),
    "check-text-file": (["check", "notes.txt"], "notes.txt: not a .mir file"),
    "show-truncated": (["show", "truncated.mir"], "truncated.mir: truncated"),
    "check-truncated": (["check", "truncated.mir"], "truncated.mir: truncated"),
    # show reads the structure only (it never reads weights); diff and check read and verify them
    "diff-flipped-tensor": (["diff", "flipped.mir", "mlp.mir"], f"tensor {FLIPPED_TENSOR} does not match its sha256"),
    "show-newer-major": (["show", "newer.mir"], f"format version {mio.FORMAT_MAJOR + 1}.{mio.FORMAT_MINOR} is newer"),
    "check-newer-major": (["check", "newer.mir"], f"format version {mio.FORMAT_MAJOR + 1}.{mio.FORMAT_MINOR} is newer"),
}
EXPORT_ERRORS = {
    "export-missing-folder": (["export", "./no-such-model", "--random-init", "-o", "x.mir"], "no-such-model"),
    "export-hub-name-offline": (["export", "no-such-org/no-such-model", "-o", "x.mir"], "HF_HUB_OFFLINE=1"),
    "export-bogus-inputs": (["export", "bert", "--random-init", "--inputs", "bogus", "-o", "x.mir"],
                            "--inputs must include input_ids"),
    "export-file-not-folder": (["export", "notes.txt", "-o", "x.mir"], "notes.txt: not a folder"),
    "export-missing-output-folder": (["export", "bert", "--random-init", "-o", "nope/x.mir"],
                                     "nope/x.mir: folder"),
}
# Every case runs in process (cheap); these also run as real processes.
SUBPROCESS_ERRORS = ("diff-flipped-tensor", "export-missing-folder")
MIR = "seed0.mir"


class Runs:
    """Subprocess runs started at once, collected on demand."""

    def __init__(self, work: Path):
        self.work = work
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.futures: dict[str, Future] = {}

    def start(self, name: str, args, after: str | None = None) -> None:
        def job():
            if after:
                self.futures[after].result()
            return run_cli(args, self.work)
        self.futures[name] = self.pool.submit(job)

    def __getitem__(self, name: str) -> subprocess.CompletedProcess:
        return self.futures[name].result()


@pytest.fixture(scope="module")
def cli(work):
    runs = Runs(work)
    # The slow one first; the runs that read its file are queued last.
    runs.start("export", ["export", work / "bert", "--random-init", "--seed", "0", "-o", MIR])
    for name in SUBPROCESS_ERRORS:
        runs.start(name, {**USER_ERRORS, **EXPORT_ERRORS}[name][0])
    runs.start("show", ["show", MIR], after="export")
    runs.start("check", ["check", MIR], after="export")
    yield runs
    runs.pool.shutdown(wait=True, cancel_futures=True)


def in_process(args, work: Path, capfd, monkeypatch) -> subprocess.CompletedProcess:
    """``main(args)`` run in ``work``, as a CompletedProcess."""
    monkeypatch.chdir(work)
    capfd.readouterr()
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def error_lines(result) -> list[str]:
    """The stderr lines of a user error (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr.splitlines()


def assert_one_error_line(lines: list[str], expected: str) -> None:
    assert len(lines) == 1, lines
    assert lines[0].startswith(ERROR) and expected in lines[0], lines[0]


@pytest.fixture(scope="module")
def exports(cli, work) -> dict[str, tuple[int, Path, str]]:
    """In-process exports, made while the subprocess runs of ``cli`` go on:
    name -> (exit status, output file, stdout)."""
    torch.manual_seed(12345)  # the files must not depend on the global RNG state
    runs = {"again": ["--seed", "0"], "seed1": ["--seed", "1"],
            "labels": ["--inputs", "input_ids,attention_mask,labels", "--json"]}
    results = {}
    for name, extra in runs.items():
        path = work / f"{name}.mir"
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["export", str(work / "bert"), "--random-init", *extra, "-o", str(path)])
        assert code == 0, stderr.getvalue()
        results[name] = (code, path, stdout.getvalue())
    return results


# --- export in process ---------------------------------------------------------------------------
def test_export_with_labels_outputs_the_loss(exports):
    _, path, stdout = exports["labels"]
    summary = json.loads(stdout)
    graph = maseir.load(path)
    assert graph.outputs == ["loss", "logits"]
    assert [v.name for v in graph.inputs] == ["input_ids", "attention_mask", "labels"]
    assert summary["nodes"] == len(graph.nodes) and summary["output"] == str(path)
    assert summary["bytes"] == path.stat().st_size


def test_export_seed_is_recorded(exports):
    assert maseir.load(exports["seed1"][1]).metadata["seed"] == "1"
    assert maseir.load(exports["again"][1]).metadata["seed"] == "0"


# --- check in process ------------------------------------------------------------------------------
def test_check_lists_a_flipped_tensor(work, capfd, monkeypatch):
    result = in_process(["check", "flipped.mir"], work, capfd, monkeypatch)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"flipped.mir: param {FLIPPED_TENSOR}: bytes do not match the recorded sha256",
        "flipped.mir: 1 problem"]


def test_check_valid_and_json(work, capfd, monkeypatch):
    result = in_process(["check", "mlp.mir"], work, capfd, monkeypatch)
    assert result.returncode == 0 and result.stdout == "mlp.mir: ok (3 nodes, 4 params, 67 parameters)\n"
    result = in_process(["check", "--json", "flipped.mir"], work, capfd, monkeypatch)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["params"] == 4
    assert report["problems"] == [f"param {FLIPPED_TENSOR}: bytes do not match the recorded sha256"]


# --- user errors: exit 2, one line, no traceback ----------------------------------------------------
@pytest.mark.parametrize("case", USER_ERRORS)
def test_user_error(work, capfd, monkeypatch, case):
    args, expected = USER_ERRORS[case]
    result = in_process(args, work, capfd, monkeypatch)
    assert_one_error_line(error_lines(result), expected)
    assert result.stdout == ""


@pytest.mark.parametrize("case", EXPORT_ERRORS)
def test_export_user_error(work, capfd, monkeypatch, case):
    args, expected = EXPORT_ERRORS[case]
    result = in_process(args, work, capfd, monkeypatch)
    assert_one_error_line(error_lines(result), expected)
    assert not (work / "x.mir").exists()


def test_debug_shows_the_traceback(work, capfd, monkeypatch):
    result = in_process(["--debug", "diff", "flipped.mir", "mlp.mir"], work, capfd, monkeypatch)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr and "ChecksumError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"{ERROR}flipped.mir: tensor {FLIPPED_TENSOR} ")


@pytest.mark.parametrize("command", [[], ["export"], ["show"], ["check"]], ids=["maseir", "export", "show", "check"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(" ".join(["usage: maseir", *command]))
    if not command:
        assert all(name in out for name in ("export", "show", "check"))


# --- real processes (waits for the runs started by ``cli``) ------------------------------------------
def test_export_random_init(cli, work):
    result = cli["export"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith(f"wrote {MIR}: 90 nodes")
    graph = maseir.load(work / MIR)
    assert [v.name for v in graph.inputs] == ["input_ids", "attention_mask"]
    assert graph.outputs == ["logits"]
    assert graph.metadata["init"] == "random" and graph.metadata["seed"] == "0"


def test_export_same_seed_same_bytes(cli, work, exports):
    """The subprocess run and the in-process one (other RNG state) write the same bytes."""
    assert cli["export"].returncode == 0
    assert exports["again"][1].read_bytes() == (work / MIR).read_bytes()


def test_export_other_seed_other_bytes(cli, work, exports):
    assert cli["export"].returncode == 0
    assert exports["seed1"][1].read_bytes() != (work / MIR).read_bytes()


def test_show_one_line_per_node(cli, work):
    result = cli["show"]
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Traceback" not in result.stdout
    graph = maseir.load(work / MIR)
    node_lines = [line for line in result.stdout.splitlines() if line.startswith("node ")]
    assert len(node_lines) == len(graph.nodes) == 90
    assert result.stdout == maseir.show(graph)


def test_check_fresh_export_is_ok(cli, work):
    result = cli["check"]
    assert result.returncode == 0, result.stdout + result.stderr
    graph = maseir.load(work / MIR)
    assert result.stdout == (f"{MIR}: ok ({len(graph.nodes)} nodes, {len(graph.params)} params, "
                             f"{graph.param_count():,} parameters)\n")
    assert result.stderr == ""


@pytest.mark.parametrize("case", SUBPROCESS_ERRORS)
def test_user_error_subprocess(cli, case):
    if case in EXPORT_ERRORS:
        assert_one_error_line(error_lines(cli[case]), EXPORT_ERRORS[case][1])
    else:
        assert_one_error_line(error_lines(cli[case]), USER_ERRORS[case][1])
        assert cli[case].stdout == ""


def test_export_user_error_is_one_stderr_line(cli):
    assert_one_error_line(error_lines(cli["export-missing-folder"]), "no-such-model")
