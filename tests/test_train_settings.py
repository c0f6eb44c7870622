"""train() changes torch's process-wide settings only while it runs: threads,
deterministic algorithms and deterministic mode's memory fill come back as
they were, whatever they were."""

from __future__ import annotations

import pytest
import torch

from maseir.dsl import parse
from maseir.passes import run_pipeline

from textmodels import reviews, tiny_text_bert, write_rows


@pytest.mark.parametrize("threads, deterministic, fill", [(1, False, True), (2, True, False)])
def test_train_restores_torch_settings(tmp_path, threads, deterministic, fill):
    graph = tiny_text_bert(tmp_path / "model")
    data = write_rows(tmp_path / "train.csv", [{"text": t, "label": y} for t, y in reviews(8)])
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.utils.deterministic.fill_uninitialized_memory)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = fill
    try:
        run_pipeline(graph, parse(f'finetune dataset="{data}" batch=4 seq_len=16 threads=3\n'))
        assert torch.get_num_threads() == threads
        assert torch.are_deterministic_algorithms_enabled() == deterministic
        assert torch.utils.deterministic.fill_uninitialized_memory == fill
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]
