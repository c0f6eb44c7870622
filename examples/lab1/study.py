"""Lab 1's figures and tables from the sweep tables run.sh wrote (examples/lab1/out/).

    .venv/bin/python examples/lab1/study.py examples/lab1/out

Writes acc_vs_bits.png (PTQ with frac auto, PTQ with frac = bits/2, QAT, and
the fp32 model as a dashed line), acc_vs_sparsity.png (random and l1, without
and with retraining, fp32 dashed), and prints the tables as markdown: the
numbers in examples/lab1/README.md come from here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

from maseir.plot import read_table


def rows(table) -> list[dict]:
    return [r for r in table.rows if not r.get("reference")]


def cell(values: dict, key) -> str:
    """An accuracy from ``values`` (key: bits or sparsity) as a table cell; a dash where none was run."""
    return f"{values[key]['accuracy']:.4f}" if key in values else "—"


def bits_study(out: Path) -> tuple[list[str], float]:
    auto, qat = read_table(out / "ptq-auto.csv"), read_table(out / "qat.csv")
    half = {b: read_table(out / f"ptq-half-{b}.csv") for b in (4, 6, 8, 12, 16)}
    reference = auto.reference["accuracy"]
    lines = {"PTQ, frac auto": [(r["quantize.bits"], r) for r in rows(auto)],
             "PTQ, frac = bits/2": [(b, rows(t)[0]) for b, t in half.items()],
             "QAT (1 epoch, 2,000 reviews), frac auto": [(r["quantize.bits"], r) for r in rows(qat)]}
    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for label, points in lines.items():
        axes.plot([b for b, _ in points], [r["accuracy"] for _, r in points], marker="o", label=label)
    axes.axhline(reference, linestyle="--", color="grey", label=f"fp32 ({reference:.4f})")
    axes.set_xlabel("bits (weights, biases and inputs of every linear layer)")
    axes.set_ylabel(f"IMDb test accuracy ({auto.reference['examples']:,} reviews)")
    axes.set_xticks([4, 6, 8, 12, 16])
    axes.set_title("fine-tuned MiniLM: fixed-point quantization")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out.parent / "acc_vs_bits.png", dpi=110)
    table = ["| bits | PTQ frac auto | PTQ frac = bits/2 | QAT frac auto | .mir MB (PTQ auto) | bits/weight |",
             "|---|---|---|---|---|---|"]
    by = [dict(points) for points in lines.values()]
    for bits, a in sorted(by[0].items()):
        table.append(f"| {bits} | {cell(by[0], bits)} | {cell(by[1], bits)} | {cell(by[2], bits)} "
                     f"| {a['file_bytes'] / 1e6:.1f} | {a['bits_per_weight']:.2f} |")
    table.append(f"| fp32 | {reference:.4f} | | | {auto.reference['file_bytes'] / 1e6:.1f} "
                 f"| {auto.reference['bits_per_weight']:.2f} |")
    return table, reference


def sparsity_study(out: Path) -> list[str]:
    plain, retrained = read_table(out / "prune.csv"), read_table(out / "prune-retrain.csv")
    reference = plain.reference["accuracy"]
    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    table = ["| sparsity | random | random + retrain | l1 | l1 + retrain |", "|---|---|---|---|---|"]
    by = {}
    for name, t in (("", plain), (" + retrain", retrained)):
        for method in ("random", "l1"):
            points = sorted((r["prune.sparsity"], r["accuracy"]) for r in rows(t) if r["prune.method"] == method)
            by[method + name] = {s: {"accuracy": a} for s, a in points}
            axes.plot([s for s, _ in points], [a for _, a in points], marker="o",
                      linestyle="-" if name else ":", label=f"{method}{name}")
    axes.axhline(reference, linestyle="--", color="grey", label=f"fp32 ({reference:.4f})")
    axes.set_xlabel("sparsity of every linear layer's weights (local)")
    axes.set_ylabel(f"IMDb test accuracy ({plain.reference['examples']:,} reviews)")
    axes.set_title("fine-tuned MiniLM: unstructured pruning")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out.parent / "acc_vs_sparsity.png", dpi=110)
    for s in sorted(by["l1"]):
        table.append(f"| {s:.1f} | {cell(by['random'], s)} | {cell(by['random + retrain'], s)} | {cell(by['l1'], s)} "
                     f"| {cell(by['l1 + retrain'], s)} |")
    table.append(f"| 0 (fp32) | {reference:.4f} | | | |")
    return table


def ffn_study(out: Path) -> list[str]:
    ffn = read_table(out / "ffn.csv")
    table = ["| FFN neurons pruned + compact | accuracy | .mir MB | ORT p50 ms (b1, 128) |", "|---|---|---|---|"]
    for r in ffn.rows:
        bench = out / "ffn" / (Path(r["file"]).stem + "-bench.json") if r.get("file") else None
        latency = json.loads(bench.read_text())["p50_ms"] if bench and bench.exists() else float("nan")
        label = "0 (fp32)" if r.get("reference") else f"{r['prune.sparsity']:.2f}"
        table.append(f"| {label} | {r['accuracy']:.4f} | {r['file_bytes'] / 1e6:.1f} | {latency:.2f} |")
    return table


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/lab1/out")
    bits, _ = bits_study(out)
    print("\n".join(bits), end="\n\n")
    print("\n".join(sparsity_study(out)), end="\n\n")
    print("\n".join(ffn_study(out)))


if __name__ == "__main__":
    main()
