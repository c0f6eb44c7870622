"""The pass registry: every pass declares its object and arguments once.

The declaration serves three readers: the validator (a pipeline is checked
whole before any step runs), ``maseir passes`` and the docs. A pass is a
function ``(Graph, StepArgs) -> PassResult``; it never mutates its input
graph (the runner checks digests) and is deterministic for a given seed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import ops
from ..dsl import ArgValue, DSLError, Pipeline, Step, clip
from ..ir import Graph

OP = "op"
"""``PassSpec.objects`` value meaning: any op name of the registry."""


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a pass: ``type`` is int, float, str, bool or list (of words).

    ``words`` are names an int or float argument also takes (``frac=auto``)."""

    name: str
    type: str
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    words: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [self.type + "".join(f" or {w}" for w in self.words)]
        if self.choices:
            parts.append("one of " + "|".join(self.choices))
        if self.min is not None or self.max is not None:
            lo = "" if self.min is None else f"{self.min:g} <= "
            hi = "" if self.max is None else f" <= {self.max:g}"
            parts.append(f"{lo}{self.name}{hi}")
        if self.default is not None:
            parts.append(f"default {self.default}")
        return ", ".join(parts)


@dataclass(frozen=True)
class StepArgs:
    """What a pass receives: the step's object, its argument values (defaults
    filled in), and the pipeline seed."""

    object: str | None
    values: dict[str, Any]
    seed: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


@dataclass
class PassResult:
    """A pass's output graph, a JSON-able report, and the one-line summary ``apply`` prints.

    ``details`` go into the step's history entry in the file: what, beyond the
    step's text, makes it reproducible (a finetune's dataset and its digest)."""

    graph: Graph
    report: dict
    summary: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PassSpec:
    """A registered pass.

    A pass is keyed by what it does: a verb alone (``lora``, ``count``) or a
    verb and its ``object`` word (``remove dropout``, ``fuse lora``), so each
    pass family registers its own (verb, object) pairs in its own module. A
    verb-only pass may still take an object: ``objects`` is None (no object),
    ``OP`` (any op name) or a tuple of allowed words. ``explain_object`` may
    say why a word is not allowed. ``analysis`` passes return their input
    graph unchanged.
    """

    verb: str
    run: Callable[[Graph, StepArgs], PassResult]
    help: str
    objects: Any = None
    object_required: bool = False
    object_help: str = ""
    args: tuple[ArgSpec, ...] = ()
    analysis: bool = False
    explain_object: Callable[[str], str | None] | None = None
    object: str | None = None

    @property
    def name(self) -> str:
        """The registry key: ``verb`` or ``verb object``."""
        return f"{self.verb} {self.object}" if self.object else self.verb

    def arg(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args if a.name == name), None)

    def usage(self) -> str:
        if self.object:
            return self.name + "".join(f" {a.name}=..." for a in self.args)
        obj = ""
        if self.objects is not None:
            word = "OP" if self.objects == OP else "|".join(self.objects)
            obj = f" {word}" if self.object_required else f" [{word}]"
        return self.verb + obj + "".join(f" {a.name}=..." for a in self.args)


REGISTRY: dict[str, PassSpec] = {}


def register(spec: PassSpec) -> PassSpec:
    """Add ``spec`` under its name (``verb`` or ``verb object``)."""
    taken = spec.name in REGISTRY or (spec.object is None and any(s.verb == spec.verb for s in REGISTRY.values())) \
        or (spec.object is not None and spec.verb in REGISTRY)
    if taken:
        raise ValueError(f"pass {spec.name} registered twice (or its verb is taken by a verb-only pass)")
    REGISTRY[spec.name] = spec
    return spec


def verbs() -> list[str]:
    """Every verb a pipeline can start a step with."""
    return sorted({s.verb for s in REGISTRY.values()})


@dataclass(frozen=True)
class BoundStep:
    """A validated step: its pass and its arguments with defaults filled in."""

    step: Step
    spec: PassSpec
    args: StepArgs = field(compare=False)


def validate(pipeline: Pipeline, seed: int = 0) -> list[BoundStep]:
    """Check every step of ``pipeline`` against the registry; the first
    problem raises DSLError with its line and column and the valid choices.

    Within a step the checks run in this order: the pass, its object, unknown
    argument names, arguments given twice, then each value (arguments in the
    order they were written)."""
    return [bind(step, pipeline, seed) for step in pipeline.steps]


def bind(step: Step, pipeline: Pipeline, seed: int = 0) -> BoundStep:
    def fail(message: str, column: int | None = None) -> DSLError:
        return DSLError(message, source=pipeline.source, line=step.line,
                        column=column or step.column, text=pipeline.text)

    spec = REGISTRY.get(f"{step.verb} {step.object}") if step.object is not None else None
    spec = spec or REGISTRY.get(step.verb)
    if spec is None:
        keyed = sorted((s for s in REGISTRY.values() if s.verb == step.verb and s.object), key=lambda s: s.name)
        if not keyed:
            raise fail(f"unknown pass {clip(step.verb)!r}{_suggest(step.verb, verbs())}; "
                       f"passes: {', '.join(verbs())}")
        if step.object is None:
            raise fail(f"{step.verb} needs an object: {' | '.join(s.usage() for s in keyed)}")
        objects = [s.object for s in keyed]
        reason = next((r for r in (s.explain_object(step.object) for s in keyed if s.explain_object) if r), None)
        reason = reason or f"unknown object {clip(step.object)!r}{_suggest(step.object, objects)}"
        raise fail(f"{step.verb} {clip(step.object)}: {reason}; {step.verb} takes: {', '.join(objects)}",
                   step.object_column)
    if step.object is None and spec.object_required:
        raise fail(f"{spec.verb} needs an object: {spec.usage()}")
    if step.object is not None and not spec.object:  # a keyed pass's object is its own word
        column = step.object_column
        if spec.objects is None:
            raise fail(f"{spec.verb} takes no object (got {clip(step.object)!r}): {spec.usage()}", column)
        allowed = ops.REGISTRY if spec.objects == OP else spec.objects
        if step.object not in allowed:
            reason = spec.explain_object(step.object) if spec.explain_object else None
            if reason is None:
                what = "op" if spec.objects == OP else "object"
                reason = f"unknown {what} {clip(step.object)!r}{_suggest(step.object, allowed)}"
                if spec.objects != OP:
                    reason += f"; choose from {', '.join(allowed)}"
            raise fail(f"{spec.verb} {clip(step.object)}: {reason}", column)
    columns = step.arg_columns if len(step.arg_columns) == len(step.args) else (0,) * len(step.args)
    written = sorted(zip(step.args, columns), key=lambda a: a[1])  # source order (stable for 0s)
    names = [a.name for a in spec.args]
    for (key, _), column in written:
        if spec.arg(key) is None:
            choices = f"; arguments: {', '.join(names)}" if names else "; it takes no arguments"
            raise fail(f"{spec.verb}: unknown argument {clip(key)!r}{_suggest(key, names)}{choices}", column)
    seen = set()
    for (key, _), column in written:
        if key in seen:
            raise fail(f"{spec.verb}: argument {key} given twice", column)
        seen.add(key)
    values = {a.name: a.default for a in spec.args}
    for (key, value), column in written:
        arg = spec.arg(key)
        problem, converted = _convert(arg, value)
        if problem:
            raise fail(f"{spec.verb}: {key}={_show(value)}: {problem}", column)
        values[key] = converted
    return BoundStep(step, spec, StepArgs(step.object, values, seed))


def _convert(arg: ArgSpec, value: ArgValue) -> tuple[str | None, Any]:
    if arg.type == "list":
        items = value if isinstance(value, tuple) else (value,)
        if not all(isinstance(v, str) for v in items):
            return "expected a comma list of names", None
        bad = [v for v in items if arg.choices and v not in arg.choices]
        if bad:
            return f"{clip(bad[0])!r} is not one of {', '.join(arg.choices)}{_suggest(bad[0], arg.choices)}", None
        return None, tuple(items)
    if isinstance(value, tuple):
        return f"expected one {arg.type}, got a list", None
    if isinstance(value, str) and value in arg.words:
        return None, value
    if arg.type == "bool":
        if value in ("true", "false"):
            return None, value == "true"
        return "expected true or false", None
    if arg.type == "int":
        if not isinstance(value, int):
            return f"expected an integer{''.join(f' or {w}' for w in arg.words)}, got {_kind(value)}", None
    elif arg.type == "float":
        if not isinstance(value, (int, float)):
            return f"expected a number{''.join(f' or {w}' for w in arg.words)}, got {_kind(value)}", None
        value = float(value)
    elif arg.type == "str":
        if not isinstance(value, str):
            return f"expected a name or a quoted string, got {_kind(value)}", None
        if arg.choices and value not in arg.choices:
            return f"choose from {', '.join(arg.choices)}{_suggest(value, arg.choices)}", None
    if arg.min is not None and value < arg.min or arg.max is not None and value > arg.max:
        lo = "" if arg.min is None else f"{arg.min:g} <= "
        hi = "" if arg.max is None else f" <= {arg.max:g}"
        return f"out of range ({lo}{arg.name}{hi})", None
    return None, value


def _kind(value) -> str:
    if isinstance(value, str):
        return f"the name {clip(value)!r}"
    return "an integer" if isinstance(value, int) else "a number"


def _show(value: ArgValue) -> str:
    from ..dsl import print_value
    return clip(print_value(value))


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
