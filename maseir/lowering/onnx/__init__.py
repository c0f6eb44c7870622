"""Mase IR -> ONNX.

``to_onnx(graph)`` gives an ``onnx.ModelProto`` (opset 21 by default, 17 and up on request) that
computes what ``to_torch(graph)`` computes in eval mode, and ``save_onnx``
writes one atomically, with weights in an external data file next to it for
large models. ONNX Runtime runs the result (``maseir.runtime``).

Every registry op has one ONNX rule here, registered with ``@onnx_rule(name)``
into the op's ``onnx`` slot, so ``maseir.ops`` never imports onnx; importing
this package registers them all.

- ``context``: registration, the per-graph ``Lowering`` and the per-node
  ``RuleContext`` rules work through, helpers shared by the rules;
- ``model``: ``build``, ``to_onnx`` and ``save_onnx`` (the ModelProto, external data);
- ``formats``: number formats (``@format_rule(kind)``);
- ``layers``, ``elementwise``, ``shapes``, ``spatial`` (padding, resampling,
  transposed convolution), ``recurrent`` (LSTM, GRU): the op rules, by family.
"""

from __future__ import annotations

from . import elementwise, formats, layers, recurrent, shapes, spatial  # noqa: F401  (register the rules)
from .context import (FORMAT_RULES, ONNX_DTYPES, Lowering, RuleContext, format_rule, needs_format, onnx_rule,
                      value_info)
from .model import DEFAULT_OPSET, MIN_OPSET, build, check_opset, save_onnx, to_onnx

__all__ = ["DEFAULT_OPSET", "FORMAT_RULES", "Lowering", "MIN_OPSET", "RuleContext", "build", "check_opset",
           "format_rule", "needs_format",
           "onnx_rule", "save_onnx", "to_onnx", "value_info"]
