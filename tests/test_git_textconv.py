"""`git diff` of a .mir with external data, through the textconv set-up the
README documents: git hands `maseir show` temporary copies without the .data
file, and the diff must still show what changed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

import maseir
from maseir.dsl import parse
from maseir.passes import run_pipeline


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_diff_of_a_mir_with_external_data(tmp_path):
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.1), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3)).eval()
    graph = maseir.export(mlp, (torch.randn(2, 4),))
    maseir.save(graph, tmp_path / "m.mir", external_data_threshold=1)

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=True)
    git("init", "-q")
    (tmp_path / ".gitattributes").write_text("*.mir diff=maseir\n")
    git("config", "diff.maseir.textconv", f"{sys.executable} -m maseir.cli.main show")
    git("add", "-A")
    git("commit", "-qm", "model")
    out, _ = run_pipeline(graph, parse("remove dropout"))
    maseir.save(out, tmp_path / "m.mir", external_data_threshold=1)
    result = git("diff", "--", "m.mir")
    removed = [line for line in result.stdout.splitlines() if line.startswith("-node")]
    added = [line for line in result.stdout.splitlines() if line.startswith("+history")]
    assert "note:" not in result.stdout and "structure alone" in result.stderr  # said once, beside the diff
    assert any("= dropout(" in line for line in removed) and len(removed) == 2, result.stdout
    assert added == ["+history 1: remove dropout  " + out.history[0].input_digest[:12] + " -> "
                     + out.history[0].output_digest[:12]]
