"""Activation ranges recorded in the graph by ``calibrate`` and read by ``quantize``.

A range is stored as annotations of the node that computes the value
(``calibration.min``, ``calibration.max``, ``calibration.method``,
``calibration.samples``; spec/format.md); a graph input, which no node
computes, has its range in the graph's metadata under
``calibration.input.<name>`` (a JSON object of the same four fields). So the
ranges travel with the file and a later ``quantize frac=auto`` needs
nothing else.
"""

from __future__ import annotations

import json

from ...ir import Graph, Node

MIN, MAX = "calibration.min", "calibration.max"
METHOD, SAMPLES = "calibration.method", "calibration.samples"
INPUT = "calibration.input."


def recorded_range(graph: Graph, value: str, producers: dict[str, Node] | None = None) -> tuple[float, float] | None:
    """(min, max) that ``calibrate`` recorded for ``value``, or None."""
    producers = producers if producers is not None else graph.producers()
    node = producers.get(value)
    if node is None:
        stored = graph.metadata.get(INPUT + value)
        if stored is None:
            return None
        entry = json.loads(stored)
        return float(entry["min"]), float(entry["max"])
    if MIN not in node.annotations or len(node.outputs) != 1:
        return None
    return float(node.annotations[MIN]), float(node.annotations[MAX])


def record_input(graph: Graph, name: str, low: float, high: float, method: str, samples: int) -> None:
    """Store the range of graph input ``name`` in the graph's metadata."""
    graph.metadata[INPUT + name] = json.dumps({"min": repr(float(low)), "max": repr(float(high)),
                                               "method": method, "samples": samples}, sort_keys=True)


def record(node: Node, low: float, high: float, method: str, samples: int) -> None:
    """Store a range on ``node`` (its single output's): floats as repr, so they read back exactly."""
    node.annotations.update({MIN: repr(float(low)), MAX: repr(float(high)), METHOD: method, SAMPLES: str(samples)})
