"""Running a graph: ONNX Runtime sessions (built once per graph) and latency benchmarks.

``ort_session(graph)`` lowers the graph to ONNX and wraps an
``onnxruntime.InferenceSession`` (graph optimisation level "all") in an
:class:`OrtRunner` that is called like the torch lowering: graph inputs in
order, numpy arrays or torch tensors in, numpy arrays out. Runners are cached
per graph object and thread count, so repeated evaluation never rebuilds a
session.

``bench(graph, runtime, batch=, seq_len=, shapes=)`` times either runtime on
generated inputs (``example_inputs``) of the given sizes: ``batch`` and ``seq``
have defaults, every other symbolic dim is sized by an explicit input shape;
warm-up runs excluded, latency percentiles and throughput reported with the
thread count and the input shapes used.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import symbolic
from .errors import MaseIRError
from .ir import Graph

if TYPE_CHECKING:
    import numpy as np  # imported where used, so the CLI starts without numpy

RUNTIMES = ("onnxruntime", "torch")

_SESSIONS: dict[tuple, OrtRunner] = {}


def default_threads() -> int:
    """Threads a runtime uses when not told: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OrtRunner:
    """An ONNX Runtime session for one graph, called like ``to_torch(graph)``."""

    def __init__(self, graph: Graph, threads: int | None = None, opset: int | None = None):
        import onnxruntime as ort

        from .lowering.onnx import DEFAULT_OPSET, save_onnx, to_onnx

        self.threads = threads or default_threads()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 4  # errors reach the user as one line, not as ORT logs
        # ORT fuses a weight-only DequantizeLinear -> MatMul into MatMulNBits, which by default (level 4)
        # rounds the activations to int8 too; level 0 keeps them float, so ORT computes what the graph says.
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
        opset = opset or DEFAULT_OPSET
        providers = ["CPUExecutionProvider"]
        if sum(t.nbytes for t in graph.params.values()) < 1_500_000_000:
            self.session = ort.InferenceSession(to_onnx(graph, opset).SerializeToString(), options,
                                                providers=providers)
        else:  # past protobuf's 2 GB limit the weights must live in a file next to the model
            with tempfile.TemporaryDirectory(prefix="maseir-ort-") as folder:
                path = os.path.join(folder, "model.onnx")
                save_onnx(graph, path, opset=opset, external_data_threshold=1024)
                self.session = ort.InferenceSession(path, options, providers=providers)
        self.input_names = [v.name for v in graph.inputs]
        self.output_names = list(graph.outputs)
        self._dtypes = {v.name: v.type.dtype for v in graph.inputs}

    def __call__(self, *inputs, **named):
        """Outputs for inputs given in graph order (or by name): one array, or a tuple."""
        if len(inputs) > len(self.input_names):
            raise MaseIRError(f"the graph takes {len(self.input_names)} inputs, got {len(inputs)}")
        feeds = dict(zip(self.input_names, inputs))
        feeds.update(named)
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise MaseIRError(f"missing graph inputs: {', '.join(missing)}")
        outputs = self.session.run(self.output_names, {n: _as_numpy(feeds[n], self._dtypes[n])
                                                       for n in self.input_names})
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _as_numpy(value: Any, dtype: str) -> np.ndarray:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if dtype == "bool":
        return array.astype(np.bool_, copy=False)
    if dtype == "bfloat16":
        raise MaseIRError("bfloat16 graph inputs cannot be fed to ONNX Runtime from numpy")
    return array.astype(np.dtype(dtype), copy=False)


def ort_session(graph: Graph, *, threads: int | None = None) -> OrtRunner:
    """The ONNX Runtime runner of ``graph``, built on first use and then reused."""
    key = (id(graph), threads or default_threads())
    runner = _SESSIONS.get(key)
    if runner is None:
        runner = OrtRunner(graph, threads)
        _SESSIONS[key] = runner
        weakref.finalize(graph, _SESSIONS.pop, key, None)
    return runner


# --- benchmarks ----------------------------------------------------------------------
@dataclass
class BenchResult:
    """Latency (milliseconds) and throughput of one runtime at one input size.

    ``batch`` is the size of the ``batch`` dim (None when no input has one; then a
    run is one sample), ``seq_len`` that of ``seq`` (None when no input has one),
    ``shapes`` the concrete shape of every graph input."""

    runtime: str
    batch: int | None
    seq_len: int | None
    threads: int
    warmup: int
    repeats: int
    p50_ms: float
    p90_ms: float
    mean_ms: float
    samples_per_s: float
    shapes: dict[str, list[int]] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def input_shapes(graph: Graph, *, batch: int | None = None, seq_len: int | None = None,
                 shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    """The concrete shape of every graph input, in graph order.

    ``shapes`` gives some inputs' shapes outright (and with them the size of each
    symbolic dim they carry); ``batch`` sizes the ``batch`` dim (default 1) and
    ``seq_len`` the ``seq`` dim (default 128). Any other symbolic dim must get
    its size from ``shapes``. Raises MaseIRError (one line) for an unknown input,
    a shape of the wrong rank or fixed size, sizes that disagree, ``batch`` or
    ``seq_len`` given for a graph without that dim, or dims left without a size.
    """
    shapes = dict(shapes or {})
    types = {v.name: v.type.shape for v in graph.inputs}
    symbols = {d for shape in types.values() for d in shape if isinstance(d, str)}
    sizes: dict[str, int] = {}
    for name, shape in shapes.items():
        if name not in types:
            raise MaseIRError(f"--shape {name}: no such graph input (inputs: {', '.join(types) or 'none'})")
        want = types[name]
        if len(shape) != len(want):
            raise MaseIRError(f"--shape {name}={_dims(shape)}: the input has {len(want)} dims [{_dims(want)}]")
        for axis, (size, dim) in enumerate(zip(shape, want)):
            if isinstance(dim, int) and size != dim:
                raise MaseIRError(f"--shape {name}={_dims(shape)}: axis {axis} is fixed at {dim}")
            if isinstance(dim, str):
                if sizes.setdefault(dim, size) != size:
                    raise MaseIRError(f"--shape gives dim {dim} two sizes, {sizes[dim]} and {size}")
    for dim, value, option, default in (("batch", batch, "--batch", 1), ("seq", seq_len, "--seq-len", 128)):
        if value is not None and dim not in symbols:
            raise MaseIRError(f"{option} does not apply: no graph input has a {dim} dim "
                              f"(inputs: {_signature(graph)}); give input sizes with --shape NAME=D1,D2,...")
        if value is not None and sizes.setdefault(dim, value) != value:
            raise MaseIRError(f"{option} {value} disagrees with --shape, which makes {dim} {sizes[dim]}")
        if dim in symbols:
            sizes.setdefault(dim, default)
    def unsized(v) -> set[str]:  # an input axis may be an expression of the symbols
        return {s for d in v.type.shape if not isinstance(d, int) for s in symbolic.symbols(d)} - set(sizes)
    missing = [v for v in graph.inputs if unsized(v)]
    if missing:
        dims = sorted(set().union(*(unsized(v) for v in missing)))
        examples = " ".join(f"--shape {v.name}="
                            + ",".join(str(sizes.get(d, d.upper())) if isinstance(d, str) else str(d)
                                       for d in v.type.shape) for v in missing)
        raise MaseIRError(f"symbolic dim{'s' if len(dims) > 1 else ''} {', '.join(dims)} "
                          f"{'have' if len(dims) > 1 else 'has'} no size (only batch and seq have defaults): "
                          f"give {examples}")
    return {v.name: tuple(symbolic.evaluate(d, sizes) for d in v.type.shape) for v in graph.inputs}


def _dims(shape) -> str:
    return ",".join(str(d) for d in shape)


def _signature(graph: Graph) -> str:
    return ", ".join(f"{v.name}[{_dims(v.type.shape)}]" for v in graph.inputs) or "none"


def example_inputs(graph: Graph, batch: int | None = None, seq_len: int | None = None, seed: int = 0, *,
                   shapes: dict[str, tuple[int, ...]] | None = None) -> list[np.ndarray]:
    """Inputs for ``graph`` in graph order, sized by ``input_shapes(graph, batch=...,
    seq_len=..., shapes=...)``: masks (bool, or a name with "mask") all ones,
    integer inputs uniform within the embedding they index (else 0 or 1), float
    inputs standard normal, drawn with ``seed``. Raises MaseIRError like
    ``input_shapes``, or for a dtype it cannot generate (bfloat16)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    bounds = _index_bounds(graph)
    sized = input_shapes(graph, batch=batch, seq_len=seq_len, shapes=shapes)
    arrays = []
    for value in graph.inputs:
        shape = sized[value.name]
        dtype = value.type.dtype
        if dtype == "bool" or "mask" in value.name:
            arrays.append(np.ones(shape, dtype=np.dtype("bool" if dtype == "bool" else dtype)))
        elif dtype.startswith("int") or dtype == "uint8":
            arrays.append(rng.integers(0, bounds.get(value.name, 2), size=shape).astype(dtype))
        elif dtype in ("float32", "float16", "float64"):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        else:
            raise MaseIRError(f"input {value.name}: cannot generate {dtype} inputs for a benchmark")
    return arrays


def _index_bounds(graph: Graph) -> dict[str, int]:
    """For integer inputs read by an embedding: the number of rows they may index."""
    bounds = {}
    for node in graph.nodes:
        if node.op == "embedding" and len(node.inputs) > 1:
            weight = graph.params.get(node.inputs[0])
            if weight is not None and isinstance(weight.type.shape[0], int):
                bounds.setdefault(node.inputs[1], weight.type.shape[0])
    return bounds


def bench(graph: Graph, runtime: str = "onnxruntime", *, batch: int | None = None, seq_len: int | None = None,
          shapes: dict[str, tuple[int, ...]] | None = None, threads: int | None = None, warmup: int = 5,
          repeats: int = 30) -> BenchResult:
    """Time ``repeats`` runs of ``graph`` after ``warmup`` untimed ones, on inputs
    from ``example_inputs(graph, batch, seq_len, shapes=shapes)``."""
    if runtime not in RUNTIMES:
        raise MaseIRError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if any(n is not None and n < 1 for n in (batch, seq_len, threads)) or repeats < 1 or warmup < 0:
        raise MaseIRError("batch, seq-len, repeats and threads must be at least 1, warmup at least 0")
    threads = threads or default_threads()
    inputs = example_inputs(graph, batch, seq_len, shapes=shapes)
    sized = {v.name: list(a.shape) for v, a in zip(graph.inputs, inputs)}
    dims = _dim_sizes(graph, sized)
    batch, seq_len = dims.get("batch"), dims.get("seq")
    if runtime == "onnxruntime":
        run = _ort_runner(graph, threads, inputs)
    else:
        run = _torch_runner(graph, threads, inputs)
    warmup = max(warmup, 1)  # the first run is always untimed: a size the model cannot take fails there
    try:
        run()
    except Exception as exc:
        if isinstance(exc, MaseIRError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        size = ", ".join(f"{k} {v}" for k, v in (("batch", batch), ("seq-len", seq_len)) if v is not None)
        given = "; ".join(f"{name} [{_dims(shape)}]" for name, shape in sized.items())
        raise MaseIRError(f"the model cannot run at {size + ' ' if size else ''}({given}) with {runtime}: "
                          f"{first[:300]}") from None
    for _ in range(warmup - 1):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return summarize(runtime, batch, seq_len, threads, warmup, times, shapes=sized)


def _dim_sizes(graph: Graph, sized: dict[str, list[int]]) -> dict[str, int]:
    """Symbolic dim -> the size it has in the generated inputs."""
    return {d: sized[v.name][axis] for v in graph.inputs for axis, d in enumerate(v.type.shape)
            if isinstance(d, str)}


def summarize(runtime: str, batch: int | None, seq_len: int | None, threads: int, warmup: int,
              times: list[float], *, shapes: dict[str, list[int]] | None = None) -> BenchResult:
    """A BenchResult from per-run wall times in seconds; throughput counts ``batch``
    samples a run (one when ``batch`` is None)."""
    ms = sorted(t * 1000 for t in times)
    mean = statistics.fmean(ms)
    return BenchResult(runtime, batch, seq_len, threads, warmup, len(ms), round(_percentile(ms, 50), 3),
                       round(_percentile(ms, 90), 3), round(mean, 3), round((batch or 1) * 1000 / mean, 2),
                       shapes)


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default)."""
    import numpy as np

    return float(np.percentile(np.asarray(sorted_values), q))


def _ort_runner(graph: Graph, threads: int, inputs: list[np.ndarray]):
    runner = ort_session(graph, threads=threads)
    feeds = dict(zip(runner.input_names, inputs))
    session, outputs = runner.session, runner.output_names
    return lambda: session.run(outputs, feeds)


def _torch_runner(graph: Graph, threads: int, inputs: list[np.ndarray]):
    import torch

    from .lowering.torch import to_torch

    torch.set_num_threads(threads)
    module = to_torch(graph)  # lowered in eval mode
    tensors = [torch.from_numpy(a) for a in inputs]

    def run():
        with torch.inference_mode():
            return module(*tensors)
    return run
