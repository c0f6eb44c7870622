"""Importer handlers for layers: MatMul and Gemm (linear layers), Conv,
normalisation, the cross-entropy loss, pooling and reductions."""

from __future__ import annotations

import math

import numpy as np

from .handlers import handles
from .values import Const, _f32


class LayerOps:
    """Mixed into the importer: the ``_op_<OpType>`` handlers of layers."""

    @handles("MatMul", ops=("matmul", "linear"),
             takes="MatMul by a 2-D initializer only MatMuls read (W^T, [in, out]) or by Transpose(W) of a "
                   "constant, and the Add of a 1-D constant after it, is a linear layer")
    def _op_MatMul(self, node, ins, attrs):
        a, b = ins
        if isinstance(a, Const) and isinstance(b, Const):
            return [self.const(np.matmul(a.array, b.array), node.output[0])]
        weight = self._linear_weight(node, b)
        if weight is not None:
            out = self.emit("linear", [a, weight], {}, out=self.out(node))
            self.biasless[out] = (self.nodes[-1], node.output[0])  # an Add of a bias may follow
            return [out]
        return [self.emit("matmul", [a, b], {}, out=self.out(node))]

    def _linear_weight(self, node, b) -> Const | None:
        """The weight ``W [out, in]`` of the linear layer that ``MatMul(x, b)`` is, or None.

        ``b`` must be a 2-D float constant: either ``Transpose(W)`` of a
        constant W (the weight is W), or a constant ``[in, out]`` itself that
        only MatMuls read, as their B (an initializer stored transposed, as
        maseir's lowering and most exporters write linear layers: the weight
        is its transpose, keeping its name; linear layers sharing it share
        that param)."""
        if not isinstance(b, Const) or b.array.ndim != 2 or id(b) in self.param_of:
            return None
        if b.transposed is not None:
            return b.transposed
        name = node.input[1]
        if not b.weight or self.uses.get(name, 0) != self.matmul_weight_uses.get(name, 0):
            return None
        # kept on b (which the importer holds) so that the param made of it stays this Const's
        b.transposed = Const(np.ascontiguousarray(b.array.T), b.name, weight=True)
        return b.transposed

    @handles("Gemm", ops=("linear", "matmul", "add", "mul", "transpose"), since=7,
             takes="alpha, beta, transA, transB")
    def _op_Gemm(self, node, ins, attrs):
        a, b = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        alpha, beta = _f32(attrs.get("alpha", 1.0)), _f32(attrs.get("beta", 1.0))
        if attrs.get("transA"):
            a = self.emit("transpose", [a], {"dim0": 0, "dim1": 1})
        simple_bias = c is not None and self.rank(c) == 1 and beta == 1.0 and alpha == 1.0
        last = alpha == 1.0 and (c is None or simple_bias)
        out = self.out(node) if last else None
        if attrs.get("transB"):
            product = self.emit("linear", [a, b, c if simple_bias else None], {}, out=out)
        else:
            product = self.emit("matmul", [a, b], {}, out=out if not simple_bias else None)
            if simple_bias:
                return [self.emit("add", [product, c], {}, out=self.out(node))]
        if last:
            return [product]
        if alpha != 1.0:
            product = self.emit("mul", [product], {"other": alpha}, out=self.out(node) if c is None else None)
        if c is None:
            return [product]
        if beta != 1.0:
            c = self.emit("mul", [c], {"other": beta})
        return [self.emit("add", [product, c], {}, out=self.out(node))]

    @handles("Conv", ops=("conv2d", "pad"),
             takes="2-D; kernel_shape, strides, dilations, group, pads (asymmetric too), auto_pad")
    def _op_Conv(self, node, ins, attrs):
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if self.rank(w) != 4:
            raise self._error("is not a 2-D convolution (only Conv over (N, C, H, W) is supported)")
        kernel = list(self.type_of(w).shape[2:])
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        x, pads = self._symmetric(x, self._pads(x, attrs, kernel, strides, dilations), 0.0)
        return [self.emit("conv2d", [x, w, b], {"stride": tuple(strides), "padding": tuple(pads),
                                                "dilation": tuple(dilations), "groups": attrs.get("group", 1)},
                          out=self.out(node))]

    def _pads(self, x, attrs, kernel, strides, dilations) -> list[int]:
        """ONNX pads [top, left, bottom, right] from ``pads`` or ``auto_pad``."""
        auto = attrs.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", "VALID"):
            return list(attrs.get("pads", [0] * 4)) if auto == "NOTSET" else [0] * 4
        sizes = self.type_of(x).shape[-2:]
        if not all(isinstance(s, int) for s in sizes):
            raise self._error(f"auto_pad={auto} over symbolic spatial sizes")
        pads = [0] * 4
        for i, (size, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations)):
            total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, large) if auto == "SAME_UPPER" else (large, small)
        return pads

    def _symmetric(self, x, pads: list[int], value: float, limit: list[int] | None = None):
        """(x, [pad_h, pad_w]): ATen's convolutions and pools pad both sides alike (pools by at
        most ``limit``, half the effective kernel), so the part of ONNX ``pads`` beyond that is
        a ``pad`` node (filled with ``value``) first."""
        both = [min(pads[0], pads[2]), min(pads[1], pads[3])]
        if limit is not None:
            both = [min(b, m) for b, m in zip(both, limit)]
        extra = [p - both[i % 2] for i, p in enumerate(pads)]
        if any(extra):
            if any(p < 0 for p in pads):
                raise self._error(f"negative pads {pads}")
            x = self.emit("pad", [x], {"pad": (extra[1], extra[3], extra[0], extra[2]), "value": value})
        return x, both

    @handles("BatchNormalization", ops=("batch_norm",), since=7, takes="epsilon, momentum; inference mode only")
    def _op_BatchNormalization(self, node, ins, attrs):
        if attrs.get("training_mode") or (len(node.output) > 1 and any(node.output[1:])):
            raise self._error("runs in training mode")
        x, scale, bias, mean, var = ins[:5]
        momentum = 1.0 - _f32(attrs.get("momentum", 0.9))
        return [self.emit("batch_norm", [x, scale, bias, mean, var],
                          {"momentum": _f32(momentum), "eps": _f32(attrs.get("epsilon", 1e-5))},
                          out=self.out(node))]

    @handles("LayerNormalization", ops=("layer_norm",),
             takes="axis, epsilon; static normalised dims; not the mean and inverse-deviation outputs")
    def _op_LayerNormalization(self, node, ins, attrs):
        if len(node.output) > 1 and any(node.output[1:]):
            raise self._error("its mean and inverse-deviation outputs are used")
        x = ins[0]
        shape = self.type_of(x).shape
        axis = attrs.get("axis", -1)
        normalized = tuple(shape[axis:])
        if not all(isinstance(d, int) for d in normalized):
            raise self._error("normalises over symbolic dims")
        bias = ins[2] if len(ins) > 2 else None
        return [self.emit("layer_norm", [x, ins[1], bias],
                          {"normalized_shape": normalized, "eps": _f32(attrs.get("epsilon", 1e-5))},
                          out=self.out(node))]

    @handles("SoftmaxCrossEntropyLoss", ops=("cross_entropy",),
             takes="reduction, ignore_index; not the log-probability output")
    def _op_SoftmaxCrossEntropyLoss(self, node, ins, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise self._error("its log-probability output is used")
        reduction = {"none": 0, "mean": 1, "sum": 2}[attrs.get("reduction", "mean")]
        weight = ins[2] if len(ins) > 2 else None
        return [self.emit("cross_entropy", [ins[0], ins[1], weight],
                          {"reduction": reduction, "ignore_index": attrs.get("ignore_index", -100)},
                          out=self.out(node))]

    def _pool(self, op_name, node, ins, attrs, extra):
        if len(node.output) > 1 and node.output[1]:
            raise self._error("its indices output is used")
        x = ins[0]
        if self.rank(x) != 4:
            raise self._error("is not a 2-D pooling over (N, C, H, W)")
        kernel = list(attrs["kernel_shape"])
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        pads = self._pads(x, attrs, kernel, strides, dilations)
        limit = [((k - 1) * d + 1) // 2 for k, d in zip(kernel, dilations)]  # ATen's most padding
        if pads[:2] != pads[2:] or any(p > m for p, m in zip(pads, limit + limit)):
            why = "not symmetric" if pads[:2] != pads[2:] else "more than half the kernel"
            if attrs.get("ceil_mode"):
                raise self._error(f"pads {pads} are {why} and ceil_mode is set")
            if op_name == "avg_pool2d" and not extra["count_include_pad"]:
                raise self._error(f"pads {pads} are {why} and count_include_pad=0 (the padding would be "
                                  "averaged in)")
        x, pads = self._symmetric(x, pads, -math.inf if op_name == "max_pool2d" else 0.0, limit)
        attrs_ir = {"kernel_size": tuple(kernel), "stride": tuple(strides), "padding": tuple(pads),
                    "ceil_mode": bool(attrs.get("ceil_mode", 0)), **extra}
        if op_name == "max_pool2d":
            attrs_ir["dilation"] = tuple(dilations)
        elif dilations != [1, 1]:
            raise self._error("average pooling with dilation")
        return [self.emit(op_name, [x], attrs_ir, out=self.out(node))]

    @handles("MaxPool", ops=("max_pool2d", "pad"), since=8,
             takes="2-D; kernel_shape, strides, dilations, pads (asymmetric or past half the kernel too, without "
                   "ceil_mode), auto_pad, ceil_mode; not storage_order=1 nor the indices output")
    def _op_MaxPool(self, node, ins, attrs):
        if attrs.get("storage_order"):
            raise self._error("storage_order=1")
        return self._pool("max_pool2d", node, ins, attrs, {})

    @handles("AveragePool", ops=("avg_pool2d", "pad"), since=7,
             takes="2-D; kernel_shape, strides, pads (asymmetric or past half the kernel only with "
                   "count_include_pad=1, without ceil_mode), auto_pad, ceil_mode, count_include_pad")
    def _op_AveragePool(self, node, ins, attrs):
        return self._pool("avg_pool2d", node, ins, attrs,
                          {"count_include_pad": bool(attrs.get("count_include_pad", 0))})

    @handles("GlobalAveragePool", ops=("adaptive_avg_pool2d", "mean"), takes="-")
    def _op_GlobalAveragePool(self, node, ins, attrs):
        x = ins[0]
        rank = self.rank(x)
        if rank == 4:
            return [self.emit("adaptive_avg_pool2d", [x], {"output_size": (1, 1)}, out=self.out(node))]
        return [self.emit("mean", [x], {"dim": tuple(range(2, rank)), "keepdim": True}, out=self.out(node))]

    def _reduce(self, op_name, node, ins, attrs):
        x = ins[0]
        if self.opset >= 18 or (op_name == "sum" and self.opset >= 13):
            axes = self.sizes(ins[1], "the axes") if len(ins) > 1 and ins[1] is not None else None
        else:
            axes = attrs.get("axes")
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes"):
                return [x]
            axes = list(range(self.rank(x)))
        return [self.emit(op_name, [x], {"dim": tuple(int(a) for a in axes), "keepdim": keep},
                          out=self.out(node))]

    @handles("ReduceMean", ops=("mean",),
             takes="axes (attribute before opset 18, then a constant input), keepdims, noop_with_empty_axes")
    def _op_ReduceMean(self, node, ins, attrs):
        return self._reduce("mean", node, ins, attrs)

    @handles("ReduceSum", ops=("sum",),
             takes="axes (attribute before opset 13, then a constant input), keepdims, noop_with_empty_axes")
    def _op_ReduceSum(self, node, ins, attrs):
        return self._reduce("sum", node, ins, attrs)
