"""Rewrite and analysis passes, one module per pass family, and their registry.

Importing this package registers every pass.
"""

from . import analysis, dropout, finetune, lora, prune, quantize  # noqa: F401  (registers the passes)
from .pipeline import PassError, StepOutcome, changes_graph, run_pipeline
from .registry import REGISTRY, ArgSpec, PassResult, PassSpec, StepArgs, register, validate

__all__ = ["REGISTRY", "ArgSpec", "PassError", "PassResult", "PassSpec", "StepArgs", "StepOutcome",
           "changes_graph", "register", "run_pipeline", "validate"]
