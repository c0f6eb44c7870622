"""Plots of a sweep table (:mod:`maseir.sweep`): a measure against a varied argument.

``plot(read_table("bits.csv"), "acc_vs_bits.png", x="quantize.bits", y="accuracy")``
draws one line per combination of the other varied arguments (points in grid
order along ``x``: numbers on a numeric axis, names in the order the grid
gives them), the reference row as a dashed horizontal line, axis labels, a
legend, and a title naming the model and the dataset (from the JSON record
next to a CSV). When ``x`` is a measured column (``bits_per_weight``), the
lines are the combinations of the varied arguments other than the first,
which is taken to move along ``x``.

The figure is drawn with matplotlib's object API (a ``Figure``, no pyplot), so
no display and no global backend are involved, and written by
:func:`maseir.output.write_output` (atomically over a regular file). It only
reads the table.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from .dsl import DSLError, parse_value, print_value
from .errors import MaseIRError
from .output import Output, check_output, write_output

FORMATS = ("png", "svg", "pdf")
"""Picture formats a plot is written in, by the output's extension."""

LABELS = {
    "accuracy": "accuracy", "macro_f1": "macro-F1", "examples": "examples",
    "file_bytes": "file size (MB)", "bits_per_weight": "stored bits per weight",
    "format_bits_per_weight": "bits per weight (number formats)", "parameters": "parameters",
    "latency_ms_median": "median batch latency (ms)", "latency_ms_p90": "p90 batch latency (ms)",
    "throughput": "throughput (examples/s)", "threads": "threads", "seconds": "seconds per point",
    "eval_seconds": "evaluation seconds per point",
}
"""Axis labels of the measured columns."""

SCALES = {"file_bytes": 1e-6}
"""Columns drawn in other units than stored (bytes as MB)."""


@dataclass
class Table:
    """A sweep table read back: ``rows`` (dicts of typed values), the varied ``keys`` in
    grid order, and ``record`` (the JSON table's fields other than the rows; empty for a CSV
    without its JSON twin)."""

    rows: list[dict]
    keys: list[str]
    record: dict = field(default_factory=dict)

    @property
    def reference(self) -> dict | None:
        return next((r for r in self.rows if r.get("reference")), None)

    @property
    def points(self) -> list[dict]:
        return [r for r in self.rows if not r.get("reference")]


def read_table(path: str | os.PathLike) -> Table:
    """Read a sweep table: the CSV (varied columns are those with a dot in their name; their
    cells read as pipeline values, the measured ones as numbers) or the JSON. A CSV's JSON
    twin, when next to it, supplies the record (model, dataset). Raises MaseIRError for a
    missing or malformed file."""
    from .sweep import MEASURED, read_record

    path = Path(path)
    if path.suffix.lower() == ".json":
        record = read_record(path)
        keys = [v["key"] for v in record.get("vary", [])]
        rows = [dict(r, **{k: _tuple(r.get(k)) for k in keys}) for r in record["rows"]]
        return Table(rows, keys, {k: v for k, v in record.items() if k != "rows"})
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MaseIRError(f"{path}: no such table") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MaseIRError(f"{path}: cannot read the table: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    names = reader.fieldnames or []
    if "point" not in names or "reference" not in names:
        raise MaseIRError(f"{path}: not a sweep table (no point and reference columns)")
    keys = [n for n in names if "." in n]
    rows = []
    for line, raw in enumerate(reader, 2):
        row = {}
        for name, cell in raw.items():
            if name is None or cell is None:
                raise MaseIRError(f"{path}:{line}: the row does not have one cell per column")
            if name in keys:
                row[name] = _varied(cell, path, line, name)
            elif name == "reference":
                row[name] = cell == "true"
            elif name in MEASURED or name == "point":
                row[name] = _number(cell, path, line, name)
            elif name == "file":
                row[name] = cell or None  # no kept file
            else:
                row[name] = cell
        rows.append(row)
    record = {}
    twin = path.with_suffix(".json")
    if twin.is_file():
        try:
            record = {k: v for k, v in read_record(twin).items() if k != "rows"}
        except MaseIRError:
            record = {}
    return Table(rows, keys, record)


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value


def _varied(cell: str, path: Path, line: int, name: str):
    if cell == "":
        return None
    try:
        return parse_value(cell)
    except DSLError as exc:
        raise MaseIRError(f"{path}:{line}: column {name}: {cell!r} is not a pipeline value ({exc.message})") from None


def _number(cell: str, path: Path, line: int, name: str):
    if cell == "":
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    raise MaseIRError(f"{path}:{line}: column {name}: {cell!r} is not a number")


def check_axes(keys: list[str], x: str | None, y: str | None) -> tuple[str, str]:
    """The (x, y) columns to draw for a sweep varying ``keys``: ``x`` default the first key,
    ``y`` default accuracy. x is a varied key or a measured column, y a measured column.
    Raises MaseIRError listing the choices."""
    from .sweep import NUMERIC_COLUMNS

    x = x or (keys[0] if keys else None)
    y = y or "accuracy"
    if x not in keys and x not in NUMERIC_COLUMNS:
        raise MaseIRError(f"--x {x}: not a column of the table; choose a varied argument "
                          f"({', '.join(keys) or 'none'}) or one of {', '.join(NUMERIC_COLUMNS)}")
    if y not in NUMERIC_COLUMNS:
        raise MaseIRError(f"--y {y}: not a measured column; choose one of {', '.join(NUMERIC_COLUMNS)}")
    if x == y:
        raise MaseIRError(f"--x and --y are both {x}")
    return x, y


def plot_output(path: str | os.PathLike, *inputs: str | os.PathLike) -> Output:
    """The picture file ``path``, checked before any work (:func:`maseir.output.check_output`);
    its extension names the format (:data:`FORMATS`)."""
    name = os.fspath(path)
    fmt = Path(name).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise MaseIRError(f"{name}: a plot is written as {', '.join('.' + f for f in FORMATS)} (by its "
                          "extension)")
    return check_output(name, *inputs, dash_is_stdout=False)


def _label(column: str) -> str:
    return LABELS.get(column, column)


def _scaled(column: str, value):
    return None if value is None else value * SCALES.get(column, 1)


def plot(table: Table, output: str | os.PathLike | Output, *, x: str | None = None, y: str | None = None,
         title: str | None = None) -> int:
    """Draw ``y`` against ``x`` for ``table`` (see the module docstring) and write the picture
    to ``output`` (format by extension: :data:`FORMATS`). Returns the bytes written. Raises
    MaseIRError for unknown columns or a table without points."""
    from matplotlib.figure import Figure

    x, y = check_axes(table.keys, x, y)
    target = output if isinstance(output, Output) else plot_output(output)
    points = [r for r in table.points if r.get(y) is not None and r.get(x) is not None]
    if not points:
        raise MaseIRError(f"the table has no points with {x} and {y} to plot")
    along = x if x in table.keys else (table.keys[0] if table.keys else None)
    others = [k for k in table.keys if k != along]
    lines: dict[tuple, list[dict]] = {}
    for row in points:
        lines.setdefault(tuple(_show(row.get(k)) for k in others), []).append(row)
    numeric = all(isinstance(r[x], (int, float)) and not isinstance(r[x], bool) for r in points)

    figure = Figure(figsize=(7, 4.5), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    for combination, rows in lines.items():
        if numeric:
            rows = sorted(rows, key=lambda r: r[x])
        xs = [r[x] if numeric else _show(r[x]) for r in rows]
        label = ", ".join(f"{k}={v}" for k, v in zip(others, combination)) or table.record.get("model") or "sweep"
        axes.plot(xs, [_scaled(y, r[y]) for r in rows], marker="o", label=label)
    reference = table.reference
    if reference is not None and reference.get(y) is not None:
        what = table.record.get("reference")
        axes.axhline(_scaled(y, reference[y]), linestyle="--", color="0.4",
                     label="reference" + (f" ({what})" if what else ""))
    if numeric and x in table.keys:
        values = sorted({r[x] for r in points})
        if len(values) <= 12:  # a varied argument's values are the ticks
            axes.set_xticks(values, [_show(v) for v in values])
    axes.set_xlabel(_label(x))
    axes.set_ylabel(_label(y))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title(title or _title(table, x, y), fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(target.name).suffix.lower().lstrip("."))
    return write_output(target, [buffer.getvalue()])


def _show(value) -> str:
    if value is None:
        return ""
    return print_value(value) if isinstance(value, (tuple, int, float, str)) else str(value)


def _title(table: Table, x: str, y: str) -> str:
    head = f"{_label(y)} vs {_label(x)}"
    record = table.record
    model = record.get("model")
    settings = record.get("eval") or {}
    dataset = settings.get("dataset")
    if not model and not dataset:
        return head
    count = record.get("examples")
    on = f" on {dataset}" + (f" ({settings.get('split')}, {count:,} examples)" if count else "") if dataset else ""
    return f"{head}\n{model or 'model'}{on}"
