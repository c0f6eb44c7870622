"""The pipeline language: parsing, canonical printing, and errors with line and column."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maseir import dsl
from maseir.dsl import DSLError, Step, parse, print_pipeline

from pipelines import pipelines


@pytest.fixture()
def demo_pass_registered():
    from maseir.passes import REGISTRY, ArgSpec, PassResult, PassSpec
    REGISTRY["demo"] = PassSpec("demo", lambda g, a: PassResult(g, {}, ""), "a test pass", objects=("x",),
                                analysis=True, args=(ArgSpec("bits", "int", 8, "width", min=1, max=32),
                                                     ArgSpec("name", "str", "a", "free text")))
    yield
    del REGISTRY["demo"]


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
@given(st.text(alphabet=' \n\t#=,."-+.0123456789abcxyz_/\\', max_size=60))
def test_near_miss_text_raises_only_dsl_errors(text):
    try:
        pipeline = parse(text, "g.pass")
    except DSLError as exc:
        assert exc.line >= 1 and exc.column >= 1
    else:  # whatever parses prints in a form that parses back to it
        assert parse(print_pipeline(pipeline)) == pipeline


@pytest.mark.parametrize("text,where,fragment", [
    ("count dropout extra\n", "1:15", "arguments are key=value"),
    ("count\nquantize bits=\n", "2:15", "value is missing"),
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


# --- strings: regexes as people write them (issue 7, case 8) --------------------------
@pytest.mark.parametrize("written,value", [
    (r'"encoder\.layer"', r"encoder\.layer"),
    (r'"encoder\.layer\.[0-2]\."', r"encoder\.layer\.[0-2]\."),
    (r'"\d+\s*(\w|-)\b"', r"\d+\s*(\w|-)\b"),
    (r'"a\nb\tc\u0041"', r"a\nb\tc\u0041"),       # not escapes: the regex engine reads them
    (r'"say \"hi\""', 'say "hi"'),                # \" is a quote
    (r'"C:\\dir\\"', "C:\\dir\\"),                 # \\ is one backslash
    (r'"\\\."', r"\\."),
    ('""', ""),
])
def test_strings_keep_backslashes_except_before_a_quote_or_a_backslash(written, value):
    (step,) = parse(f"count x={written}\n").steps
    assert step.args == (("x", value),)


def test_scope_regexes_parse_and_print_as_written():
    text = 'quantize bits=8 scope_regex="encoder\\.layer\\.[0-2]\\."\n'
    assert dict(parse(text).steps[0].args)["scope_regex"] == r"encoder\.layer\.[0-2]\."
    assert print_pipeline(parse(text)) == text


regex_text = st.text(alphabet='\\."[]()*+?|^$ab0_-{},:/ ', max_size=30)


def _as_people_write_it(s: str) -> bool:
    """No quote, and no backslash before another backslash or at the end."""
    return '"' not in s and "\\\\" not in s and not s.endswith("\\")


@settings(max_examples=300, deadline=None)
@given(regex_text.filter(_as_people_write_it))
def test_regexes_as_people_write_them_parse_to_themselves(s):
    (step,) = parse(f'count x="{s}"\n').steps
    assert step.args == (("x", s),)
    assert dsl.print_value(s) in (s, f'"{s}"')   # printed as written (bare when it is a name)


any_string = st.text(alphabet=st.sampled_from('\\"ab. ') | st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                     max_size=30)   # backslashes and quotes often, next to each other and at the ends


@settings(max_examples=500, deadline=None)
@given(any_string)
def test_any_string_round_trips_through_print_and_parse(s):
    (step,) = parse(f"count x={dsl.print_value(s)}\n").steps
    assert step.args == (("x", s),)


@pytest.mark.parametrize("s", ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85"])
def test_strings_cannot_hold_control_characters(s):
    with pytest.raises(ValueError, match="control character"):
        dsl.print_value(f"a{s}b")
    with pytest.raises(DSLError) as info:
        parse(f'count\ncount x="ab{s}"\n', "c.pass")
    if s == "\n":   # a string ends at the end of its line
        assert str(info.value) == "c.pass:2:9: unterminated string"
    else:
        assert str(info.value).startswith(f"c.pass:2:12: control character U+{ord(s):04X} in a string")
    assert info.value.context.splitlines()[1].index("^") == int(str(info.value).split(":")[2]) + 1


def test_an_unterminated_string_ending_in_a_backslash_says_how_to_write_one():
    with pytest.raises(DSLError, match=r'write \\\\ for a backslash before the closing quote'):
        parse('count path="C:\\dir\\"\n')


# --- every DSL error carries file:line:col ------------------------------------------
@pytest.mark.parametrize("text,where,fragment", [
    ("count\ncount k=1" + "0" * 5000 + "\n", "2:9", "integer too long"),
    ("count\ncount k=1e999\n", "2:9", "out of range"),
    ("count\ncount k=-1e400,2\n", "2:9", "out of range"),
    ('count\ncount k="a\x01"\n', "2:11", "control character U+0001"),
    ('count k="abc\n', "1:9", "unterminated string"),
])
def test_value_errors_carry_the_place(text, where, fragment):
    with pytest.raises(DSLError) as info:
        parse(text, "v.pass")
    assert str(info.value).startswith(f"v.pass:{where}: ")
    assert fragment in str(info.value)


def test_a_byte_order_mark_is_not_part_of_the_text():
    assert parse("\ufeffcount dropout\n").steps == parse("count dropout\n").steps
    with pytest.raises(DSLError) as info:
        parse("\ufeffcount $\n", "b.pass")
    assert str(info.value).startswith("b.pass:1:7: unexpected character '$'")
    assert info.value.context.splitlines() == ["  count $", "        ^"]


# --- error context: a window around the column ---------------------------------------
@pytest.mark.parametrize("column", [1, 30, 40_000, 79_990])
def test_error_context_of_a_long_line_is_a_window_around_the_column(column):
    line = "count " + "x" * (80_000 - 6)
    line = line[:column - 1] + "$" + line[column:]
    with pytest.raises(DSLError) as info:
        parse(line + "\n", "long.pass")
    assert str(info.value).startswith(f"long.pass:1:{column}: unexpected character '$'")
    shown, caret = info.value.context.splitlines()
    assert len(shown) <= 110 and len(str(info.value)) < 200
    assert shown[caret.index("^")] == "$"
    assert shown.startswith("  ...") == (column > 60)
    assert shown.endswith("...") == (column <= 40_000)


def test_long_values_are_shortened_in_messages():
    with pytest.raises(DSLError) as info:
        parse("count x=1 " + "y" * 80_000 + "\n", "long.pass")
    assert len(str(info.value)) < 200 and "..." in str(info.value)


# --- repeated arguments are a validation error, after unknown ones ---------------------
def test_an_unknown_argument_is_reported_before_a_repeated_one():
    from maseir.passes import validate
    with pytest.raises(DSLError) as info:
        validate(parse("count\ncount x=1 x=1\n", "d.pass"))
    assert str(info.value).startswith("d.pass:2:7: count: unknown argument 'x'")
    with pytest.raises(DSLError) as info:
        validate(parse("count\ncount x=1\n", "d.pass"))
    assert str(info.value).startswith("d.pass:2:7: count: unknown argument 'x'")


def test_a_repeated_argument_points_at_its_second_use(demo_pass_registered):
    from maseir.passes import validate
    with pytest.raises(DSLError) as info:
        validate(parse("count\ndemo x bits=8  bits =9\n", "d.pass"))
    assert str(info.value).startswith("d.pass:2:16: demo: argument bits given twice")
    caret = info.value.context.splitlines()[1]
    assert caret.index("^") == 17


def test_argument_errors_point_at_the_key_even_when_the_text_repeats_it(demo_pass_registered):
    from maseir.passes import validate
    with pytest.raises(DSLError) as info:
        validate(parse('demo x name="bits=3"  bits = 0\n', "d.pass"))
    assert str(info.value).startswith("d.pass:1:23: demo: bits=0: out of range")


# --- pipeline files: encodings ---------------------------------------------------------
@pytest.mark.parametrize("codec,bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                       ("utf-16-be", b"\xfe\xff"), ("utf-32-le", b"\xff\xfe\x00\x00"),
                                       ("utf-32-be", b"\x00\x00\xfe\xff")])
def test_files_decode_by_their_byte_order_mark(codec, bom):
    text = 'count dropout\nquantize scope_regex="caf\u00e9\\.[0-2]"\n'
    assert dsl.decode(bom + text.encode(codec), "f.pass") == text


@pytest.mark.parametrize("data,message", [
    (b"count\n# caf\xe9\n", "f.pass:2:6: byte 0xe9 at offset 11 is not UTF-8"),
    (b"\xef\xbb\xbfok \xe2\x82", "f.pass:1:4: byte 0xe2 at offset 6 is not UTF-8"),
    (b"\xff\xfec\x00\n\x00x", "f.pass:2:1: the bytes at offset 6 are not UTF-16 (truncated data)"),
    ("count dropout\n".encode("utf-16-le"), "f.pass:1:2: NUL byte at offset 1: a pipeline is UTF-8 text (is this "
                                           "UTF-16 without a byte order mark"),
])
def test_undecodable_files_name_the_line_column_and_byte_offset(data, message):
    with pytest.raises(DSLError) as info:
        dsl.decode(data, "f.pass")
    assert str(info.value).startswith(message)
    assert info.value.context.count("\n") == 1


def test_read_pipeline_names_a_missing_file(tmp_path):
    from maseir.errors import MaseIRError
    with pytest.raises(MaseIRError, match="nope.pass: no such pipeline file"):
        dsl.read_pipeline(tmp_path / "nope.pass", "nope.pass")
    (tmp_path / "p.pass").write_bytes(b"\xef\xbb\xbfcount dropout\r\n")
    assert dsl.read_pipeline(tmp_path / "p.pass").steps == (Step("count", "dropout"),)
