"""Pruning: ``prune`` (unstructured, or whole neurons and attention heads) and
``compact`` (physically removes pruned neurons and heads).

A pruned param is annotated ``prune.*`` in the file and its pruned weights are
exactly zero: the zeros are the mask (spec/format.md), so ``finetune`` keeps
them at zero and ``io.save`` stores a mostly-zero tensor sparsely.
"""

from . import compact, prune  # noqa: F401  (registers the passes)
