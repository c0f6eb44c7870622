"""Importer handlers for the recurrent layers LSTM and GRU.

An ONNX LSTM or GRU node is one layer (one or both directions); it becomes one
registry ``lstm`` or ``gru`` node (ATen's op, ``num_layers=1``) whose weights
are the initializers with their gate blocks put in ATen's order (LSTM: ONNX
i, o, f, c -> ATen i, f, g, o; GRU: ONNX z, r, h -> ATen r, z, n) and split
per direction, named as PyTorch names them (``<module>.weight_ih_l0``,
``..._reverse``; a module's second LSTM node is layer 1, as the legacy
exporter splits a multi-layer LSTM). ONNX's outputs are views of ATen's:
``Y (seq, dirs, batch, hidden)`` is ATen's ``(seq, batch, dirs * hidden)``
output reshaped, ``Y_h``/``Y_c`` are ``h_n``/``c_n``. A reverse-only layer
runs forward over the input flipped along the sequence.

What ATen's op cannot compute is refused: activations other than the
defaults, ``clip``, ``input_forget``, peepholes, per-example
``sequence_lens``, and GRU with ``linear_before_reset=0`` (PyTorch's GRU
resets after the hidden projection).
"""

from __future__ import annotations

import numpy as np

from ...ir import DType
from .handlers import handles
from .values import Const

# ATen's gate blocks as indices into ONNX's.
_ATEN_GATES = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2)}
_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}


class RecurrentOps:
    """Mixed into the importer: the ``_op_LSTM`` and ``_op_GRU`` handlers."""

    @handles("LSTM", ops=("lstm", "zeros", "flip", "transpose", "unsqueeze", "reshape"), since=7,
             takes="hidden_size, direction (forward, reverse, bidirectional), layout (opset 14), B, initial_h, "
                   "initial_c; constant W, R, B; not clip, input_forget, peepholes, other activations or "
                   "per-example sequence_lens")
    def _op_LSTM(self, node, ins, attrs):
        return self._recurrent("LSTM", node, ins, attrs)

    @handles("GRU", ops=("gru", "zeros", "flip", "transpose", "unsqueeze", "reshape"), since=7,
             takes="hidden_size, direction (forward, reverse, bidirectional), layout (opset 14), "
                   "linear_before_reset=1 (PyTorch's GRU), B, initial_h; constant W, R, B; not clip, other "
                   "activations or per-example sequence_lens")
    def _op_GRU(self, node, ins, attrs):
        if not attrs.get("linear_before_reset", 0):
            raise self._error("linear_before_reset=0 (the reset gate applied before the hidden projection); "
                              "ATen's GRU, like PyTorch's, applies it after (linear_before_reset=1)")
        return self._recurrent("GRU", node, ins, attrs)

    def _recurrent(self, kind: str, node, ins, attrs):
        ins = list(ins) + [None] * (8 - len(ins))
        x, w, r, b, lengths, h0 = ins[:6]
        c0, peepholes = (ins[6], ins[7]) if kind == "LSTM" else (None, None)
        self._check_recurrent(kind, attrs, lengths, peepholes, x)
        if not all(isinstance(v, Const) for v in (w, r) + ((b,) if b is not None else ())):
            raise self._error("its weights are computed at run time (W, R and B must be initializers)")
        direction = attrs.get("direction", "forward")
        batch_first = bool(attrs.get("layout", 0))
        dirs = w.array.shape[0]
        hidden = attrs.get("hidden_size", r.array.shape[-1])
        if dirs != (2 if direction == "bidirectional" else 1) or r.array.shape[-1] != hidden:
            raise self._error(f"weights of shape {list(w.array.shape)} do not fit direction={direction} and "
                              f"hidden_size={hidden}")
        params = self._recurrent_params(kind, w, r, b, hidden)
        shape = self.type_of(x).shape
        seq_axis, batch = (1, shape[0]) if batch_first else (0, shape[1])
        dtype = self.type_of(x).dtype
        states = []
        for state in (h0, c0)[:2 if kind == "LSTM" else 1]:
            if state is None:
                state = self.emit("zeros", [], {"size": (dirs, batch, hidden), "dtype": DType(dtype)})
            elif batch_first:  # ONNX's layout 1 states are (batch, dirs, hidden); ATen's always (dirs, batch, hidden)
                state = self.emit("transpose", [state], {"dim0": 0, "dim1": 1})
            states.append(state)
        if direction == "reverse":
            x = self.emit("flip", [x], {"dims": (seq_axis,)})
        wanted = list(node.output) + [""] * (3 - len(node.output))
        state_names = [wanted[i] if wanted[i] and not batch_first else None for i in (1, 2)][:len(states)]
        outs = self.emit_outputs(kind.lower(), [x, *states, *params],
                                 {"has_biases": b is not None, "num_layers": 1, "dropout": 0.0,
                                  "bidirectional": dirs == 2, "batch_first": batch_first},
                                 [None, *state_names])
        results = [self._recurrent_y(outs[0], wanted[0], dirs, hidden, seq_axis, direction == "reverse")
                   if wanted[0] else None]
        for i, (state, name) in enumerate(zip(outs[1:], wanted[1:]), start=1):
            if name and batch_first:
                state = self.emit("transpose", [state], {"dim0": 0, "dim1": 1}, out=name)
            results.append(state if name else None)
        return results

    def _check_recurrent(self, kind: str, attrs, lengths, peepholes, x) -> None:
        activations = [a.lower() for a in attrs.get("activations", [])]
        if activations and activations not in (_ACTIVATIONS[kind], _ACTIVATIONS[kind] * 2):
            raise self._error(f"activations {attrs['activations']} (ATen's {kind} has {_ACTIVATIONS[kind]})")
        for name in ("clip", "activation_alpha", "activation_beta"):
            if name in attrs:
                raise self._error(f"the {name} attribute")
        if attrs.get("input_forget"):
            raise self._error("input_forget=1 (coupled input and forget gates)")
        if peepholes is not None and not (isinstance(peepholes, Const) and not peepholes.array.any()):
            raise self._error("peephole weights P (ATen's LSTM has none)")
        if lengths is not None:
            seq = self.type_of(x).shape[1 if attrs.get("layout", 0) else 0]
            if not (isinstance(lengths, Const) and isinstance(seq, int) and (lengths.array == seq).all()):
                raise self._error("sequence_lens that may be shorter than the sequence (ATen's op has no "
                                  "per-example lengths)")

    def _recurrent_params(self, kind: str, w: Const, r: Const, b: Const | None, hidden: int) -> list[Const]:
        """ATen's params (w_ih, w_hh[, b_ih, b_hh] per direction) from ONNX's W, R, B."""
        order = _ATEN_GATES[kind]
        gates = len(order)

        def aten(array: np.ndarray) -> np.ndarray:
            blocks = np.split(array, gates, axis=0)
            return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=0))

        scope = self.cur_scope or _module_of(self.cur_name)
        layer = self.recurrent_layers.get(scope, 0)
        self.recurrent_layers[scope] = layer + 1
        params = []
        for d in range(w.array.shape[0]):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            arrays = [("weight_ih", aten(w.array[d])), ("weight_hh", aten(r.array[d]))]
            if b is not None:
                arrays += [("bias_ih", aten(b.array[d][:gates * hidden])), ("bias_hh", aten(b.array[d][gates * hidden:]))]
            for what, array in arrays:
                name = f"{scope}.{what}{suffix}" if scope else f"{what}{suffix}"
                params.append(Const(array, name if name not in self.taken else self._fresh(name), weight=True))
        return params

    def _recurrent_y(self, output: str, name: str, dirs: int, hidden: int, seq_axis: int, reverse: bool) -> str:
        """ONNX's Y from ATen's output: (seq, dirs, batch, hidden), or (batch, seq, dirs, hidden) in layout 1."""
        if reverse:
            output = self.emit("flip", [output], {"dims": (seq_axis,)})
        if dirs == 1:
            return self.emit("unsqueeze", [output], {"dim": 2 if seq_axis else 1}, out=name)
        lead = self.type_of(output).shape[:2]
        split = self.emit("reshape", [output], {"shape": (*lead, dirs, hidden)}, out=name if seq_axis else None)
        if seq_axis:
            return split
        return self.emit("transpose", [split], {"dim0": 1, "dim1": 2}, out=name)


def _module_of(node_name: str) -> str:
    """The module path in a node name ``a/b/LSTM`` or ``a.b/LSTM`` (``a.b``), or the name itself."""
    name = node_name.strip("/")
    return name.rsplit("/", 1)[0].replace("/", ".") if "/" in name else name
