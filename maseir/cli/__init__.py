"""The ``maseir`` command: one module per subcommand, wired up in ``main``."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from ..errors import MaseIRError


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


def check_output(output: str, *inputs: str) -> Path:
    """The output path of a command that writes a file, refused when its folder
    does not exist or when it is one of the command's inputs or an input's
    external data file (inputs are never modified)."""
    path = Path(output).resolve()
    protected = {Path(i).resolve() for i in inputs} | {Path(i + ".data").resolve() for i in inputs}
    if path in protected:
        raise MaseIRError(f"{output}: the output must not be an input file or its data "
                          "(inputs are never modified)")
    if not path.parent.is_dir():
        raise MaseIRError(f"{output}: folder {Path(output).parent} does not exist")
    return Path(output)


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


def report_written(graph, output: str, source: str, seconds: float, as_json: bool, **extra) -> None:
    """Print what a command that made a .mir wrote: one line, or JSON with ``extra``."""
    import json
    import os

    summary = {"output": str(output), "source": source, "nodes": len(graph.nodes), "params": len(graph.params),
               "parameters": graph.param_count(), **extra, "bytes": os.path.getsize(output),
               "seconds": round(seconds, 2)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {output}: {summary['nodes']} nodes, {summary['parameters']:,} parameters, "
              f"{summary['bytes'] / 1e6:.1f} MB in {seconds:.1f}s")
