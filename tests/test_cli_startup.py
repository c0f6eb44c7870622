"""The commands that only read structure answer at once: they never import
torch, onnx or onnxruntime (issue: every command paid 1.4 to 4 s at start-up).

Each command runs in a fresh interpreter, which then reports the heavy
modules it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import maseir
from maseir.dsl import parse
from maseir.passes import run_pipeline

HEAVY = ("torch", "onnx", "onnxruntime", "transformers", "datasets", "matplotlib")

PROBE = """
import json, sys
from maseir.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
""" % (HEAVY,)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    work = tmp_path_factory.mktemp("startup")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.1), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3)).eval()
    graph = maseir.export(mlp, (torch.randn(2, 4),))
    maseir.save(graph, work / "a.mir")
    out, _ = run_pipeline(graph, parse("remove dropout"))
    maseir.save(out, work / "b.mir", external_data_threshold=1)
    (work / "b.mir.data").rename(work / "elsewhere.data")  # b's weights are missing, as in a textconv copy
    maseir.save(out, work / "c.mir")
    return work


def probe(args, cwd):
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return result, report


COMMANDS = {
    "help": (["--help"], 0),
    "version": (["--version"], 0),
    "show": (["show", "a.mir"], 0),
    "show-json": (["show", "a.mir", "--json"], 0),
    "show-missing-data": (["show", "b.mir"], 0),
    "diff": (["diff", "a.mir", "c.mir"], 1),
    "diff-missing-data": (["diff", "a.mir", "b.mir"], 1),
    "check-structure": (["check", "--structure", "a.mir"], 0),
    "passes": (["passes"], 0),
    "passes-json": (["passes", "--json"], 0),
    "unknown-option": (["show", "a.mir", "--nope"], 2),
    "draw-dot": (["draw", "a.mir", "-o", "a.dot"], 0),
    "draw-scope-matches-nothing": (["draw", "a.mir", "-o", "a.dot", "--scope", "nowhere"], 2),
    **{f"{name}-help": ([name, "--help"], 0)
       for name in ("export", "show", "check", "apply", "passes", "diff", "lower", "import", "bench", "eval",
                    "sweep", "plot", "draw")},
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_light_commands_import_no_heavy_module(case, files):
    args, code = COMMANDS[case]
    result, report = probe(args, files)
    assert report["code"] == code, result.stderr
    assert report["heavy"] == [], f"maseir {' '.join(args)} imported {report['heavy']}"


def test_show_without_external_data_says_so_in_one_line(files):
    result, _ = probe(["show", "b.mir"], files)
    notes = [line for line in result.stderr.splitlines() if "note:" in line]
    assert len(notes) == 1 and "b.mir.data" in notes[0] and "structure alone" in notes[0]
    assert result.stdout == maseir.show(maseir.load(files / "c.mir"))  # the text does not depend on the data


def test_diff_without_external_data_compares_checksums(files):
    result, _ = probe(["diff", "a.mir", "b.mir"], files)
    full, _ = probe(["diff", "a.mir", "c.mir"], files)
    assert "params compared by sha256 only" in result.stdout
    # the same changes are found, only the value differences are missing
    strip = lambda text: [l for l in text.splitlines() if not l.startswith(("note:", "---", "+++"))]  # noqa: E731
    assert strip(result.stdout) == strip(full.stdout)


def test_unknown_option_is_reported_against_the_subcommand(files):
    result, _ = probe(["show", "a.mir", "--nope"], files)
    first = result.stderr.splitlines()[0]
    assert first == "maseir: error: show: unrecognized arguments: --nope (see 'maseir show --help')"
    result, report = probe(["shw", "a.mir"], files)
    assert report["code"] == 2 and result.stderr.startswith("maseir: error: argument COMMAND: invalid choice")


def test_debug_is_accepted_after_the_subcommand(files):
    result, report = probe(["show", "missing.mir", "--debug"], files)
    assert report["code"] == 2 and "Traceback" in result.stderr and "maseir: error: missing.mir" in result.stderr
    result, report = probe(["--debug", "show", "missing.mir"], files)
    assert report["code"] == 2 and "Traceback" in result.stderr
    result, report = probe(["show", "missing.mir"], files)
    assert report["code"] == 2 and "Traceback" not in result.stderr


def test_show_json_holds_the_structure(files):
    result, _ = probe(["show", "a.mir", "--json"], files)
    data = json.loads(result.stdout)
    graph = maseir.load(files / "a.mir")
    assert [n["name"] for n in data["nodes"]] == [n.name for n in graph.nodes]
    assert {p["name"]: p["sha256"] for p in data["params"]} == {k: t.sha256.hex() for k, t in graph.params.items()}
    assert data["outputs"] == graph.outputs and data["missing_external_data"] == []


def test_check_structure_finds_structural_problems_without_torch(files, tmp_path):
    graph = maseir.load(files / "a.mir")
    broken = graph.copy()
    broken.outputs = ["nowhere"]
    maseir.save(broken, tmp_path / "broken.mir")
    result, report = probe(["check", "--structure", "broken.mir"], tmp_path)
    assert report["code"] == 1 and report["heavy"] == []
    assert "output nowhere: no such value" in result.stdout
