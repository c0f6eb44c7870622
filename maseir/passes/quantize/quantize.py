"""``quantize``: signed fixed point for the weights, biases and activations of the selected ops.

For every node the selection picks (default: ``linear``), by the op's
argument names:

- its ``weight`` param is stored as ``fixed<w,f>`` codes (per tensor, or per
  output channel with ``granularity=channel``); ``frac=auto`` takes, per
  tensor or per channel, the largest f at which no weight clips
  (maseir.formats.auto_frac);
- its ``bias`` param likewise (``bias.bits``/``bias.frac``, default the
  weight's);
- each floating-point input that is not a param (an activation) reads it
  through a ``quantize`` node whose output value carries the data format
  (shared by every selected node reading the same value in the same format):
  ``fixed<w,f>`` with ``data=static`` (``frac=auto`` from the range
  ``calibrate`` recorded; a range that is not finite, such as an additive
  mask's -inf, is skipped and reported, never made a format),
  ``dynamic<8>`` with ``data=dynamic``, nothing with ``data=none``.

Quantizing again with the same settings changes nothing (idempotent: ``auto``
keeps a tensor's format at the same width); to other formats, the values are
re-rounded from the current ones. Weights keep their
trainable flag, so ``finetune`` after ``quantize`` is QAT.
"""

from __future__ import annotations

from dataclasses import dataclass

from ... import formats, ops
from ...errors import MaseIRError
from ...ir import Graph, Node, NumberFormat, Tensor, TensorType, Value, unique_name
from ..registry import ArgSpec, PassResult, PassSpec, StepArgs, register
from ..selection import Selection, select
from .ranges import recorded_range

QUANTIZABLE_OPS = ("linear", "matmul", "embedding", "conv2d")
AUTO = "auto"


class QuantizeError(MaseIRError):
    """A quantize step that does not fit this graph."""


@dataclass(frozen=True)
class TensorFormat:
    """What one kind of tensor becomes: ``bits`` wide, ``frac`` fractional bits or "auto"."""

    bits: int
    frac: int | str


@dataclass(frozen=True)
class QuantizeConfig:
    """A quantize step's settings: the node selection, the weight, bias and data
    formats, ``data`` one of static|dynamic|none, and the weight ``granularity``
    (tensor|channel)."""

    selection: Selection
    weight: TensorFormat
    bias: TensorFormat
    data: TensorFormat
    data_mode: str = "static"
    granularity: str = "tensor"


def config_from_args(args: StepArgs) -> QuantizeConfig:
    """The typed config of a validated ``quantize`` step."""
    def fmt(prefix: str, fallback: TensorFormat) -> TensorFormat:
        bits = args[f"{prefix}.bits"]
        frac = args[f"{prefix}.frac"]
        return TensorFormat(fallback.bits if bits is None else bits, fallback.frac if frac is None else frac)

    general = TensorFormat(args["bits"], args["frac"])
    weight = fmt("weight", general)
    return QuantizeConfig(Selection(ops=tuple(args["ops"]), scope_regex=args["scope_regex"]),
                          weight, fmt("bias", weight), fmt("data", general), args["data"], args["granularity"])


def quantize(graph: Graph, config: QuantizeConfig) -> tuple[Graph, dict]:
    """A copy of ``graph`` quantized as ``config`` says, and a report.

    Raises SelectionError when the selection matches nothing, QuantizeError
    when an activation needs a recorded range (``frac=auto``) and has none, or
    when no ``frac`` holds a weight (``auto`` on one that is not finite or too large for any f)."""
    from ...arrays import to_numpy

    chosen = select(graph, config.selection)
    new = graph.copy()
    producers = new.producers()
    quantize_nodes = {n.outputs[0].name: n for n in new.nodes if n.op == "quantize"}
    report = {"weights": {}, "biases": {}, "activations": {}, "skipped": [], "nodes": len(chosen)}
    done: dict[str, NumberFormat] = {}
    wanted: dict[tuple[str, NumberFormat], str] = {}   # (source value, format) -> quantize node name
    inserts: dict[str, list[Node]] = {}                # after value -> new quantize nodes
    taken = {n.name for n in new.nodes} | set(new.params) | {v.name for v in new.inputs}
    types = new.value_types()
    by_name = {n.name: n for n in new.nodes}
    for picked in chosen:
        node = by_name[picked.name]
        op = ops.get(node.op)
        slots = [t.name for t in op.tensor_args if not t.variadic]
        for index, (slot, value) in enumerate(zip(slots, node.inputs)):
            if not value or not types[value].dtype.startswith(("float", "bfloat")):
                continue
            if value in new.params:
                role = "bias" if slot == "bias" else "weight"
                spec = config.bias if role == "bias" else config.weight
                param = new.params[value]
                if value not in done:
                    values = to_numpy(param)
                    fmt = _param_format(param, spec, config.granularity if role == "weight" else "tensor", values,
                                        output_channel_axis(node.op, slot, len(param.type.shape)))
                    if param.type.format != fmt:
                        new.params[value] = Tensor(value, TensorType(param.type.dtype, param.type.shape, fmt),
                                                   formats.encode(values, fmt), param.trainable,
                                                   annotations=param.annotations)
                    done[value] = fmt
                report["biases" if role == "bias" else "weights"][value] = str(done[value])
                continue
            if config.data_mode == "none":
                continue
            source = value
            if value in quantize_nodes:  # already read through a quantize node: start from its input
                source = quantize_nodes[value].inputs[0]
            fmt = _data_format(new, source, config, producers)
            if fmt is None:
                report["skipped"].append(source)
                continue
            key = (source, fmt)
            if key not in wanted:
                if value in quantize_nodes and quantize_nodes[value].outputs[0].type.format == fmt:
                    wanted[key] = value  # the same format: nothing to do
                else:
                    name = unique_name(f"{source}.quantize", taken)
                    base = types[source]
                    scope = producers[source].scope if source in producers else ""
                    inserts.setdefault(source, []).append(
                        Node(name, "quantize", [source], [Value(name, TensorType(base.dtype, base.shape, fmt))],
                             scope=scope))
                    wanted[key] = name
            node.inputs[index] = wanted[key]
            report["activations"][wanted[key]] = str(fmt)
    nodes = [q for v in new.inputs for q in inserts.get(v.name, ())]
    for node in new.nodes:
        nodes.append(node)
        nodes.extend(inserts.get(node.outputs[0].name, ()) if len(node.outputs) == 1 else ())
    used = {i for n in nodes for i in n.inputs} | set(new.outputs)
    new.nodes = [n for n in nodes if n.op != "quantize" or n.outputs[0].name in used]  # drop replaced quantizers
    report["skipped"] = sorted(set(report["skipped"]))
    report["bytes_before"] = sum(t.nbytes for t in graph.params.values())
    report["bytes_after"] = sum(t.nbytes for t in new.params.values())
    return new, report


def output_channel_axis(op: str, slot: str, ndim: int) -> int | None:
    """The axis of a weight's output channels (for ``granularity=channel``), or None for a
    weight with a single output: 0 for linear and conv2d weights ([out, in, ...]) and
    embedding tables (one row per index); for matmul, the last axis of ``other`` (x @ W,
    W [..., in, out]) and the second-to-last of ``self`` (W @ x); a 1-D operand of matmul
    (a dot product) has one output, and a 1-D param (a bias) is per tensor."""
    if ndim < 2:
        return None
    if op == "matmul":
        return ndim - 1 if slot == "other" else ndim - 2
    return 0


def _param_format(param: Tensor, spec: TensorFormat, granularity: str, values, axis: int | None) -> NumberFormat:
    """The fixed-point format of a param: per tensor, or per channel along ``axis``
    (None: per tensor). ``auto`` on a param already stored at this width and granularity
    keeps its format: its rounded values could take a larger f, but re-quantizing must
    change nothing."""
    current = param.type.format
    per_channel = granularity == "channel" and axis is not None
    if spec.frac == AUTO and formats.is_stored_as_codes(current) and current.kind == "fixed" \
            and current.width == spec.bits and bool(current.fracs) == per_channel \
            and (not current.fracs or current.axis == axis):
        return current
    try:
        if per_channel:
            fracs = formats.auto_fracs(values, spec.bits, axis) if spec.frac == AUTO \
                else (int(spec.frac),) * int(param.type.shape[axis])
            return formats.fixed_per_channel(spec.bits, fracs, axis)
        if spec.frac == AUTO:
            return formats.fixed(spec.bits, formats.auto_frac(float(values.min(initial=0.0)),
                                                              float(values.max(initial=0.0)), spec.bits))
    except ValueError as exc:  # a weight that is not finite, or beyond every f's range
        raise QuantizeError(f"{param.name}: {exc}") from None
    return formats.fixed(spec.bits, int(spec.frac))


def _data_format(graph: Graph, value: str, config: QuantizeConfig, producers) -> NumberFormat | None:
    """The format of activation ``value``, or None when its range is not finite."""
    if config.data_mode == "dynamic":
        return formats.dynamic(8)
    spec = config.data
    if spec.frac != AUTO:
        return formats.fixed(spec.bits, int(spec.frac))
    found = recorded_range(graph, value, producers)
    if found is None:
        raise QuantizeError(f"activation {value} has no recorded range for frac=auto: run 'calibrate' first "
                            "(or give data.frac=N, or data=dynamic)")
    try:
        return formats.fixed(spec.bits, formats.auto_frac(found[0], found[1], spec.bits))
    except ValueError:
        return None  # e.g. an additive attention mask's -inf: no fixed-point format holds it


def _quantize(graph: Graph, args: StepArgs) -> PassResult:
    config = config_from_args(args)
    new, report = quantize(graph, config)
    formats_used = sorted(set(report["weights"].values()))
    ratio = report["bytes_after"] / report["bytes_before"] if report["bytes_before"] else 1.0
    summary = (f"{len(report['weights'])} weights ({', '.join(formats_used) or 'none'}), "
               f"{len(report['biases'])} biases, {len(report['activations'])} activation quantizers "
               f"({config.data_mode}); params {report['bytes_before'] / 1e6:.1f} -> "
               f"{report['bytes_after'] / 1e6:.1f} MB ({ratio:.2f}x)")
    if report["skipped"]:
        summary += f"; {len(report['skipped'])} activations skipped (range not finite)"
    return PassResult(new, report, summary)


def _bits(name: str, default, help: str) -> ArgSpec:
    return ArgSpec(name, "int", default, help, min=formats.MIN_WIDTH, max=formats.MAX_WIDTH)


def _frac(name: str, default, help: str) -> ArgSpec:
    return ArgSpec(name, "int", default, help, min=-formats.MAX_FRAC, max=formats.MAX_FRAC, words=(AUTO,))


register(PassSpec("quantize", _quantize, "signed fixed point fixed<w,f> for the weights, biases and inputs of "
                  "the selected ops; weights stored as integers (int8, int16, int4 packed)", args=(
                      _bits("bits", 8, "width w of every tensor unless weight./bias./data.bits says otherwise"),
                      _frac("frac", AUTO, "fractional bits f, or auto: the largest f at which nothing clips "
                                          "(activations: from calibrate's ranges)"),
                      _bits("weight.bits", None, "weight width (default: bits)"),
                      _frac("weight.frac", None, "weight fractional bits (default: frac)"),
                      _bits("bias.bits", None, "bias width (default: the weight's)"),
                      _frac("bias.frac", None, "bias fractional bits (default: the weight's)"),
                      _bits("data.bits", None, "activation width (default: bits)"),
                      _frac("data.frac", None, "activation fractional bits (default: frac)"),
                      ArgSpec("data", "str", "static", "activations: static fixed point, dynamic (8-bit, scale "
                                                       "from each tensor's range at run time) or none",
                              choices=("static", "dynamic", "none")),
                      ArgSpec("ops", "list", ("linear",), "the ops whose tensors are quantized",
                              choices=QUANTIZABLE_OPS),
                      ArgSpec("scope_regex", "str", None, "only nodes whose scope this regular expression finds"),
                      ArgSpec("granularity", "str", "tensor", "weights: one format per tensor, or per output "
                                                             "channel", choices=("tensor", "channel")),
                  )))
