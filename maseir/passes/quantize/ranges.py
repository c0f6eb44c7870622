"""Activation ranges recorded in the graph by ``calibrate`` and read by ``quantize``.

A range is stored as annotations of the node that computes the value
(``calibration.min``, ``calibration.max``; spec/format.md), so it travels
with the file and a later ``quantize frac=auto`` needs nothing else.
"""

from __future__ import annotations

from ...ir import Graph, Node

MIN, MAX = "calibration.min", "calibration.max"
METHOD, SAMPLES = "calibration.method", "calibration.samples"


def recorded_range(graph: Graph, value: str, producers: dict[str, Node] | None = None) -> tuple[float, float] | None:
    """(min, max) that ``calibrate`` recorded for ``value``, or None."""
    producers = producers if producers is not None else graph.producers()
    node = producers.get(value)
    if node is None or MIN not in node.annotations or len(node.outputs) != 1:
        return None
    return float(node.annotations[MIN]), float(node.annotations[MAX])


def record(node: Node, low: float, high: float, method: str, samples: int) -> None:
    """Store a range on ``node`` (its single output's): floats as repr, so they read back exactly."""
    node.annotations.update({MIN: repr(float(low)), MAX: repr(float(high)), METHOD: method, SAMPLES: str(samples)})
