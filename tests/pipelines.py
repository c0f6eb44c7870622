"""Hypothesis strategies for pipelines, drawn from the pass registry's own specs."""

from hypothesis import strategies as st

from maseir import ops
from maseir.dsl import Pipeline, Step
from maseir.passes import REGISTRY
from maseir.passes.registry import OP, ArgSpec

words = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
# Any string a pipeline can hold (no control characters), with backslashes and quotes drawn often
# (next to each other, doubled, at either end) so the escape rule is exercised.
strings = st.text(alphabet=st.sampled_from('\\"') | st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                  max_size=12)
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}(\.[a-z0-9_]{1,4})?", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)


def value_for(arg: ArgSpec):
    """A value the validator accepts for ``arg``."""
    if arg.type == "list":
        items = st.sampled_from(arg.choices) if arg.choices else words
        return st.lists(items, min_size=2, max_size=4).map(tuple) | items
    if arg.type == "bool":
        return st.sampled_from(["true", "false"])
    if arg.type == "str":
        return st.sampled_from(arg.choices) if arg.choices else (words | strings)
    lo = arg.min if arg.min is not None else -1e6
    hi = arg.max if arg.max is not None else 1e6
    numbers = st.integers(int(lo), int(hi)) if arg.type == "int" else st.floats(lo, hi, allow_nan=False)
    return numbers | st.sampled_from(arg.words) if arg.words else numbers


@st.composite
def registry_steps(draw, specs=None):
    """A valid step of one of the registered passes (or of ``specs``)."""
    spec = draw(st.sampled_from(sorted((specs or REGISTRY).values(), key=lambda s: s.name)))
    obj = spec.object
    if obj is None and spec.objects is not None and (spec.object_required or draw(st.booleans())):
        obj = draw(st.sampled_from(sorted(ops.REGISTRY) if spec.objects == OP else list(spec.objects)))
    chosen = draw(st.lists(st.sampled_from(spec.args), unique_by=lambda a: a.name)) if spec.args else []
    args = tuple(sorted((a.name, draw(value_for(a))) for a in chosen))
    return Step(spec.verb, obj, args)


@st.composite
def free_steps(draw):
    """A syntactically valid step with any words and values (not checked against the registry)."""
    scalar = st.integers(-10**9, 10**9) | finite | words | strings
    value = scalar | st.lists(st.integers(-99, 99) | words, min_size=2, max_size=4).map(tuple)
    args = draw(st.lists(st.tuples(keys, value), max_size=4))  # a key may repeat (the validator refuses it)
    return Step(draw(words), draw(st.none() | words), tuple(sorted(args, key=lambda kv: kv[0])))


def pipelines(steps=None):
    steps = steps if steps is not None else (registry_steps() | free_steps())
    return st.lists(steps, max_size=6).map(lambda s: Pipeline(tuple(s)))
