"""``maseir plot TABLE.csv -o FILE.png``: draw a sweep table (it only reads the table)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot", help="draw a sweep table: a measure against a varied argument",
        description="Draw --y against --x from a table written by 'maseir sweep' (the CSV, or its JSON "
                    "record): one line per combination of the other varied arguments, the reference row as "
                    "a dashed horizontal line, axis labels, a legend, and a title naming the model and the "
                    "dataset (from the JSON next to a CSV). The format follows the output's extension "
                    "(.png, .svg, .pdf).",
        epilog="examples:\n"
               "  maseir plot acc_vs_bits.csv -o acc_vs_bits.png\n"
               "  maseir plot sparsity.csv -o size.png --x prune.sparsity --y file_bytes\n"
               "  maseir plot bits.json -o acc_vs_bpw.svg --x bits_per_weight",
)
    p.add_argument("table", metavar="TABLE", help="the sweep table (.csv or .json)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="the picture to write")
    p.add_argument("--x", default=None, help="the x column: a varied argument or a measured column "
                                             "(default: the first varied argument)")
    p.add_argument("--y", default=None, help="the y column: a measured column (default: accuracy)")
    p.add_argument("--title", default=None, help="the title (default: y vs x, the model and the dataset)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..plot import check_axes, plot, plot_output, read_table

    target = plot_output(args.output, args.table)
    table = read_table(args.table)
    check_axes(table.keys, args.x, args.y)
    nbytes = plot(table, target, x=args.x, y=args.y, title=args.title)
    print(f"wrote {args.output} ({nbytes:,} bytes, {len(table.points)} points)")
    return 0
