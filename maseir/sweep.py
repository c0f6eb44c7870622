"""Sweeps: one pipeline run and one evaluation per point of a grid of argument values.

``sweep(graph, pipeline, {"quantize.bits": [4, 8]}, dataset="imdb", limit=1000,
table="bits.csv")`` runs the pipeline once per value, evaluates every result
(:func:`maseir.evaluate.evaluate`) and returns the table (also written to
``bits.csv`` and ``bits.json`` after every point). A sweep reads graphs and runs
pipelines; it is not a pass and rewrites nothing.

**Naming what varies** (``maseir sweep --vary STEP.ARG=V1,V2,...``). STEP is the
text before the first ``.``, ARG the rest (an argument name, dots allowed):

- ``quantize.bits``: the pipeline's one step with the verb ``quantize``;
- ``quantize#2.bits``: its second ``quantize`` step (in file order), for a
  pipeline with the same verb twice;
- ``fuse:lora.ARG``: the step written ``fuse lora`` (a verb and its object),
  ``fuse:lora#2`` the second of those;
- ``3.bits``: the pipeline's third step, numbered as ``maseir apply`` prints them.

ARG must be an argument the step's pass declares (``maseir passes``); a step
that does not write it gets it added at each point (its default is what varies).
Values are pipeline values (``4``, ``0.5``, ``l1``, ``"a b"``,
:func:`maseir.dsl.parse_value`), one point per comma-separated value, so an
argument that takes a list gets a one-item list per point. Several varied
arguments make a grid: every combination, the first varied argument changing
slowest. Every point's pipeline is validated before any work, so a bad value
is an error at its line and column in the pipeline file.

**Reuse.** The steps before the first varied step (a ``finetune``, a
``calibrate``) run once. Their output is the *reference*: it is evaluated once
(the table's reference row, e.g. the unquantized model) and every point runs
the rest of the pipeline from it, with the same seed, so a point's graph is
the one ``run_pipeline`` gives for the point's whole pipeline. With ``jobs`` >
1 the reference is saved once to a temporary .mir that each worker process
(multiprocessing's spawn context) loads once; tasks and results travel as
JSON text.

**The table** (:data:`COLUMNS`): a reference row (``point`` 0, ``reference``
true, no varied values, ``pipeline`` the shared steps) then one row per point
in grid order: ``point`` (1-based), ``reference`` false, one column per varied
argument (named by its key, ``quantize.bits``: the only column names with a
dot), then ``accuracy``, ``macro_f1``, ``examples``, ``file_bytes`` (the point's
saved .mir, measured on disk), ``bits_per_weight`` (stored),
``format_bits_per_weight``, ``parameters``, ``latency_ms_median`` and
``latency_ms_p90`` (per batch, the model call only), ``throughput``
(examples/s), ``threads``, ``seconds`` (running the point's steps, saving and
evaluating), ``eval_seconds``, ``digest`` (of the point's graph,
:func:`maseir.serialize.digest`), ``file`` (the kept .mir, or empty) and
``pipeline`` (the point's whole pipeline, canonical steps joined by ``; ``).
The JSON file holds the same rows with typed values, and what made them: the
model's digest, the canonical pipeline, the seed, the varied arguments and the
evaluation settings; ``resume`` refuses a table whose record differs and skips
the points it holds.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .arguments import require_graph
from .dsl import ArgValue, DSLError, Pipeline, Step, clip, parse, parse_value, print_step, print_value
from .errors import ArgumentError, MaseIRError
from .ir import Graph
from .output import Output, check_output, write_output

TABLE_FORMAT = "maseir-sweep"
TABLE_VERSION = 1
"""``format`` and ``version`` of the JSON table; a table of another format or version is not resumed."""

MEASURED = ("accuracy", "macro_f1", "examples", "file_bytes", "bits_per_weight", "format_bits_per_weight",
            "parameters", "latency_ms_median", "latency_ms_p90", "throughput", "threads", "seconds",
            "eval_seconds")
"""The table's measured columns, in order (between the varied values and ``digest``, ``file``, ``pipeline``)."""

NUMERIC_COLUMNS = MEASURED
"""Columns that hold numbers (what a plot can put on an axis besides a varied argument)."""

REFERENCE_NAME = "reference.mir"
"""The reference graph's file name in the ``keep`` folder (reused by ``resume``)."""

_REF = re.compile(r"(?:(?P<number>[0-9]+)|(?P<verb>[A-Za-z_][A-Za-z0-9_\-]*)"
                  r"(?::(?P<object>[A-Za-z_][A-Za-z0-9_\-/]*))?(?:#(?P<nth>[0-9]+))?)\Z")
_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\Z")
_SLUG = re.compile(r"[^A-Za-z0-9._=,+-]+")


def columns(keys: Sequence[str]) -> list[str]:
    """The table's columns for the varied ``keys``: point, reference, the keys, :data:`MEASURED`,
    digest, file, pipeline."""
    return ["point", "reference", *keys, *MEASURED, "digest", "file", "pipeline"]


COLUMNS = columns(["STEP.ARG ..."])
"""The table's columns, with a placeholder where the varied arguments go (see :func:`columns`)."""


# --- what varies ---------------------------------------------------------------------
@dataclass(frozen=True)
class Vary:
    """One varied argument: ``key`` as given (``quantize.bits``), the step it names
    (``step``: 0-based index into the pipeline's steps), the argument and its values."""

    key: str
    step: int
    arg: str
    values: tuple[ArgValue, ...]


@dataclass(frozen=True)
class Point:
    """One point of the grid: its 1-based ``index`` in grid order, its values (``(key,
    value)`` in the order of the varied arguments) and the whole pipeline with them."""

    index: int
    values: tuple[tuple[str, ArgValue], ...]
    pipeline: Pipeline

    @property
    def label(self) -> str:
        """``quantize.bits=4, prune.method=l1``."""
        return ", ".join(f"{k}={print_value(v)}" for k, v in self.values)


@dataclass(frozen=True)
class Plan:
    """A validated sweep: the pipeline, what varies, every point, and ``start``, the index of
    the first varied step (the steps before it are run once, see :attr:`prefix`)."""

    pipeline: Pipeline
    varies: tuple[Vary, ...]
    points: tuple[Point, ...]
    start: int

    @property
    def prefix(self) -> Pipeline:
        """The shared steps: those before the first varied step (maybe none)."""
        return Pipeline(self.pipeline.steps[:self.start], self.pipeline.source, self.pipeline.text)

    def suffix(self, point: Point) -> Pipeline:
        """What ``point`` runs from the reference graph: its pipeline from the first varied step on."""
        return Pipeline(point.pipeline.steps[self.start:], point.pipeline.source, point.pipeline.text)


def parse_vary(text: str) -> tuple[str, tuple[ArgValue, ...]]:
    """``STEP.ARG=V1,V2,...`` (a ``--vary`` option) -> (``STEP.ARG``, the values).

    The values are pipeline values (:func:`maseir.dsl.parse_value`), one per
    comma-separated item. Raises MaseIRError (naming the option and the column) for a
    missing ``=``, a key that is not ``STEP.ARG`` or values a pipeline would refuse."""
    key, sep, values = text.partition("=")
    key = key.strip()
    where = f"--vary {clip(text, 60)}"
    if not sep:
        raise MaseIRError(f"{where}: expected STEP.ARG=V1,V2,... (e.g. quantize.bits=4,8)")
    ref, dot, arg = key.partition(".")
    if not dot or not ref or not _REF.match(ref) or not _ARG.match(arg):
        raise MaseIRError(f"{where}: {clip(key)!r} is not STEP.ARG (STEP: a verb such as quantize, VERB#K for "
                          "the K-th step with that verb, VERB:OBJECT, or a step number; ARG: an argument name)")
    try:
        value = parse_value(values, "--vary")
    except DSLError as exc:
        raise MaseIRError(f"{where}: column {exc.column + len(key) + 1}: {exc.message}") from None
    return key, value if isinstance(value, tuple) else (value,)


def step_names(pipeline: Pipeline) -> list[str]:
    """For each step, the shortest STEP that names it in a ``--vary`` key (``quantize``,
    ``quantize#2``, ``fuse:lora``)."""
    names = []
    for i, step in enumerate(pipeline.steps):
        same_verb = [j for j, s in enumerate(pipeline.steps) if s.verb == step.verb]
        if len(same_verb) == 1:
            names.append(step.verb)
            continue
        same = [j for j, s in enumerate(pipeline.steps) if s.verb == step.verb and s.object == step.object]
        if step.object is not None and len(same) == 1:
            names.append(f"{step.verb}:{step.object}")
        else:
            names.append(f"{step.verb}#{same_verb.index(i) + 1}")
    return names


def describe_steps(pipeline: Pipeline) -> str:
    """``1 finetune (line 1), 2 lora (line 3)``: each step's number and STEP name."""
    parts = []
    for i, (step, name) in enumerate(zip(pipeline.steps, step_names(pipeline)), 1):
        where = f" (line {step.line})" if step.line else ""
        parts.append(f"{i} {name}{where}")
    return ", ".join(parts)


def resolve_step(ref: str, pipeline: Pipeline, where: str = "") -> int:
    """The 0-based index of the step that ``ref`` (the STEP of a ``--vary`` key) names in
    ``pipeline``. Raises MaseIRError, listing the steps, when it names none or several."""
    prefix = f"{where}: " if where else ""
    listing = f"; the steps of {pipeline.source}: {describe_steps(pipeline)}"
    match = _REF.match(ref)
    if match is None:
        raise MaseIRError(f"{prefix}{clip(ref)!r} is not a step name{listing}")
    steps = pipeline.steps
    if match["number"]:
        number = int(match["number"])
        if not 1 <= number <= len(steps):
            raise MaseIRError(f"{prefix}{pipeline.source} has no step {number} (it has {len(steps)}){listing}")
        return number - 1
    verb, obj, nth = match["verb"], match["object"], match["nth"]
    found = [i for i, s in enumerate(steps) if s.verb == verb and (obj is None or s.object == obj)]
    name = verb + (f":{obj}" if obj else "")
    if not found:
        verbs = sorted({s.verb for s in steps})
        close = difflib.get_close_matches(verb, verbs, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close and obj is None else ""
        raise MaseIRError(f"{prefix}no step {clip(name)!r} in {pipeline.source}{hint}{listing}")
    if nth is not None:
        k = int(nth)
        if not 1 <= k <= len(found):
            raise MaseIRError(f"{prefix}{pipeline.source} has {len(found)} {name} step"
                              f"{'s' if len(found) != 1 else ''}, so no {name}#{k}{listing}")
        return found[k - 1]
    if len(found) > 1:
        lines = ", ".join(str(steps[i].line) for i in found if steps[i].line)
        at = f" (lines {lines})" if lines else ""
        choices = " or ".join(f"{name}#{k}" for k in range(1, len(found) + 1))
        raise MaseIRError(f"{prefix}{pipeline.source} has {len(found)} {name} steps{at}: name one as {choices}, "
                          f"or by its number{listing}")
    return found[0]


def with_arg(step: Step, key: str, value: ArgValue) -> Step:
    """``step`` with the argument ``key`` set to ``value`` (added when the step does not write
    it); the other arguments keep their source columns, for error messages."""
    columns = step.arg_columns if len(step.arg_columns) == len(step.args) else (0,) * len(step.args)
    pairs = [((k, value if k == key else v), c) for (k, v), c in zip(step.args, columns)]
    if all(k != key for k, _ in step.args):
        pairs.append(((key, value), 0))
        pairs.sort(key=lambda p: p[0][0])  # stable, as the parser sorts
    return dataclasses.replace(step, args=tuple(a for a, _ in pairs), arg_columns=tuple(c for _, c in pairs))


def _plain_value(key: str, value) -> ArgValue:
    """A Python value given for ``key`` as a pipeline value: bool -> true/false, list -> tuple."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ArgumentError(f"--vary {key}: {value} cannot be written in a pipeline")
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float, str)) and
                                                          not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ArgumentError(f"--vary {key}: a value must be an int, a float, a string or a list of those, "
                        f"not {type(value).__name__}")


def plan_sweep(pipeline: Pipeline, vary: Mapping[str, Sequence[ArgValue]], seed: int = 0) -> Plan:
    """Check what ``vary`` names and build every point's pipeline, validated
    (:func:`maseir.passes.validate`), before any work.

    ``vary`` maps ``STEP.ARG`` keys (see the module docstring) to their values, in the
    order the grid takes them. Raises MaseIRError for an empty pipeline or ``vary``, a step
    the pipeline does not have (listing its steps), one argument varied twice, an empty or
    repeated value, and DSLError at the step's line and column in the pipeline file for an
    argument its pass does not declare (listing the arguments) or a value it refuses.
    """
    from .passes import validate

    if not isinstance(pipeline, Pipeline):
        raise ArgumentError(f"sweep: pipeline must be a maseir.dsl.Pipeline, not {type(pipeline).__name__}")
    if not isinstance(vary, Mapping):
        raise ArgumentError(f"sweep: vary must be a mapping of STEP.ARG to values, not {type(vary).__name__}")
    if not pipeline.steps:
        raise MaseIRError(f"{pipeline.source}: the pipeline has no steps (only blank lines and comments)")
    if not vary:
        raise MaseIRError("nothing to sweep: vary at least one argument (--vary STEP.ARG=V1,V2,...)")
    bound = validate(pipeline, seed)
    varies: list[Vary] = []
    for key, values in vary.items():
        if not isinstance(key, str):
            raise ArgumentError(f"sweep: a vary key must be a string STEP.ARG, not {type(key).__name__}")
        ref, dot, arg = key.partition(".")
        if not dot or not _ARG.match(arg):
            raise MaseIRError(f"--vary {clip(key)}: expected STEP.ARG (e.g. quantize.bits)")
        index = resolve_step(ref, pipeline, f"--vary {clip(key)}")
        step, spec = pipeline.steps[index], bound[index].spec
        if spec.arg(arg) is None:
            names = [a.name for a in spec.args]
            close = difflib.get_close_matches(arg, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            choices = f"; arguments: {', '.join(names)}" if names else "; it takes no arguments"
            raise DSLError(f"--vary {clip(key)}: {spec.name} has no argument {clip(arg)!r}{hint}{choices}",
                           source=pipeline.source, line=step.line, column=step.column, text=pipeline.text)
        twice = next((v for v in varies if v.step == index and v.arg == arg), None)
        if twice is not None:
            raise MaseIRError(f"--vary {clip(key)}: the same argument as --vary {twice.key}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            values = [values]
        plain = tuple(_plain_value(key, v) for v in values)
        if not plain:
            raise MaseIRError(f"--vary {clip(key)}: no values")
        seen = set()
        for v in plain:
            if print_value(v) in seen:
                raise MaseIRError(f"--vary {clip(key)}: value {clip(print_value(v))} given twice")
            seen.add(print_value(v))
        for v in plain:  # one change at a time, so an error names the value that caused it
            _validated(Pipeline(tuple(with_arg(s, arg, v) if i == index else s
                                      for i, s in enumerate(pipeline.steps)), pipeline.source, pipeline.text),
                       seed, f"--vary {key}={print_value(v)}")
        varies.append(Vary(key, index, arg, plain))
    points = []
    for n, combination in enumerate(itertools.product(*(v.values for v in varies)), 1):
        steps = list(pipeline.steps)
        for v, value in zip(varies, combination):
            steps[v.step] = with_arg(steps[v.step], v.arg, value)
        point = Point(n, tuple((v.key, value) for v, value in zip(varies, combination)),
                      Pipeline(tuple(steps), pipeline.source, pipeline.text))
        _validated(point.pipeline, seed, f"point {point.label}")
        points.append(point)
    return Plan(pipeline, tuple(varies), tuple(points), min(v.step for v in varies))


def _validated(pipeline: Pipeline, seed: int, what: str) -> None:
    from .passes import validate
    try:
        validate(pipeline, seed)
    except DSLError as exc:
        raise DSLError(f"{exc.message} ({what})", source=exc.source, line=exc.line, column=exc.column,
                       text=pipeline.text) from None


# --- the table -----------------------------------------------------------------------
def table_outputs(path: str | os.PathLike, *inputs: str | os.PathLike) -> tuple[Output, Output]:
    """The CSV table ``path`` (it must end in ``.csv``) and the JSON table next to it
    (``.json``), both checked as outputs (:func:`maseir.output.check_output`) before any
    work. They are rewritten after every point, so they must be files, not streams.
    ``inputs`` (the model, the pipeline) may be neither. Raises OutputError / MaseIRError."""
    name = os.fspath(path)
    if Path(name).suffix.lower() != ".csv":
        raise MaseIRError(f"{name}: the sweep table is a .csv file (its JSON twin is written next to it); "
                          "name it *.csv")
    json_name = str(Path(name).with_suffix(".json"))
    outputs = []
    for each in (name, json_name):
        target = check_output(each, *inputs, dash_is_stdout=False)
        if target.stream:
            raise MaseIRError(f"{each}: the sweep table is rewritten after every point, so it must be a "
                              "regular file, not a stream")
        outputs.append(target)
    return outputs[0], outputs[1]


def _json_value(value):
    return list(value) if isinstance(value, tuple) else value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return print_value(tuple(value))
    return str(value)


def write_table(csv_output: Output | str | os.PathLike, json_output: Output | str | os.PathLike, meta: dict,
                rows: list[dict]) -> None:
    """Write ``rows`` (dicts with :func:`columns`'s keys) to the CSV table and, with ``meta``
    (what made them), to the JSON table, each atomically (:func:`maseir.output.write_output`):
    the JSON first, so a CSV on disk always has its record. Varied values are written in the
    CSV as a pipeline writes them (``4``, ``l1``, ``"a b"``, ``query,value``)."""
    import csv
    import io

    keys = [v["key"] for v in meta["vary"]]
    names = columns(keys)
    document = dict(meta, columns=names, rows=[{k: _json_value(r.get(k)) for k in names} for r in rows])
    write_output(json_output, [(json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in names])
    write_output(csv_output, [buffer.getvalue().encode()])


def read_record(path: str | os.PathLike) -> dict:
    """The JSON table at ``path``. Raises MaseIRError for a file that is missing, not JSON or
    not a sweep table of this version."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaseIRError(f"{path}: no such sweep table") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaseIRError(f"{path}: not a sweep table ({clip(str(exc), 100)})") from None
    if not isinstance(document, dict) or document.get("format") != TABLE_FORMAT or \
            not isinstance(document.get("rows"), list):
        raise MaseIRError(f"{path}: not a sweep table (no format {TABLE_FORMAT!r} record)")
    if document.get("version") != TABLE_VERSION:
        raise MaseIRError(f"{path}: a sweep table of version {document.get('version')}; this maseir reads "
                          f"version {TABLE_VERSION}")
    return document


RECORD_KEYS = ("model_digest", "pipeline", "seed", "vary", "eval", "examples_digest")
"""What a table records of how it was made, and what ``resume`` must find the same."""

_RECORD_NAMES = {"model_digest": "model (digest)", "pipeline": "pipeline", "seed": "seed",
                 "vary": "varied arguments", "eval": "evaluation settings", "examples_digest": "examples (digest)"}


def finished_rows(path: str | os.PathLike, meta: dict) -> dict[int, dict]:
    """The rows of the JSON table at ``path`` by point (0: the reference), after checking it
    was made the way ``meta`` says this sweep is (:data:`RECORD_KEYS`). A missing table gives
    no rows. Raises MaseIRError naming what differs."""
    if not Path(path).exists():
        return {}
    document = read_record(path)
    differ = [k for k in RECORD_KEYS if _normal(document.get(k)) != _normal(meta[k])]
    if differ:
        what = []
        for k in differ:
            old, new = document.get(k), meta[k]
            shown = f"{clip(json.dumps(old), 60)} there, {clip(json.dumps(new), 60)} now"
            what.append(f"{_RECORD_NAMES[k]}: {shown}")
        raise MaseIRError(f"{path}: cannot resume: the table was made by another sweep ({'; '.join(what)}); "
                          "give another --out, or leave out --resume to start again")
    rows = {}
    for row in document["rows"]:
        if isinstance(row, dict) and isinstance(row.get("point"), int):
            rows[row["point"]] = row
    return rows


def _normal(value):
    return json.loads(json.dumps(value))


# --- running -------------------------------------------------------------------------
def _measure(graph: Graph, path: Path, settings: dict, threads: int | None) -> tuple[dict, float]:
    """Save ``graph`` to ``path`` and evaluate it: (the measured columns, eval seconds)."""
    from .evaluate import evaluate
    from .io import save
    from .serialize import digest

    save(graph, path)
    began = time.perf_counter()
    r = evaluate(graph, path=path, progress=False, threads=threads, **settings)
    eval_seconds = time.perf_counter() - began
    row = {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "examples": r["examples"],
           "file_bytes": r["file_bytes"], "bits_per_weight": r["bits_per_weight"],
           "format_bits_per_weight": r["format_bits_per_weight"], "parameters": r["parameters"],
           "latency_ms_median": r["latency_ms"]["median"], "latency_ms_p90": r["latency_ms"]["p90"],
           "throughput": r["throughput"], "threads": r["threads"], "digest": digest(graph)}
    return row, eval_seconds


def run_point(start: Graph, steps: Pipeline, path: Path, settings: dict, *, seed: int = 0,
              threads: int | None = None, first: int = 1) -> tuple[Graph, dict]:
    """Run ``steps`` over ``start``, save the result to ``path`` and evaluate it with
    ``settings`` (keyword arguments of :func:`maseir.evaluate.evaluate`). Returns the graph
    and its measured columns (with ``seconds`` and ``eval_seconds``). ``first`` is the number
    of the first of ``steps`` in the whole pipeline: a step that fails (PassError) is named
    by its number there."""
    from .passes import PassError, run_pipeline

    began = time.perf_counter()
    ran: list = []
    try:
        graph, _ = run_pipeline(start, steps, seed=seed, on_step=ran.append)
    except PassError as exc:
        step = steps.steps[len(ran)]
        where = f"{steps.source}:{step.line}:{step.column}: " if step.line else ""
        raise PassError(f"{where}step {first + len(ran)} ({print_step(step)}): {exc.__cause__ or exc}") from exc
    row, eval_seconds = _measure(graph, path, settings, threads)
    row.update(seconds=round(time.perf_counter() - began, 3), eval_seconds=round(eval_seconds, 3))
    return graph, row


def _point_file(folder: Path, point: Point) -> Path:
    slug = _SLUG.sub("_", "_".join(f"{k}={print_value(v)}" for k, v in point.values))[:120]
    return folder / f"{point.index:03d}-{slug}.mir"


def _row(point: Point | None, plan: Plan, measured: dict, file: Path | None) -> dict:
    pipeline = plan.prefix if point is None else point.pipeline
    row = {"point": 0 if point is None else point.index, "reference": point is None}
    row.update({v.key: None for v in plan.varies} if point is None else dict(point.values))
    row.update(measured)
    row.update(file=None if file is None else str(file), pipeline="; ".join(print_step(s) for s in pipeline.steps))
    return row


def sweep(graph: Graph, pipeline: Pipeline, vary: Mapping[str, Sequence[ArgValue]], *, dataset: str = "imdb",
          split: str | None = None, limit: int | None = None, runtime: str = "onnxruntime", batch_size: int = 32,
          seq_len: int = 128, text_column: str | None = None, label_column: str | None = None, seed: int = 0,
          jobs: int = 1, threads: int | None = None, table: str | os.PathLike | None = None,
          resume: bool = False, keep: str | os.PathLike | None = None, progress: bool | None = None,
          model_name: str | None = None,
          on_row: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    """Run ``pipeline`` over ``graph`` once per point of the grid ``vary`` and evaluate each
    result; returns the table's rows (the reference row first, then the points in grid order;
    columns as the module docstring says). ``graph`` is never modified.

    ``vary``: ``{"STEP.ARG": [values]}`` (see the module docstring and :func:`plan_sweep`).
    ``dataset``, ``split`` (default: test where the dataset has one, else its only split),
    ``limit``, ``runtime``, ``batch_size``, ``seq_len``, ``text_column``, ``label_column``: the
    evaluation, as in :func:`maseir.evaluate.evaluate`. ``seed``: the pipeline seed (as
    ``maseir apply --seed``). ``jobs``: points evaluated at once in worker processes (1: in
    this process); ``threads``: intra-op threads per job (default: the usable cores // jobs).
    ``table``: the CSV file (its JSON next to it), rewritten after every point; ``resume``:
    keep the rows of an existing table made by the same sweep and run only the other points.
    ``keep``: a folder for each point's .mir (and ``reference.mir``; created if missing);
    otherwise each point is saved to a temporary file, to measure its size, and removed.
    ``progress``: a bar over the points on stderr (None: when stderr is a terminal).
    ``model_name``: what the table calls the model (default: its metadata's source, else
    ``model``). ``on_row(row, done, total)`` is called after each row.

    Everything that can be checked is checked before any step runs: the pipeline and every
    point (:func:`plan_sweep`), the evaluation settings, the dataset, its columns and labels
    against the model's head, the outputs, and (with ``resume``) the table's record. Raises
    MaseIRError for those, and for a step or an evaluation that fails (naming the point; the
    table then holds the points finished before it).
    """
    from .data import Encoder, default_split, head_labels, label_ids, load_split, num_labels
    from .io import producer
    from .progress import progress_bar
    from .runtime import RUNTIMES, default_threads
    from .serialize import digest

    require_graph(graph, "sweep")
    plan = plan_sweep(pipeline, vary, seed)
    if runtime not in RUNTIMES:
        raise MaseIRError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    for name, value in (("jobs", jobs), ("threads", threads), ("batch size", batch_size), ("limit", limit)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise MaseIRError(f"{name} must be a whole number of at least 1 (got {value!r})")
    if jobs > 1 and threads is None:
        threads = max(1, default_threads() // jobs)
    split = split or default_split(dataset)
    examples = load_split(dataset, split, limit=limit, text_column=text_column, label_column=label_column)
    label_ids(examples, head_labels(graph), num_labels(graph))
    Encoder(graph, seq_len)
    settings = {"dataset": dataset, "split": split, "limit": limit, "runtime": runtime, "batch_size": batch_size,
                "seq_len": seq_len, "text_column": text_column, "label_column": label_column}
    if resume and table is None:
        raise MaseIRError("resume needs the table to resume from")
    outputs = table_outputs(table) if table is not None else None

    meta = {
        "format": TABLE_FORMAT, "version": TABLE_VERSION, "producer": producer(),
        "model": model_name or graph.metadata.get("source") or "model", "model_digest": digest(graph),
        "pipeline_source": plan.pipeline.source, "pipeline": "; ".join(print_step(s) for s in plan.pipeline.steps),
        "seed": seed,
        "vary": [{"key": v.key, "step": v.step + 1, "arg": v.arg, "values": [_json_value(x) for x in v.values]}
                 for v in plan.varies],
        "eval": settings, "dataset": examples.source, "examples": len(examples),
        "examples_digest": examples.digest(), "points": len(plan.points),
        "reference": f"before {step_names(plan.pipeline)[plan.start]}",
    }
    done = finished_rows(outputs[1].path, meta) if resume and outputs is not None else {}
    rows = {n: r for n, r in done.items() if n == 0 or 1 <= n <= len(plan.points)}
    for point in plan.points:  # a row must be this point's, value for value
        row = rows.get(point.index)
        if row is not None and [_normal(row.get(k)) for k, _ in point.values] != \
                [_normal(_json_value(v)) for _, v in point.values]:
            raise MaseIRError(f"{outputs[1].path}: cannot resume: its row {point.index} is not point "
                              f"{point.label}")
    todo = [p for p in plan.points if p.index not in rows]
    total = len(plan.points) + 1
    keep_dir = _keep_folder(keep) if keep is not None else None

    with tempfile.TemporaryDirectory(prefix="maseir-sweep-") as scratch, \
            progress_bar(total=total, desc="sweep", unit="point", enabled=progress) as bar:
        def record(point: Point | None, measured: dict, path: Path | None) -> None:
            row = _row(point, plan, measured, path)
            rows[row["point"]] = row
            if outputs is not None:
                write_table(outputs[0], outputs[1], meta, [rows[n] for n in sorted(rows)])
            bar.update(1)
            bar.set_postfix(accuracy=f"{measured['accuracy']:.4f}")
            if on_row is not None:
                on_row(row, len(rows), total)

        bar.update(len(rows))
        folder = keep_dir or Path(scratch)
        reference_path = folder / REFERENCE_NAME
        reference_graph = None
        if 0 not in rows or todo:
            reference_graph = _reuse(reference_path, rows.get(0)) if keep_dir else None
            if reference_graph is None:
                try:
                    reference_graph, measured = run_point(graph, plan.prefix, reference_path, settings,
                                                          seed=seed, threads=threads)
                except MaseIRError as exc:
                    raise MaseIRError(f"the reference (the model before {step_names(plan.pipeline)[plan.start]})"
                                      f": {exc}") from exc
                if 0 not in rows:
                    record(None, measured, reference_path if keep_dir else None)
                elif measured["digest"] != rows[0].get("digest"):
                    raise MaseIRError(f"{outputs[1].path}: cannot resume: the shared steps gave another graph "
                                      f"than the table's reference row records (digest {measured['digest'][:12]}, "
                                      f"not {str(rows[0].get('digest'))[:12]}), so they are not deterministic "
                                      "here; leave out --resume to start again")
        if todo and jobs == 1:
            for point in todo:
                path = _point_file(folder, point)
                try:
                    _, measured = run_point(reference_graph, plan.suffix(point), path, settings, seed=seed,
                                            threads=threads, first=plan.start + 1)
                except MaseIRError as exc:
                    raise _point_failed(point, str(exc), len(rows)) from exc
                if keep_dir is None:
                    path.unlink()
                record(point, measured, path if keep_dir else None)
        elif todo:
            _run_workers(plan, todo, reference_graph, reference_path, Path(scratch), keep_dir, settings, seed,
                         jobs, threads, record, lambda: len(rows))
    return [rows[n] for n in sorted(rows)]


def _keep_folder(keep) -> Path:
    folder = Path(keep)
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:
        raise MaseIRError(f"{keep}: not a folder (--keep takes a folder for the points' .mir files)") from None
    except OSError as exc:
        raise MaseIRError(f"{keep}: cannot create the folder: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise MaseIRError(f"{keep}: not a folder (--keep takes a folder for the points' .mir files)")
    check_output(folder / REFERENCE_NAME, dash_is_stdout=False)  # writable: refused now, not after the work
    return folder


def _reuse(path: Path, row: dict | None) -> Graph | None:
    """The kept reference graph at ``path`` when it is the one the table's reference row records."""
    from .io import load
    from .serialize import digest

    if row is None or not path.is_file():
        return None
    try:
        graph = load(path)
    except MaseIRError:
        return None
    return graph if digest(graph) == row.get("digest") else None


def _point_failed(point: Point, message: str, finished: int) -> MaseIRError:
    return MaseIRError(f"point {point.index} ({point.label}): {message} (the table holds the {finished} rows "
                       "finished before it; fix the cause and rerun with --resume)")


# --- worker processes ----------------------------------------------------------------
_WORKER: dict = {}


def _worker_start(reference_path: str, threads: int | None) -> None:
    """Pool initializer: load the reference graph once per worker process."""
    import torch

    from .io import load

    if threads:
        torch.set_num_threads(threads)
    _WORKER["graph"] = load(reference_path)
    _WORKER["threads"] = threads


def _from_json(value):
    return tuple(value) if isinstance(value, list) else value


def _worker_point(task_text: str) -> str:
    """Run one point from its JSON task (the pipeline text, the point's changes, the eval
    settings); the answer is JSON too: ``{"measured": ...}`` or ``{"error": ..., "user": bool}``."""
    task = json.loads(task_text)
    try:
        pipeline = parse(task["text"], task["source"])
        steps = list(pipeline.steps)
        for index, arg, value in task["changes"]:
            steps[index] = with_arg(steps[index], arg, _from_json(value))
        suffix = Pipeline(tuple(steps[task["start"]:]), pipeline.source, pipeline.text)
        path = Path(task["path"])
        _, measured = run_point(_WORKER["graph"], suffix, path, task["settings"], seed=task["seed"],
                                threads=_WORKER["threads"], first=task["start"] + 1)
        if not task["keep"]:
            path.unlink()
        return json.dumps({"measured": measured})
    except MaseIRError as exc:
        return json.dumps({"error": str(exc), "user": True})
    except Exception as exc:  # a bug: reported by the parent as one
        return json.dumps({"error": f"{type(exc).__name__}: {exc}", "user": False})


def _run_workers(plan: Plan, todo: list[Point], reference: Graph, reference_path: Path, scratch: Path,
                 keep_dir: Path | None, settings: dict, seed: int, jobs: int, threads: int | None,
                 done: Callable, finished: Callable[[], int]) -> None:
    import multiprocessing

    from .io import save

    if not reference_path.is_file():
        save(reference, reference_path)
    text = plan.pipeline.text
    if not text or parse(text, plan.pipeline.source).steps != plan.pipeline.steps:
        text = "".join(print_step(s) + "\n" for s in plan.pipeline.steps)  # a pipeline not parsed from text
    by_index = {p.index: p for p in todo}
    tasks = []
    for point in todo:
        changes = [[v.step, v.arg, _json_value(value)] for v, (_, value) in zip(plan.varies, point.values)]
        path = _point_file(keep_dir or scratch, point)
        tasks.append(json.dumps({"index": point.index, "source": plan.pipeline.source, "text": text,
                                 "changes": changes, "start": plan.start, "settings": settings, "seed": seed,
                                 "path": str(path), "keep": keep_dir is not None}))
    context = multiprocessing.get_context("spawn")  # never fork a process that has started torch threads
    pool = context.Pool(min(jobs, len(tasks)), initializer=_worker_start, initargs=(str(reference_path), threads))
    try:
        for task, answer in zip(tasks, pool.imap(_worker_point, tasks)):
            # imap keeps grid order, so a table after a failure holds a prefix of the points
            task, result = json.loads(task), json.loads(answer)
            point = by_index[task["index"]]
            if "error" in result:
                if result["user"]:
                    raise _point_failed(point, result["error"], finished())
                raise RuntimeError(f"point {point.index} ({point.label}) failed in a worker: {result['error']}")
            done(point, result["measured"], Path(task["path"]) if keep_dir else None)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
