"""Size expressions (maseir.symbolic): the normal form, text and proto round trips, and the
type rules that derive them (ops.infer_types)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maseir import ops, symbolic
from maseir._proto import maseir_pb2 as pb
from maseir.errors import FileFormatError
from maseir.ir import Graph, Node, SizeExpr, Sym, TensorType, Value
from maseir.serialize import model_from_proto, model_to_proto
from maseir.symbolic import add, evaluate, floordiv, mul, parse, sub
from maseir.text import format_attr, format_type, parse_dim, parse_shape

SYMBOLS = ("batch", "heads", "seq")


# --- random expressions with a reference value -----------------------------------------------
def trees(nonnegative: bool = False, max_leaves: int = 8):
    """(op, ...) trees over SYMBOLS and small ints; ``nonnegative`` leaves out subtraction
    and negative ints, so the value is a size for every size of the symbols."""
    leaves = st.sampled_from(SYMBOLS) | st.integers(0 if nonnegative else -6, 9)
    divisors = st.integers(1, 9) | st.sampled_from(SYMBOLS) | st.tuples(st.just("+"), st.sampled_from(SYMBOLS),
                                                                         st.integers(1, 3))

    def extend(children):
        ops_ = [st.tuples(st.just("+"), children, children), st.tuples(st.just("*"), children, children),
                st.tuples(st.just("//"), children, divisors)]
        if not nonnegative:
            ops_.append(st.tuples(st.just("-"), children, children))
        return st.one_of(ops_)
    return st.recursive(leaves, extend, max_leaves=max_leaves)


def build(tree):
    """The Dim a tree stands for, made with maseir.symbolic."""
    if not isinstance(tree, tuple):
        return tree
    op, a, b = tree
    return {"+": add, "-": sub, "*": mul, "//": floordiv}[op](build(a), build(b))


def reference(tree, sizes):
    """The tree's value in Python's own integer arithmetic."""
    if isinstance(tree, str):
        return sizes[tree]
    if isinstance(tree, int):
        return tree
    op, a, b = tree
    x, y = reference(a, sizes), reference(b, sizes)
    return {"+": x + y, "-": x - y, "*": x * y, "//": x // y if op == "//" else None}[op]


size_maps = st.fixed_dictionaries({s: st.integers(1, 40) for s in SYMBOLS})


@settings(max_examples=300, deadline=None)
@given(trees(), size_maps)
def test_normal_form_evaluates_as_python_does_and_its_text_reads_back(tree, sizes):
    d = build(tree)
    assert evaluate(d, sizes) == reference(tree, sizes)
    assert isinstance(d, (int, str, SizeExpr))
    again = parse(str(d))
    assert again == d and str(again) == str(d)  # one canonical text per dim


@settings(max_examples=200, deadline=None)
@given(trees(), trees())
def test_equal_polynomials_are_equal_objects(a, b):
    x, y = build(a), build(b)
    assert add(x, y) == add(y, x) and mul(x, y) == mul(y, x)
    assert sub(add(x, y), y) == x
    assert hash(mul(x, y)) == hash(mul(y, x))


def test_plain_sizes_stay_ints_and_names():
    assert add("seq", 0) == "seq" and mul("seq", 1) == "seq" and sub("seq", "seq") == 0
    assert floordiv(mul(4, "seq"), 4) == "seq" and floordiv(mul("batch", "seq"), "seq") == "batch"
    assert mul(2, 3) == 6 and floordiv(7, 2) == 3


@pytest.mark.parametrize("text, canonical", [
    ("seq*batch", "batch*seq"), ("1+seq", "seq+1"), ("seq//4", "seq//4"), ("(seq-1)//2+1", "(seq+1)//2"),
    ("(4*batch*seq+seq+3)//4", "batch*seq+(seq+3)//4"), ("(seq//2)//3", "seq//6"), ("(2*seq)//4", "seq//2"),
    ("2*(seq//4)", "2*(seq//4)"), ("batch-seq//4", "batch-(seq//4)"), ("seq*seq", "seq**2"),
    ("(batch*seq+seq)//seq", "batch+1"), ("batch * seq // 4", "batch*seq//4"), ("(seq+1)//batch", "(seq+1)//batch"),
])
def test_canonical_text(text, canonical):
    assert str(parse(text)) == canonical
    assert parse(canonical) == parse(text)


@pytest.mark.parametrize("text, column", [("seq+", 5), ("seq$2", 4), ("(seq", 5), ("seq//0", 4), ("2**seq", 2),
                                          ("seq seq", 5), ("", 1)])
def test_bad_text_names_the_column(text, column):
    with pytest.raises(ValueError, match=f"column {column}:"):
        parse(text)


def test_deep_nesting_is_refused_not_a_recursion_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse("(" * 200 + "seq" + ")" * 200)


def test_from_sympy_reads_torch_size_functions():
    import sympy
    from torch.utils._sympy.functions import CeilDiv, FloorDiv, ModularIndexing, PythonMod
    s0, s1 = sympy.symbols("s0 s1", integer=True, positive=True)
    names = {"s0": "batch", "s1": "seq"}.__getitem__
    assert symbolic.from_sympy(s0 * s1, names) == mul("batch", "seq")
    assert symbolic.from_sympy(FloorDiv(s1 - 1, 2) + 1, names) == parse("(seq+1)//2")
    assert symbolic.from_sympy(CeilDiv(s1, 4), names) == parse("(seq+3)//4")
    for e, sizes in [(PythonMod(s1, 4), {"seq": 13}), (ModularIndexing(s1, 2, 3), {"seq": 13})]:
        want = int(e.subs({s1: 13}))
        assert evaluate(symbolic.from_sympy(e, names), sizes) == want
    with pytest.raises(ValueError, match="Max"):
        symbolic.from_sympy(sympy.Max(s0, s1), names)


# --- the file format and the text form ---------------------------------------------------------
def _graph(shape, attrs):
    x = Value("x", TensorType("float32", ("batch", "seq", "heads")))
    node = Node("n", "full", [], [Value("n", TensorType("float32", shape))], attrs)
    return Graph([x], ["n"], [node], {}, {"batch": ("x", 0), "seq": ("x", 1), "heads": ("x", 2)})


@settings(max_examples=200, deadline=None)
@given(trees(), trees())
def test_dims_and_attributes_round_trip_through_the_proto_and_the_text_form(a, b):
    d, e = build(a), build(b)
    g = _graph((d, 4, e), {"size": (d, 4, e), "fill_value": Sym(e) if isinstance(e, str) else e})
    blob = model_to_proto(g, "test").SerializeToString(deterministic=True)
    msg = pb.Model()
    msg.ParseFromString(blob)
    back = model_from_proto(msg, lambda m: b"")
    assert back.nodes[0].outputs == g.nodes[0].outputs and back.nodes[0].attrs == g.nodes[0].attrs
    assert model_to_proto(back, "test").SerializeToString(deterministic=True) == blob  # normal form is stable
    t = g.nodes[0].outputs[0].type
    assert parse_shape(format_type(t).removeprefix("float32")) == t.shape
    assert parse_shape(format_attr(g.nodes[0].attrs["size"])) == (d, 4, e)
    assert parse_dim(format_attr(g.nodes[0].attrs["fill_value"])) == e


def test_expressions_are_stored_as_a_tree():
    g = _graph((parse("batch*seq-1"),), {"size": (parse("batch*seq-1"),), "fill_value": 0})
    dim = model_to_proto(g, "").graph.nodes[0].outputs[0].type.shape[0]
    assert dim.WhichOneof("kind") == "expr" and dim.expr.kind == pb.SizeExpr.ADD
    product, minus_one = dim.expr.operands
    assert product.expr.kind == pb.SizeExpr.MUL and [o.symbol for o in product.expr.operands] == ["batch", "seq"]
    assert minus_one.size == -1


@pytest.mark.parametrize("corrupt, match", [
    (lambda d: d.Clear(), "neither a size, a symbol nor an expression"),
    (lambda d: (d.expr.SetInParent(), setattr(d.expr, "kind", 7)), "kind 7"),
    (lambda d: (setattr(d.expr, "kind", pb.SizeExpr.FLOOR_DIV), d.expr.operands.add(symbol="seq"),
                d.expr.operands.add(size=0)), "positive size"),
])
def test_corrupt_dims_are_file_format_errors(corrupt, match):
    model = model_to_proto(_graph(("batch",), {"size": ("batch",), "fill_value": 0}), "")
    corrupt(model.graph.nodes[0].outputs[0].type.shape[0])
    with pytest.raises(FileFormatError, match=match):
        model_from_proto(model, lambda m: b"", "m.mir")


# --- type rules --------------------------------------------------------------------------------
def _infer(op, shapes, attrs, dtype="float32"):
    types = [None if s is None else TensorType(dtype, tuple(s)) for s in shapes]
    return [t.shape for t in ops.infer_types(ops.get(op), types, attrs)]


@pytest.mark.parametrize("op, shapes, attrs, want", [
    ("flatten", [("batch", "seq", 16)], {"start_dim": 0, "end_dim": 1}, ("batch*seq", 16)),
    ("reshape", [("batch", "seq", 16)], {"shape": (-1, 16)}, ("batch*seq", 16)),
    ("reshape", [("batch*seq", 16)], {"shape": ("batch", -1, 16)}, ("batch", "seq", 16)),
    ("reshape", [("batch", "seq", 16)], {"shape": (parse("batch*seq*2"), 8)}, ("2*batch*seq", 8)),
    ("reshape", [("batch", "seq", 16)], {"shape": ("batch", parse("seq//4"), 4, -1)},
     ("batch", "seq//4", 4, 16)),  # sizes divisible by 4: the second sentinel sets
    ("cat", [("batch", "seq"), ("batch", 1)], {"dim": 1}, ("batch", "seq+1")),
    ("cat", [("batch", "seq"), ("batch", "heads")], {"dim": 1}, ("batch", "heads+seq")),
    ("slice", [("batch", "seq")], {"dim": 1, "start": 1}, ("batch", "seq-1")),
    ("slice", [("batch*seq", 4)], {"dim": 0, "end": Sym("seq")}, ("seq", 4)),
    ("avg_pool2d", [("batch", 3, "seq", "seq")], {"kernel_size": (3, 3), "stride": (2, 2)},
     ("batch", 3, "(seq-1)//2", "(seq-1)//2")),
    ("arange", [], {"end": parse("seq+1")}, ("seq+1",)),
    ("full", [], {"size": (parse("seq//64"),), "fill_value": 0.0}, ("seq//64",)),  # 0 at both sentinel sets
    ("add", [("batch*seq", 4), ("batch*seq", 4)], {}, ("batch*seq", 4)),
    ("matmul", [(parse("2*batch"), "seq", 8), (parse("2*batch"), 8, "seq")], {}, ("2*batch", "seq", "seq")),
    # constant_pad_nd's fake kernel fixes seq at the size it runs at; the type rule runs torch's reference
    ("pad", [("batch", "seq")], {"pad": (0, 1), "value": -100.0}, ("batch", "seq+1")),
    ("pad", [("batch", 3, "seq")], {"pad": (2, 1), "mode": "reflect"}, ("batch", 3, "seq+3")),
    ("conv_transpose2d", [("batch", 4, "seq", "seq"), (4, 2, 3, 3)], {"stride": (2, 2), "padding": (1, 1)},
     ("batch", 2, "2*seq-1", "2*seq-1")),
])
def test_type_rules_give_size_expressions(op, shapes, attrs, want):
    shapes = [tuple(parse(d) if isinstance(d, str) else d for d in s) for s in shapes]
    (shape,) = _infer(op, shapes, attrs)
    assert shape == tuple(parse(d) if isinstance(d, str) else d for d in want)


def test_literal_sizes_stay_literal():
    (shape,) = _infer("reshape", [("batch", "seq", 16)], {"shape": ("batch", "seq", 4, 4)})
    assert shape == ("batch", "seq", 4, 4)


def test_a_kernel_that_fixes_a_symbolic_size_is_refused_not_taken_as_literal():
    """upsample by a float scale reads the sizes as numbers: its result at the sentinels is no dim."""
    with pytest.raises(ops.TypeRuleError, match="upsample_nearest2d: .*its kernel fixes batch, h, w to the sizes"):
        _infer("upsample_nearest2d", [("batch", 3, "h", "w")], {"scale_factors": (2.0, 2.0)})


def test_sizes_that_never_fit_are_refused_with_atens_message():
    with pytest.raises(ops.TypeRuleError, match="reshape: shape .* is invalid"):
        _infer("reshape", [("batch", "seq", 16)], {"shape": ("batch", "seq", 5)})


def test_shapes_agree_compares_values_at_the_sentinels():
    assert ops.shapes_agree((parse("seq//(seq//2)"), 4), (2, 4))
    assert not ops.shapes_agree((parse("seq//2"),), ("seq",))
    assert not ops.shapes_agree((3,), (4,))
