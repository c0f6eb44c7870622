"""maseir.sweep, maseir.plot and the `sweep` / `plot` commands: one run and evaluation per point,
the shared steps run once, tables that resume, and bad --vary refused before any work."""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import pytest

import maseir
from maseir import sweep as sweep_module
from maseir.cli.main import main
from maseir.dsl import DSLError, parse, parse_value
from maseir.errors import MaseIRError
from maseir.evaluate import evaluate
from maseir.passes import REGISTRY, run_pipeline
from maseir.plot import read_table
from maseir.runtime import default_threads
from maseir.serialize import digest
from maseir.sweep import (MEASURED, columns, finished_rows, parse_vary, plan_sweep, resolve_step, sweep,
                          write_table)
from textmodels import reviews, tiny_text_bert, write_rows

PNG = b"\x89PNG\r\n\x1a\n"
TIMINGS = {"latency_ms_median", "latency_ms_p90", "throughput", "seconds", "eval_seconds", "threads"}
EVAL = {"seq_len": 16, "batch_size": 16}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a tiny text classifier (m.mir) and a 40-review csv (r.csv)."""
    folder = tmp_path_factory.mktemp("sweep")
    maseir.save(tiny_text_bert(folder / "model"), folder / "m.mir")
    write_rows(folder / "r.csv", [{"text": t, "label": y} for t, y in reviews(40)])
    return folder


@pytest.fixture(scope="module")
def graph(work):
    return maseir.load(work / "m.mir")


def finetune_step(work, extra=""):
    return f'finetune dataset="{work / "r.csv"}" epochs=1 limit=16 batch=8 seq_len=16 lr=1e-3 {extra}'


def counting(monkeypatch, name):
    """Count the runs of the registered pass ``name``."""
    spec = REGISTRY[name]
    calls = []

    def run(graph, args):
        calls.append(dict(args.values))
        return spec.run(graph, args)
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(spec, run=run))
    return calls


def untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


# --- the table and the plot ---------------------------------------------------------
def test_sweep_command_writes_the_table_and_a_png(work, graph, tmp_path, capsys, monkeypatch):
    (tmp_path / "p.pass").write_text("remove dropout\nlora alpha=8\ncount linear\n")
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "p.pass", str(work / "m.mir"), "--vary", "lora.rank=2,4", "--dataset", str(work / "r.csv"),
            "--seq-len", "16", "--plot", "acc.png", "--keep", "kept"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/3] reference: accuracy ") and out[2].startswith("[3/3] lora.rank=4: accuracy ")
    assert out[-1] == "wrote acc.csv, acc.json, acc.png: 2 points and the reference"

    with open("acc.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == columns(["lora.rank"])
    assert [(r["point"], r["reference"], r["lora.rank"]) for r in table] == [
        ("0", "true", ""), ("1", "false", "2"), ("2", "false", "4")]
    assert table[0]["pipeline"] == "remove dropout"  # the shared steps
    assert table[1]["pipeline"] == "remove dropout; lora alpha=8 rank=2; count linear"  # rank added per point
    record = json.loads((tmp_path / "acc.json").read_text())
    assert record["vary"] == [{"key": "lora.rank", "step": 2, "arg": "rank", "values": [2, 4]}]
    assert record["model_digest"] == digest(graph) and record["examples"] == 40

    # each row is what running and evaluating that point's whole pipeline gives
    for row, rank in zip(record["rows"][1:], (2, 4)):
        expected, _ = run_pipeline(graph, parse(f"remove dropout\nlora alpha=8 rank={rank}\ncount linear\n"))
        assert row["digest"] == digest(expected)
        kept = tmp_path / row["file"]
        assert kept.parent.name == "kept" and row["file_bytes"] == kept.stat().st_size
        assert digest(maseir.load(kept)) == row["digest"]
        scores = evaluate(expected, str(work / "r.csv"), seq_len=16, threads=1)
        assert (row["accuracy"], row["macro_f1"], row["examples"]) == \
            (scores["accuracy"], scores["macro_f1"], scores["examples"])
        assert row["parameters"] == expected.param_count() and row["bits_per_weight"] == 32.0
    assert record["rows"][1]["parameters"] < record["rows"][2]["parameters"]  # rank 4 adapters are larger
    reference, _ = run_pipeline(graph, parse("remove dropout\n"))
    assert record["rows"][0]["digest"] == digest(reference)

    picture = (tmp_path / "acc.png").read_bytes()
    assert picture.startswith(PNG) and len(picture) > 10_000


def test_plot_command_and_reading_the_table_back(work, tmp_path, capsys):
    (tmp_path / "p.pass").write_text("lora alpha=8\n")
    rows = sweep(maseir.load(work / "m.mir"), maseir.dsl.read_pipeline(tmp_path / "p.pass"),
                 {"lora.rank": [2, 4], "lora.targets": ["query", "value"]}, dataset=str(work / "r.csv"),
                 table=tmp_path / "t.csv", **EVAL)
    assert [(r.get("lora.rank"), r.get("lora.targets")) for r in rows] == [
        (None, None), (2, "query"), (2, "value"), (4, "query"), (4, "value")]
    from_csv, from_json = read_table(tmp_path / "t.csv"), read_table(tmp_path / "t.json")
    assert from_csv.keys == from_json.keys == ["lora.rank", "lora.targets"]
    assert from_csv.rows == from_json.rows  # the CSV reads back to the same typed values
    assert from_csv.record["eval"]["dataset"] == str(work / "r.csv")

    assert main(["plot", str(tmp_path / "t.csv"), "-o", str(tmp_path / "p.svg"), "--y", "parameters"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'p.svg'} (")
    svg = (tmp_path / "p.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "lora.targets=query" in svg and "lora.targets=value" in svg
    assert main(["plot", str(tmp_path / "t.csv"), "-o", str(tmp_path / "x.png"), "--y", "nope"]) == 2
    assert "--y nope: not a measured column" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# --- reuse: the shared steps run once --------------------------------------------------
def test_shared_steps_run_once_and_jobs_2_give_the_table_of_jobs_1(work, graph, tmp_path, monkeypatch):
    runs = counting(monkeypatch, "finetune")
    pipeline = parse(f"{finetune_step(work)}\nlora alpha=8\n")
    before = digest(graph)
    options = dict(dataset=str(work / "r.csv"), **EVAL)
    one = sweep(graph, pipeline, {"lora.rank": [2, 4]}, jobs=1, **options)
    assert len(runs) == 1  # once for the reference and both points
    two = sweep(graph, pipeline, {"lora.rank": [2, 4]}, jobs=2, table=tmp_path / "two.csv", **options)
    assert len(runs) == 2  # the workers load the shared result; they do not run it
    assert digest(graph) == before  # the input is untouched
    assert untimed(one) == untimed(two) == untimed(read_table(tmp_path / "two.json").rows)
    assert all(r["threads"] == max(1, default_threads() // 2) for r in two)
    monkeypatch.undo()
    for row, rank in zip(one[1:], (2, 4)):
        whole, _ = run_pipeline(graph, parse(f"{finetune_step(work)}\nlora alpha=8 rank={rank}\n"))
        assert row["digest"] == digest(whole)  # the same graph as running the whole pipeline
    tuned, _ = run_pipeline(graph, parse(finetune_step(work)))
    assert one[0]["reference"] and one[0]["digest"] == digest(tuned)
    assert len({r["digest"] for r in one}) == 3


# --- resume -----------------------------------------------------------------------------
def test_resume_skips_finished_points(work, graph, tmp_path, monkeypatch):
    pipeline = parse(f"{finetune_step(work)}\nlora alpha=8\n")
    options = dict(dataset=str(work / "r.csv"), table=tmp_path / "t.csv", keep=tmp_path / "kept", **EVAL)
    tunes = counting(monkeypatch, "finetune")
    lora = REGISTRY["lora"]

    def fail_at_rank_4(g, args):
        if args["rank"] == 4:
            raise MaseIRError("no room for rank 4")  # as a pass fails
        return lora.run(g, args)
    monkeypatch.setitem(REGISTRY, "lora", dataclasses.replace(lora, run=fail_at_rank_4))
    with pytest.raises(MaseIRError, match=r"point 2 \(lora.rank=4\): .*:2:1: step 2 \(lora alpha=8 rank=4\): "
                                          r"no room for rank 4 \(the table holds the 2 rows .*--resume"):
        sweep(graph, pipeline, {"lora.rank": [2, 4, 8]}, **options)
    first = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["point"] for r in first] == [0, 1] and len(tunes) == 1
    with open(tmp_path / "t.csv") as f:
        assert len(list(csv.DictReader(f))) == 2

    monkeypatch.setitem(REGISTRY, "lora", lora)
    points = []
    rows = sweep(graph, pipeline, {"lora.rank": [2, 4, 8]}, resume=True, on_row=lambda r, *_: points.append(r),
                 **options)
    assert [r["point"] for r in points] == [2, 3]  # only the unfinished points ran
    assert len(tunes) == 1  # the kept reference.mir stood in for the shared finetune
    assert rows[:2] == first  # finished rows as they were, timings included
    assert [r["lora.rank"] for r in rows[1:]] == [2, 4, 8]
    again = sweep(graph, pipeline, {"lora.rank": [2, 4, 8]}, resume=True,
                  on_row=lambda r, *_: points.append(r), **options)
    assert again == rows and len(points) == 2 and len(tunes) == 1  # nothing left to do

    (tmp_path / "kept" / "reference.mir").unlink()  # without it the shared steps run again
    first_two = json.loads((tmp_path / "t.json").read_text())
    write_table(tmp_path / "t.csv", tmp_path / "t.json", first_two, first_two["rows"][:2])
    rows = sweep(graph, pipeline, {"lora.rank": [2, 4, 8]}, resume=True, **options)
    assert len(tunes) == 2 and untimed(rows) == untimed(again)


def test_resume_refuses_a_table_of_another_sweep(work, graph, tmp_path, monkeypatch, capsys):
    pipeline = parse("lora alpha=8\n")
    options = dict(dataset=str(work / "r.csv"), table=tmp_path / "t.csv", **EVAL)
    sweep(graph, pipeline, {"lora.rank": [2, 4]}, **options)
    monkeypatch.setattr(sweep_module, "run_point", lambda *a, **k: pytest.fail("work before the check"))
    other = run_pipeline(graph, parse("remove dropout"))[0]
    cases = [
        (dict(vary={"lora.rank": [2, 8]}), "varied arguments"),
        (dict(pipeline=parse("lora alpha=4\n")), "pipeline"),
        (dict(limit=10), "evaluation settings"),
        (dict(seed=1), "seed"),
        (dict(graph=other), "model (digest)"),
    ]
    for change, what in cases:
        arguments = dict(graph=graph, pipeline=pipeline, vary={"lora.rank": [2, 4]}, **options)
        arguments.update(change)
        with pytest.raises(MaseIRError, match="cannot resume: the table was made by another sweep") as info:
            sweep(arguments.pop("graph"), arguments.pop("pipeline"), arguments.pop("vary"), resume=True,
                  **arguments)
        assert what in str(info.value)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(MaseIRError, match="junk.json: not a sweep table"):
        finished_rows(tmp_path / "junk.json", {})


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("vary,message", [
    ("lora.rnak=2,4", "p.pass:2:1: --vary lora.rnak: lora has no argument 'rnak' (did you mean 'rank'?); "
                      "arguments: rank, alpha, dropout, targets, ops, scope, train_head"),
    ("quantise.bits=4,8", "--vary quantise.bits: no step 'quantise' in p.pass; the steps of p.pass: "
                          "1 remove (line 1), 2 lora (line 2)"),
    ("lora.rank=0,4", "p.pass:2:14: lora: rank=0: out of range (1 <= rank <= 4096) (--vary lora.rank=0)"),
    ("lora.rank=2,x", "p.pass:2:14: lora: rank=x: expected an integer, got the name 'x' (--vary lora.rank=x)"),
    ("lora.dropout=0.5,2", "p.pass:2:1: lora: dropout=2: out of range"),
    ("lora.rank=2,2", "--vary lora.rank: value 2 given twice"),
    ("lora.rank", "--vary lora.rank: expected STEP.ARG=V1,V2,..."),
    ("rank=2", "--vary rank=2: 'rank' is not STEP.ARG"),
    ('lora.scope=a,"b', "--vary lora.scope=a,\"b: column 14: unterminated string"),
    ("lora.rank=4#8", "--vary lora.rank=4#8: column 12: a value cannot hold '#'"),
    ("3.rank=2", "--vary 3.rank: p.pass has no step 3 (it has 2)"),
    ("remove:lora.x=1", "--vary remove:lora.x: no step 'remove:lora' in p.pass"),
    ("remove.x=1", "p.pass:1:1: --vary remove.x: remove dropout has no argument 'x'; it takes no arguments"),
])
def test_bad_vary_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, vary, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.pass").write_text("remove dropout\nlora alpha=8 rank=2\n")
    # the model does not exist: a --vary mistake is found before the model is read
    assert main(["sweep", "p.pass", "missing.mir", "--vary", vary, "--plot", "a.png"]) == 2
    captured = capsys.readouterr()
    first, *context = captured.err.splitlines()
    assert captured.out == "" and first.startswith("maseir: error: " + message), captured.err
    if ":1:" in message or ":2:" in message:  # at a place in the pipeline: the line, a caret under the column
        line, caret = context
        assert line.strip() == ["remove dropout", "lora alpha=8 rank=2"][int(message.split(":")[1]) - 1]
        assert caret.index("^") == int(message.split(":")[2]) + 1
    else:
        assert context == []
    assert sorted(os.listdir(tmp_path)) == ["p.pass"]


def test_other_bad_input_is_refused_before_any_work(work, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.pass").write_text("lora alpha=8\n")
    model = str(work / "m.mir")

    def error(*argv):
        assert main(["sweep", "p.pass", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1, captured.err
        return captured.err
    monkeypatch.setattr(sweep_module, "run_point", lambda *a, **k: pytest.fail("work before the check"))
    assert "--vary lora.rank given twice" in error(model, "--vary", "lora.rank=2", "--vary", "lora.rank=4")
    assert "the same argument as --vary lora.rank" in error(model, "--vary", "lora.rank=2", "--vary", "1.rank=4")
    assert "t.txt: the sweep table is a .csv file" in error(model, "--vary", "lora.rank=2", "-o", "t.txt")
    assert "a.gif: a plot is written as .png, .svg, .pdf" in error(model, "--vary", "lora.rank=2", "--plot", "a.gif")
    assert "--x lora.alpha: not a column of the table" in error(model, "--vary", "lora.rank=2", "--plot", "a.png",
                                                                "--x", "lora.alpha")
    assert "unknown dataset 'imbd'" in error(model, "--vary", "lora.rank=2", "--dataset", "imbd")
    with pytest.raises(SystemExit) as info:
        main(["sweep", "p.pass", model])
    assert info.value.code == 2 and "the following arguments are required: --vary" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["p.pass"]


def test_naming_steps_of_a_pipeline_with_a_verb_twice():
    pipeline = parse("lora rank=2\ncount linear\nlora rank=4 targets=key\nfuse lora\n", "two.pass")
    assert resolve_step("lora#2", pipeline) == 2 and resolve_step("3", pipeline) == 2
    assert resolve_step("fuse:lora", pipeline) == 3 and resolve_step("fuse", pipeline) == 3
    assert resolve_step("count:linear", pipeline) == 1
    with pytest.raises(MaseIRError, match=r"two.pass has 2 lora steps \(lines 1, 3\): name one as lora#1 or "
                                          r"lora#2, or by its number; the steps of two.pass: 1 lora#1 \(line 1\), "
                                          r"2 count \(line 2\), 3 lora#2 \(line 3\), 4 fuse \(line 4\)"):
        plan_sweep(pipeline, {"lora.rank": [2]})
    with pytest.raises(MaseIRError, match="two.pass has 2 lora steps, so no lora#3"):
        resolve_step("lora#3", pipeline)
    plan = plan_sweep(pipeline, {"lora#2.alpha": [8, 16], "lora#1.rank": [1, 3]})
    assert plan.start == 0  # the first varied step is the first step: nothing is shared
    assert [str(p.pipeline).splitlines()[::2] for p in plan.points] == [
        ["lora rank=1", "lora alpha=8 rank=4 targets=key"], ["lora rank=3", "lora alpha=8 rank=4 targets=key"],
        ["lora rank=1", "lora alpha=16 rank=4 targets=key"], ["lora rank=3", "lora alpha=16 rank=4 targets=key"]]
    with pytest.raises(DSLError, match="two.pass:4:1: --vary fuse:lora.rank: fuse lora has no argument 'rank'"):
        plan_sweep(pipeline, {"fuse:lora.rank": [2]})


def test_vary_values_mean_what_they_mean_in_a_pipeline():
    assert parse_vary("quantize.bits=4,8") == ("quantize.bits", (4, 8))
    assert parse_vary("prune.sparsity=0.5") == ("prune.sparsity", (0.5,))
    assert parse_vary('lora.scope="a b",l1') == ("lora.scope", ("a b", "l1"))
    assert parse_vary("quantize#2.weight.bits=4") == ("quantize#2.weight.bits", (4,))
    assert parse_value('"a#b"') == "a#b" and parse_value("-3") == -3 and parse_value("x,1") == ("x", 1)
    with pytest.raises(DSLError) as info:
        parse_value("4 8")
    assert (info.value.line, info.value.column) == (1, 3)
    plan = plan_sweep(parse("lora\n"), {"lora.train_head": [True, False], "lora.targets": [["query", "key"]]})
    assert [p.label for p in plan.points] == ["lora.train_head=true, lora.targets=query,key",
                                              "lora.train_head=false, lora.targets=query,key"]
    assert MEASURED[0] == "accuracy"
