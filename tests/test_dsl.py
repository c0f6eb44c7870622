"""The pipeline language: parsing, canonical printing, and errors with line and column."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maseir import dsl
from maseir.dsl import DSLError, Step, parse, print_pipeline

from pipelines import pipelines


def test_parses_steps_objects_and_every_value_kind():
    text = ('# Tutorial 1\n\ncount dropout\n  remove dropout   # inline comment\n'
            'quantize bits=8 frac=-4 ops=linear,matmul weight.bits=8 name="a b" lr=1e-3 p=.5\ncount\n')
    p = parse(text, "lab.pass")
    assert [s.verb for s in p.steps] == ["count", "remove", "quantize", "count"]
    assert p.steps[0].object == "dropout" and p.steps[3].object is None
    assert dict(p.steps[2].args) == {"bits": 8, "frac": -4, "ops": ("linear", "matmul"), "weight.bits": 8,
                                     "name": "a b", "lr": 0.001, "p": 0.5}
    assert (p.steps[1].line, p.steps[1].column) == (4, 3)


def test_canonical_form_sorts_keys_and_quotes_only_when_needed():
    p = parse('quantize  frac=4   bits=8 name="plain" path="a b/c.csv"\n')
    assert print_pipeline(p) == 'quantize bits=8 frac=4 name=plain path="a b/c.csv"\n'


def test_empty_and_comment_only_pipelines():
    assert parse("").steps == () and parse("# nothing\n\n   \n").steps == ()


@settings(max_examples=200, deadline=None)
@given(pipelines())
def test_print_then_parse_is_identity(pipeline):
    text = print_pipeline(pipeline)
    again = parse(text)
    assert again == pipeline
    assert print_pipeline(again) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60))
def test_garbage_raises_only_dsl_errors_with_a_place(text):
    try:
        parse(text, "g.pass")
    except DSLError as exc:
        assert exc.line >= 1 and exc.column >= 1
        assert str(exc).startswith("g.pass:")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=' \n\t#=,."-+.0123456789abcxyz_/', max_size=60))
def test_near_miss_text_raises_only_dsl_errors(text):
    try:
        parse(text, "g.pass")
    except DSLError as exc:
        assert exc.line >= 1 and exc.column >= 1


@pytest.mark.parametrize("text,where,fragment", [
    ("count dropout extra\n", "1:15", "arguments are key=value"),
    ("count\nquantize bits=\n", "2:15", "value is missing"),
    ("quantize bits=8 bits=9\n", "1:17", "given twice"),
    ('remove "x\n', "1:8", "unterminated string"),
    ("quantize =3\n", "1:10", "unexpected '='"),
    ("$\n", "1:1", "unexpected character '$'"),
])
def test_syntax_errors_point_at_the_place(text, where, fragment):
    with pytest.raises(DSLError) as info:
        parse(text, "p.pass")
    assert str(info.value).startswith(f"p.pass:{where}: ")
    assert fragment in str(info.value)
    line, column = map(int, where.split(":"))
    source_line, caret = info.value.context.splitlines()
    assert source_line == "  " + text.splitlines()[line - 1]
    assert caret.index("^") == column + 1


def test_step_equality_ignores_position():
    assert Step("count", "dropout", (), 1, 1) == Step("count", "dropout", (), 9, 4)
    assert dsl.print_step(Step("a", None, (("k", ("x", 1)),))) == "a k=x,1"


def test_line_numbers_count_newlines_only():
    with pytest.raises(DSLError) as info:
        parse("# a\x0bcomment with a vertical tab\x0c and a form feed\nbad $\n", "f.pass")
    assert str(info.value).startswith("f.pass:2:5: unexpected character '$'")
    assert info.value.context.splitlines()[0] == "  bad $"
