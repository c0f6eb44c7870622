"""How fast the read-only commands answer (aim: under 0.3 s for `maseir --help` and
`maseir show` of MiniLM).

Each command runs as a fresh process, as a user or git's textconv runs it;
medians over repeats. Also lists, for each command, the heavy modules it
imported (none should be: torch, onnx, onnxruntime, transformers, datasets).

    .venv/bin/python examples/bench_startup.py [--repeats 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "onnx", "onnxruntime", "transformers", "datasets")


def timed(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_imports(cli_args: list[str]) -> list[str]:
    probe = ("import sys\nfrom maseir.cli.main import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", probe, *cli_args], capture_output=True, text=True)
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("heavy:")][-1]
    return [m for m in line.removeprefix("heavy:").split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    cli = [sys.executable, "-m", "maseir.cli.main"]
    with tempfile.TemporaryDirectory() as folder:
        mir = Path(folder) / "minilm.mir"
        subprocess.run([*cli, "export", "minilm", "-o", str(mir)], check=True, capture_output=True)
        commands = {
            "maseir --help": ["--help"],
            "maseir --version": ["--version"],
            "maseir show minilm.mir": ["show", str(mir)],
            "maseir check --structure minilm.mir": ["check", "--structure", str(mir)],
            "maseir diff minilm.mir minilm.mir": ["diff", str(mir), str(mir)],
            "maseir passes": ["passes"],
        }
        rows = []
        python = timed([sys.executable, "-c", "pass"], args.repeats)
        for name, cli_args in commands.items():
            rows.append({"command": name, "median_s": round(timed([*cli, *cli_args], args.repeats), 3),
                         "heavy_imports": heavy_imports(cli_args)})
    if args.json:
        print(json.dumps({"python_startup_s": round(python, 3), "commands": rows}, indent=2))
        return
    print(f"fresh process each run, median of {args.repeats}; bare python startup {python:.3f} s")
    print(f"{'command':<40} {'median s':>9}  heavy imports")
    for row in rows:
        print(f"{row['command']:<40} {row['median_s']:>9.3f}  {', '.join(row['heavy_imports']) or 'none'}")


if __name__ == "__main__":
    main()
