"""The ``maseir`` command: one module per subcommand, wired up in ``main``."""

from __future__ import annotations

import argparse
import sys
import textwrap

from ..errors import MaseIRError
from ..output import Output, check_output  # noqa: F401  (commands check their outputs before working)


class HelpFormatter(argparse.HelpFormatter):
    """argparse help that wraps descriptions to the terminal width but keeps
    indented lines (examples) and the lines of an ``examples:`` block as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out, paragraph = [], []

        def flush() -> None:
            if paragraph:
                out.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent,
                                         subsequent_indent=indent))
                paragraph.clear()
        for line in text.splitlines():
            if not line.strip() or line.startswith((" ", "\t")) or line.rstrip().endswith(":"):
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(out)


def report_stream(output: Output | None):
    """Where a command prints its reports: standard output, unless the output file goes there."""
    return sys.stderr if output is not None and output.shares_stdout else sys.stdout


def load_valid(path: str):
    """The graph in the .mir at ``path``, refused (one line) when ``maseir check``
    would find problems in it, so commands never run on a malformed graph."""
    from ..io import load
    from ..validate import check

    graph = load(path)
    problems = check(graph, checksums=False)  # load already verified the checksums
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MaseIRError(f"{path}: invalid graph: {problems[0]}{more}; run 'maseir check {path}'")
    return graph


def report_written(graph, output: Output, source: str, seconds: float, as_json: bool, *, nbytes: int,
                   **extra) -> None:
    """Print what a command that made a .mir wrote (``nbytes`` to ``output``): one line, or JSON
    with ``extra``; on standard error when the .mir itself went to standard output."""
    import json

    summary = {"output": str(output), "source": source, "nodes": len(graph.nodes), "params": len(graph.params),
               "parameters": graph.param_count(), **extra, "bytes": nbytes, "seconds": round(seconds, 2)}
    stream = report_stream(output)
    if as_json:
        print(json.dumps(summary, indent=2), file=stream)
    else:
        print(f"wrote {output}: {summary['nodes']} nodes, {summary['parameters']:,} parameters, "
              f"{summary['bytes'] / 1e6:.1f} MB in {seconds:.1f}s", file=stream)
