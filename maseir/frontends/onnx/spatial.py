"""Importer handlers for padding, resampling and transposed convolution: Pad,
Resize, ConvTranspose. Pads, scales and sizes must be known while importing
(constants, or sizes computed from shapes): the IR states them as attributes."""

from __future__ import annotations

import math

from ...ir import attr_dim
from .handlers import handles
from .values import Const, _f32

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class SpatialOps:
    """Mixed into the importer: the ``_op_<OpType>`` handlers of Pad, Resize and ConvTranspose."""

    @handles("Pad", ops=("pad",), since=2,
             takes="mode constant, reflect, edge, wrap; pads (attribute before opset 11, then a constant input; "
                   "negative pads crop in constant mode), constant_value, axes (opset 18); reflect, edge and "
                   "wrap over at most the last 3 dims, leaving 1 or 2 leading dims unpadded")
    def _op_Pad(self, node, ins, attrs):
        x = ins[0]
        rank = self.rank(x)
        mode = attrs.get("mode", "constant")
        if mode not in _PAD_MODES:
            raise self._error(f"mode {mode!r}")
        if self.opset < 11:
            pads, value, axes = list(attrs["pads"]), attrs.get("value", 0.0), None
        else:
            pads = self.sizes(ins[1], "the pads")
            value = self.scalar(ins[2]) if len(ins) > 2 and ins[2] is not None else 0
            axes = self.sizes(ins[3], "the axes") if len(ins) > 3 and ins[3] is not None else None
        if not all(isinstance(p, int) for p in pads):
            raise self._error("pads by a symbolic size")
        if value is None or attr_dim(value) is not None:
            raise self._error("pads with a value that is not a constant")
        axes = [a + rank if a < 0 else a for a in (axes if axes is not None else range(rank))]
        if len(pads) != 2 * len(axes):
            raise self._error(f"{len(pads)} pads for {len(axes)} axes")
        before, after = dict(zip(axes, pads[:len(axes)])), dict(zip(axes, pads[len(axes):]))
        padded = [a for a in range(rank) if before.get(a, 0) or after.get(a, 0)]
        if not padded:
            return [x]
        count = rank - min(padded)  # ATen's list runs from the last dim back to the first padded one
        if mode != "constant":
            # ATen pads the last 1, 2 or 3 dims of an input with 1 or 2 more.
            count = max(count, rank - 2)
            if count > 3 or rank - count < 1:
                raise self._error(f"pads dims {padded} of a rank-{rank} input in mode {mode}; ATen pads "
                                  "the last 1 to 3 dims, leaving 1 or 2 leading dims unpadded")
        pad = []
        for axis in range(rank - 1, rank - 1 - count, -1):
            pad += [int(before.get(axis, 0)), int(after.get(axis, 0))]
        attrs_ir = {"pad": tuple(pad), "mode": _PAD_MODES[mode]}
        if mode == "constant" and value != 0:
            attrs_ir["value"] = float(value)
        return [self.emit("pad", [x], attrs_ir, out=self.out(node))]

    @handles("Resize", ops=("upsample_nearest2d", "upsample_bilinear2d"), since=11,
             takes="(N, C, H, W) resized over H and W; scales or sizes (constants, or sizes computed from shapes), "
                   "axes (opset 18); mode nearest with coordinate_transformation_mode asymmetric and nearest_mode "
                   "floor (F.interpolate's nearest; any half_pixel rounding for whole upscaling factors); mode "
                   "linear with half_pixel, pytorch_half_pixel (output sizes above 1) or align_corners; not cubic, "
                   "antialias, or keep_aspect_ratio_policy other than stretch")
    def _op_Resize(self, node, ins, attrs):
        x = ins[0]
        shape = self.type_of(x).shape
        rank = len(shape)
        if rank != 4:
            raise self._error(f"resizes a rank-{rank} input; only (N, C, H, W) is supported")
        scales = self.floats(ins[2], "the scales") if len(ins) > 2 and ins[2] is not None else None
        sizes = self.sizes(ins[3], "the sizes") if len(ins) > 3 and ins[3] is not None else None
        if scales is not None and not scales:
            scales = None  # an empty scales input means "use sizes"
        if attrs.get("antialias"):
            raise self._error("antialias=1")
        if sizes is not None and attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise self._error(f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']}")
        axes = list(attrs.get("axes", range(rank)))
        axes = [a + rank if a < 0 else a for a in axes]
        given = scales if scales is not None else sizes
        if given is None or len(given) != len(axes):
            raise self._error("has neither scales nor sizes for every axis")
        per_axis = dict(zip(axes, given))
        for axis in (0, 1):
            keep = 1.0 if scales is not None else shape[axis]
            if per_axis.get(axis, keep) != keep:
                raise self._error("resizes the batch or channel dim")
        spatial = [per_axis.get(a, 1.0 if scales is not None else shape[a]) for a in (2, 3)]
        if scales is not None:
            spatial = [_f32(s) for s in spatial]
            if any(s <= 0 for s in spatial):
                raise self._error(f"scales {spatial}")
            out_sizes = [math.floor(n * s) if isinstance(n, int) else None for n, s in zip(shape[2:], spatial)]
        else:
            out_sizes = [s if isinstance(s, int) else None for s in spatial]
        mode = attrs.get("mode", "nearest")
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        resize = {"scale_factors": tuple(spatial)} if scales is not None else \
            {"output_size": tuple(spatial)}
        if mode == "nearest":
            rounding = attrs.get("nearest_mode", "round_prefer_floor")
            if not (transform == "asymmetric" and rounding == "floor") and \
                    not (transform in ("half_pixel", "pytorch_half_pixel")
                         and rounding in ("round_prefer_floor", "round_prefer_ceil")
                         and self._whole_factors(shape[2:], spatial, scales is not None)):
                raise self._error(f"nearest resize with coordinate_transformation_mode={transform} and "
                                  f"nearest_mode={rounding} (ATen's nearest is asymmetric with floor)")
            return [self.emit("upsample_nearest2d", [x], resize, out=self.out(node))]
        if mode == "linear":
            if transform == "pytorch_half_pixel" and not all(isinstance(s, int) and s > 1 for s in out_sizes):
                raise self._error("pytorch_half_pixel to an output size that may be 1 (ATen then uses half_pixel)")
            if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
                raise self._error(f"linear resize with coordinate_transformation_mode={transform}")
            return [self.emit("upsample_bilinear2d", [x], {**resize, "align_corners": transform == "align_corners"},
                              out=self.out(node))]
        raise self._error(f"mode {mode!r}")

    def _whole_factors(self, sizes, spatial, are_scales: bool) -> bool:
        """Whether every spatial dim is enlarged by a whole factor (then half-pixel
        nearest, rounded either way at ties, picks floor(dst / factor) too)."""
        for n, s in zip(sizes, spatial):
            if are_scales:
                if s < 1 or s != int(s):
                    return False
            elif not (isinstance(n, int) and isinstance(s, int) and s >= n and s % n == 0):
                return False
        return True

    def floats(self, value, what: str) -> list[float]:
        """Entries of a constant float vector."""
        if not isinstance(value, Const):
            raise self._error(f"{what} must be a constant")
        return [float(v) for v in value.array.reshape(-1)]

    @handles("ConvTranspose", ops=("conv_transpose2d", "slice"),
             takes="2-D; kernel_shape, strides, dilations, group, output_padding, pads (asymmetric too), "
                   "output_shape, auto_pad")
    def _op_ConvTranspose(self, node, ins, attrs):
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if self.rank(w) != 4:
            raise self._error("is not a 2-D transposed convolution (only (N, C, H, W) is supported)")
        kernel = [int(k) for k in self.type_of(w).shape[2:]]
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        output_padding = list(attrs.get("output_padding", [0, 0]))
        pads = self._transposed_pads(x, attrs, kernel, strides, dilations, output_padding)
        if any(p < 0 for p in pads):
            raise self._error(f"negative pads {pads}")
        both = [min(pads[0], pads[2]), min(pads[1], pads[3])]
        attrs_ir = {"stride": tuple(strides), "padding": tuple(both), "output_padding": tuple(output_padding),
                    "groups": attrs.get("group", 1), "dilation": tuple(dilations)}
        crops = [(axis, pads[i] - both[i], pads[i + 2] - both[i]) for i, axis in enumerate((2, 3))
                 if pads[i] != pads[i + 2]]
        y = self.emit("conv_transpose2d", [x, w, b], attrs_ir, out=None if crops else self.out(node))
        # ATen pads both sides by the smaller pad; the rest of the larger one is cropped off.
        for i, (axis, start, end) in enumerate(crops):
            y = self.emit("slice", [y], {"dim": axis, "start": start, "end": -end if end else None},
                          out=self.out(node) if i == len(crops) - 1 else None)
        return [y]

    def _transposed_pads(self, x, attrs, kernel, strides, dilations, output_padding) -> list[int]:
        """ONNX ConvTranspose pads [top, left, bottom, right]: given, or from output_shape
        or auto_pad (ONNX's formula for total_padding)."""
        auto = attrs.get("auto_pad", "NOTSET")
        wanted = attrs.get("output_shape")
        if auto == "VALID":
            return [0] * 4
        if auto == "NOTSET" and wanted is None:
            return list(attrs.get("pads", [0] * 4))
        sizes = self.type_of(x).shape[-2:]
        if not all(isinstance(s, int) for s in sizes):
            raise self._error("output_shape or auto_pad over symbolic spatial sizes")
        wanted = list(wanted)[-2:] if wanted is not None else [s * st for s, st in zip(sizes, strides)]
        pads = [0] * 4
        for i in range(2):
            total = (strides[i] * (sizes[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1
                     - wanted[i])
            small, large = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, large) if auto == "SAME_UPPER" else (large, small)
        return pads
