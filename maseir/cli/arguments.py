"""Argument types and options that several ``maseir`` subcommands share.

Count-like options take ``non_negative_int`` or ``positive_int`` as their
argparse ``type=``, so a bad value is argparse's own one-line usage error
(exit 2) before any file is read. ``add_external_data_threshold`` gives every
command that writes a file the same ``--external-data-threshold`` option, and
``output_threshold`` the rule those commands follow when it is not given: keep
the input's layout.
"""

from __future__ import annotations

import argparse


def _int_at_least(low: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what} (got {value})")
        return value
    parse.__name__ = f"int >= {low}"  # argparse names the type in some messages
    return parse


non_negative_int = _int_at_least(0, "0 or more")
"""argparse ``type=`` for counts and sizes that may be 0 (byte thresholds, warm-up runs)."""

positive_int = _int_at_least(1, "at least 1")
"""argparse ``type=`` for counts that must be at least 1 (batch size, repeats, threads)."""


def input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """argparse ``type=`` for ``NAME=D1,D2,...``: a graph input's name and its
    concrete shape, every size at least 1 (``NAME=`` is a scalar)."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=D1,D2,... (e.g. pixel_values=1,3,224,224)")
    sizes = []
    for item in filter(None, (d.strip() for d in dims.split(","))):
        try:
            sizes.append(positive_int(item))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text!r}: sizes must be whole numbers of at least 1, "
                                             f"not {item!r}") from None
    return name, tuple(sizes)


def add_external_data_threshold(parser, *, keeps_input_layout: bool) -> None:
    """Add ``--external-data-threshold BYTES`` (0 or more) to ``parser``. With
    ``keeps_input_layout`` the help says that, when it is not given, the output
    keeps the input's layout (see ``output_threshold``)."""
    default = ("default: the input's layout: external data from the size of the input's smallest "
               "external tensor up, or one file when the input has none; a BYTES larger than every "
               "tensor writes one file" if keeps_input_layout else "default: one file")
    parser.add_argument("--external-data-threshold", type=non_negative_int, metavar="BYTES",
                        help=f"store tensors of at least BYTES in OUTPUT.data next to the output ({default})")


def output_threshold(requested: int | None, model_path: str | None, output=None,
                     inherited: int | None = None) -> int | None:
    """The external-data threshold for a file written from the .mir at ``model_path``:
    ``requested`` when given, otherwise the input's own (``maseir.io.external_data_threshold``,
    or ``inherited`` when the caller knows it), so a rewrite of a file stored with external
    data is stored the same way. An ``output`` (a checked ``maseir.output.Output``) that takes
    no side file (a pipe, standard output, a link into another folder, a name too long for
    ``.data`` to be added) gets one file instead:
    the input's layout is a default, not a demand (an explicit ``requested`` is checked by
    ``check_output``'s ``side_file``)."""
    if requested is not None:
        return requested
    if inherited is None and model_path is not None:
        from ..io import external_data_threshold
        inherited = external_data_threshold(model_path)
    if inherited is not None and output is not None:
        from ..output import side_file_problem
        if side_file_problem(output):
            return None
    return inherited
