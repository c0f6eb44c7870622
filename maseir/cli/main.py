"""Entry point of the ``maseir`` command.

Each subcommand lives in its own module with ``add_parser`` and ``run``.
Those modules import only light modules at start-up (torch, onnx and numpy
are imported inside ``run`` where a command needs them), so ``--help``,
``show``, ``diff``, ``check --structure`` and ``passes`` answer at once;
``tests/test_cli_startup.py`` keeps it so.

User errors (MaseIRError) print one line, ``maseir: error: ...``, and exit 2;
``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from ..errors import MaseIRError
from . import HelpFormatter, apply, bench, check, diff, draw, export, import_, lower, passes, plot, show, sweep
from . import eval as eval_

COMMANDS = (export, show, check, apply, passes, diff, lower, import_, bench, eval_, sweep, plot, draw)

EXIT_USAGE = 2
EXIT_INTERNAL = 3


class _OneLineErrors:
    """argparse parsers whose usage errors are one line, ``maseir: error: ...``, exit 2,
    like every other bad input (argparse's own form is the usage text, then the error)."""

    def error(self, message: str):
        command = self.prog.removeprefix("maseir").strip()
        where = f"{command}: " if command else ""
        hint = f"maseir {command} --help" if command else "maseir --help"
        self.exit(EXIT_USAGE, f"maseir: error: {where}{message} (see '{hint}')\n")


class _Parser(_OneLineErrors, argparse.ArgumentParser):
    pass


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``maseir`` parser and each subcommand's parser by name."""
    from .. import __version__
    parser = _Parser(
        prog="maseir",
        description="Export, inspect and rewrite ML models as Mase IR (.mir) files.",
        epilog="examples:\n"
               "  maseir export minilm -o minilm.mir   # the embedded all-MiniLM-L6-v2 BERT\n"
               "  maseir show minilm.mir               # canonical text, one line per node\n"
               "  maseir check minilm.mir              # validate; exit 1 lists every problem\n"
               "  maseir apply lab0.pass m.mir -o out.mir   # run a pipeline of passes\n"
               "  maseir passes                        # the passes a pipeline can use\n"
               "  maseir diff m.mir out.mir            # what a rewrite changed\n"
               "  maseir draw m.mir -o m.svg --collapse 3   # a picture (Graphviz)\n"
               "run 'maseir COMMAND --help' for each command's options.",
        formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"maseir {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    common = _Parser(add_help=False)
    # SUPPRESS: a subcommand's --debug only sets the flag, never resets the top-level one.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_subparser_class(common))
    for module in COMMANDS:
        module.add_parser(sub)
    return parser, dict(sub.choices)


def _subparser_class(common: argparse.ArgumentParser):
    class SubcommandParser(_OneLineErrors, argparse.ArgumentParser):
        """A subcommand's parser: takes --debug too and wraps its help text."""

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("formatter_class", HelpFormatter)
            kwargs["parents"] = [*kwargs.get("parents", ()), common]
            super().__init__(*args, **kwargs)
    return SubcommandParser


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # report unknown options against the subcommand's usage, not the top-level one
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args) or 0
    except MaseIRError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"maseir: error: {_one_line(exc)}", file=sys.stderr)
        context = getattr(exc, "context", "")  # a pipeline error shows its line and a caret
        if context:
            print(context, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("maseir: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `maseir show m.mir | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug in maseir, not in the input
        if args.debug:
            traceback.print_exc()
        print(f"maseir: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
