"""Running a validated pipeline over a graph.

Every step runs out of place; the runner checks that the pass left its input
untouched (by digest) and appends a history entry (canonical step text,
input and output digests) to the result, so every .mir records how it was
made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..dsl import Pipeline, print_step
from ..errors import MaseIRError
from ..ir import Graph, HistoryEntry
from ..serialize import digest
from .registry import BoundStep, PassResult, validate


class PassError(MaseIRError):
    """A step failed while running (its pass explains why)."""


@dataclass
class StepOutcome:
    """What one step did: its canonical text, report, summary and digests."""

    index: int
    step: str
    summary: str
    report: dict
    changed: bool
    input_digest: str
    output_digest: str


def run_pipeline(graph: Graph, pipeline: Pipeline, *, seed: int = 0,
                 on_step: Callable[[StepOutcome], None] | None = None) -> tuple[Graph, list[StepOutcome]]:
    """Validate ``pipeline`` whole, then run its steps over ``graph``.

    Returns the final graph and one outcome per step; ``graph`` itself is
    never modified. ``on_step`` is called after each step (for progress).
    """
    from ..io import producer
    bound = validate(pipeline, seed)
    outcomes = []
    current = graph
    current_digest = digest(current)
    for index, step in enumerate(bound, 1):
        result = run_step(current, step, index, pipeline.source)
        if digest(current) != current_digest:
            raise RuntimeError(f"pass {step.spec.verb} modified its input graph (a bug in the pass)")
        out_digest = digest(result.graph)
        text = print_step(step.step)
        current = result.graph.copy()
        current.history.append(HistoryEntry(text, current_digest, out_digest, producer(),
                                            tuple(sorted((k, str(v)) for k, v in result.details.items()))))
        outcome = StepOutcome(index, text, result.summary, result.report, out_digest != current_digest,
                              current_digest, out_digest)
        outcomes.append(outcome)
        if on_step:
            on_step(outcome)
        current_digest = out_digest
    return current, outcomes


def run_step(graph: Graph, step: BoundStep, index: int, source: str = "<pipeline>") -> PassResult:
    """Run one validated step; a user error it raises becomes a PassError naming the
    pipeline's file, the step's line and column, its number and its text."""
    try:
        return step.spec.run(graph, step.args)
    except MaseIRError as exc:
        where = f"{source}:{step.step.line}:{step.step.column}: " if step.step.line else f"{source}: "
        raise PassError(f"{where}step {index} ({print_step(step.step)}): {exc}") from exc


def changes_graph(pipeline: Pipeline) -> bool:
    """Whether any step of the (validated) pipeline may change the graph."""
    return any(not b.spec.analysis for b in validate(pipeline))
