"""The pass framework and the passes: validation, purity, determinism, invariants."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import maseir
from maseir.errors import MaseIRError
from maseir.dsl import DSLError, Pipeline, parse, print_pipeline
from maseir.passes import REGISTRY, ArgSpec, PassResult, PassSpec, run_pipeline, validate
from maseir.serialize import digest

from conftest import bert_inputs
from pipelines import pipelines, registry_steps
from models import SETTINGS, cnns, mlps

ALL_TYPES = PassSpec("demo", lambda g, a: PassResult(g, dict(a.values), "ok"), "a pass with every arg type",
                     objects=("x", "y"), analysis=True, args=(
                         ArgSpec("bits", "int", 8, "width", min=1, max=32),
                         ArgSpec("rate", "float", 0.5, "a rate", min=0.0, max=1.0),
                         ArgSpec("name", "str", "a", "free text"),
                         ArgSpec("mode", "str", "fast", "a choice", choices=("fast", "exact")),
                         ArgSpec("ops", "list", ("linear",), "op names", choices=("linear", "matmul", "conv2d")),
                         ArgSpec("fused", "bool", False, "a switch")))


@pytest.fixture()
def demo_pass():
    REGISTRY["demo"] = ALL_TYPES
    yield ALL_TYPES
    del REGISTRY["demo"]


@pytest.fixture(scope="module")
def mlp_graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2)).eval()
    return model, maseir.export(model, (torch.randn(2, 4),))


@settings(max_examples=100, deadline=None)
@given(pipelines(registry_steps(specs={"demo": ALL_TYPES})))
def test_random_valid_steps_validate_and_round_trip(pipeline):
    REGISTRY["demo"] = ALL_TYPES
    try:
        reparsed = parse(print_pipeline(pipeline))
        assert reparsed == pipeline
        bound = validate(reparsed)
        for b, step in zip(bound, pipeline.steps):
            assert set(b.args.values) == {a.name for a in ALL_TYPES.args}
            for key, value in step.args:
                assert b.args.values[key] == (value in ("true",) if key == "fused" else value) or key == "ops"
    finally:
        del REGISTRY["demo"]


@pytest.mark.parametrize("text,fragment", [
    ("remve dropout", "unknown pass 'remve' (did you mean 'remove'?)"),
    ("count linar", "unknown op 'linar' (did you mean 'linear'?)"),
    ("remove linear", "linear is not an identity at inference"),
    ("remove", "remove needs an object"),
    ("report dropout", "report takes no object"),
    ("demo x bits=0", "bits=0: out of range (1 <= bits <= 32)"),
    ("demo x bits=2.5", "bits=2.5: expected an integer"),
    ("demo x rate=fast", "rate=fast: expected a number"),
    ("demo x mode=fats", "choose from fast, exact (did you mean 'fast'?)"),
    ("demo x ops=linear,matmol", "'matmol' is not one of linear, matmul, conv2d (did you mean 'matmul'?)"),
    ("demo x fused=yes", "expected true or false"),
    ("demo x bit=3", "unknown argument 'bit' (did you mean 'bits'?)"),
    ("demo z", "unknown object 'z'; choose from x, y"),
])
def test_validation_errors_name_the_choices(demo_pass, text, fragment):
    with pytest.raises(DSLError) as info:
        validate(parse("count\n" + text + "\n", "v.pass"))
    assert str(info.value).startswith("v.pass:2:")
    assert fragment in str(info.value)


def test_the_whole_pipeline_is_validated_before_any_step_runs(mlp_graph):
    ran = []
    REGISTRY["spy"] = PassSpec("spy", lambda g, a: ran.append(1) or PassResult(g, {}, ""), "records calls",
                               analysis=True)
    try:
        with pytest.raises(DSLError):
            run_pipeline(mlp_graph[1], parse("spy\nspy\nremove linear\n"))
    finally:
        del REGISTRY["spy"]
    assert ran == []


def _graphs():
    return (mlps() | cnns()).map(lambda case: (case[0], maseir.export(case[0], (torch.randn(2, *case[1]),)),
                                               case[1]))


@SETTINGS
@given(_graphs(), st.lists(registry_steps(), min_size=1, max_size=4))
def test_every_pass_keeps_its_input_and_is_deterministic(case, steps):
    _, graph, _ = case
    before = digest(graph)
    pipeline = Pipeline(tuple(steps))
    try:
        first, reports = run_pipeline(graph, pipeline)
    except MaseIRError as exc:  # a step that does not fit this graph: the same error every time
        with pytest.raises(type(exc)) as again:
            run_pipeline(graph, pipeline)
        assert str(again.value) == str(exc) and digest(graph) == before
        return
    assert digest(graph) == before and graph.history == []
    second, reports_again = run_pipeline(graph, pipeline)
    assert first == second and [r.report for r in reports] == [r.report for r in reports_again]
    assert [h.step for h in first.history] == [print_pipeline(Pipeline((s,))).strip() for s in steps]


@SETTINGS
@given(_graphs())
def test_remove_dropout_keeps_eval_outputs_and_removes_only_dropout(case):
    model, graph, shape = case
    out, (outcome,) = run_pipeline(graph, parse("remove dropout"))
    assert [n.name for n in out.nodes] == [n.name for n in graph.nodes if n.op != "dropout"]
    assert outcome.report["removed"] == sum(n.op == "dropout" for n in graph.nodes)
    assert maseir.check(out) == []
    x = torch.randn(3, *shape)
    with torch.no_grad():
        assert torch.equal(maseir.to_torch(out)(x), maseir.to_torch(graph)(x))


def test_remove_dropout_on_bert(tiny_bert):
    model, graph = tiny_bert
    out, outcomes = run_pipeline(graph, parse("count dropout\nremove dropout\ncount dropout\n"))
    assert [o.summary for o in outcomes] == ["dropout: 6", "removed 6 nodes; set dropout_p=0 in 2 attention nodes",
                                             "dropout: 0"]
    assert outcomes[1].report == {"removed": 6, "attention_dropout_zeroed": 2}
    assert maseir.check(out) == []
    ids, mask = bert_inputs(3, 20)
    with torch.no_grad():
        assert torch.equal(maseir.to_torch(out)(ids, mask), maseir.to_torch(graph)(ids, mask))
    lowered = maseir.to_torch(out).train()  # no dropout left: train mode is deterministic too
    assert torch.equal(lowered(ids, mask), lowered(ids, mask))


def test_count_and_report(mlp_graph):
    _, graph = mlp_graph
    _, (count_all, count_linear, report) = run_pipeline(graph, parse("count\ncount linear\nreport\n"))
    assert count_all.report == {"dropout": 2, "linear": 2, "relu": 1}
    assert count_linear.summary == "linear: 2"
    assert report.report["elements"] == 4 * 8 + 8 + 8 * 2 + 2
    assert report.report["bytes_by_format"] == {"float32": 4 * (4 * 8 + 8 + 8 * 2 + 2)}
    assert not any(o.changed for o in (count_all, count_linear, report))
