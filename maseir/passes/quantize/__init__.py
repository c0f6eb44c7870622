"""Fixed-point quantization: ``quantize`` (weights, biases and activations of the
selected ops) and ``calibrate`` (the activation ranges ``frac=auto`` reads).

The rounding rule of every format is maseir/formats.py; both lowerings and
the training loop (QAT) apply it from the formats stored in the graph.
"""

from . import calibrate, quantize  # noqa: F401  (registers the passes)
