"""The pipeline language: parse text into a Pipeline of Steps, and print it back.

The grammar is ``spec/passes.lark`` (shipped in the package as
``maseir.spec``). ``parse(text)`` gives plain dataclasses; ``print_pipeline``
gives the one canonical form (arguments sorted by key, single spaces,
identifiers bare and other strings quoted), so ``parse(print_pipeline(p)) ==
p``. Syntax errors are DSLError with the file, line, column, the line itself
and a caret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Union

from lark import Lark, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from ._spec import spec_text
from .errors import MaseIRError

Scalar = Union[int, float, str]
ArgValue = Union[Scalar, tuple]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\Z")
_VERB = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


class DSLError(MaseIRError):
    """A pipeline that cannot be parsed or validated.

    ``str()`` is the one-line message (``file:line:col: what``); ``context``
    is the offending line with a caret under the column.
    """

    def __init__(self, message: str, *, source: str = "<pipeline>", line: int = 0, column: int = 0,
                 text: str = ""):
        self.source, self.line, self.column = source, line, column
        self.message = message
        where = f"{source}:{line}:{column}: " if line else f"{source}: "
        super().__init__(where + message)
        self.context = ""
        if line and text:
            lines = source_lines(text)
            if 0 < line <= len(lines):
                src = lines[line - 1].expandtabs(1)
                self.context = f"  {src}\n  {' ' * max(column - 1, 0)}^"


@dataclass(frozen=True)
class Step:
    """One line of a pipeline: ``verb [object] key=value ...``.

    ``args`` is sorted by key. ``line`` and ``column`` say where it came
    from (for error messages) and are not part of equality.
    """

    verb: str
    object: str | None = None
    args: tuple[tuple[str, ArgValue], ...] = ()
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)

    @property
    def arg_dict(self) -> dict[str, ArgValue]:
        return dict(self.args)

    def __str__(self) -> str:
        return print_step(self)


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...] = ()
    source: str = field(default="<pipeline>", compare=False)
    text: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        return print_pipeline(self)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = spec_text("passes.lark")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


class _ToSteps(Transformer):
    def start(self, steps):
        return list(steps)

    def step(self, children):
        verb = children[0]
        obj = None
        args: dict[str, ArgValue] = {}
        for child in children[1:]:
            if isinstance(child, _Obj):
                obj = child.name
            else:
                key, value, token = child
                if key in args:
                    raise DSLError(f"argument {key} given twice", line=token.line, column=token.column)
                args[key] = value
        return Step(str(verb), obj, tuple(sorted(args.items())), verb.line, verb.column)

    def object(self, children):
        return _Obj(str(children[0]))

    def arg(self, children):
        key, value = children
        return (str(key), value, key)

    def list(self, items):
        return tuple(items)

    def int(self, children):
        return int(children[0])

    def float(self, children):
        return float(children[0])

    def word(self, children):
        return str(children[0])

    def string(self, children):
        return json.loads(children[0])


@dataclass(frozen=True)
class _Obj:
    name: str


def parse(text: str, source: str = "<pipeline>") -> Pipeline:
    """Parse pipeline text; raises DSLError with line and column."""
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
        steps = _ToSteps().transform(tree)
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, DSLError):
            raise DSLError(inner.message, source=source, line=inner.line, column=inner.column,
                           text=text) from None
        raise DSLError(f"invalid value: {inner}", source=source, text=text) from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, source) from None
    return Pipeline(tuple(steps), source, text)


def source_lines(text: str) -> list[str]:
    """Lines as the parser counts them: split at newlines only (str.splitlines
    also splits at form feeds and other separators a comment may hold)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _syntax_error(exc: UnexpectedInput, text: str, source: str) -> DSLError:
    line, column = getattr(exc, "line", 0) or 0, getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        char = source_lines(text)[line - 1][column - 1:column] if line else ""
        what = f"unexpected character {char!r}"
        if char == '"':
            what = "unterminated string"
    elif isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END" or token.type == "_NL":
            what = "unexpected end of line"
            if exc.expected & {"SIGNED_INT", "SIGNED_FLOAT", "WORD", "STRING"}:
                what += " (a value is missing after '=')"
        else:
            what = f"unexpected {token.value!r}"
            if token.type == "VERB" or token.type == "WORD" and "KEY" in exc.expected:
                what += " (arguments are key=value)"
    elif isinstance(exc, UnexpectedEOF):
        what = "unexpected end of text"
    else:
        what = "syntax error"
    if not line:  # end of input: point at the end of the last line
        lines = source_lines(text.rstrip("\n"))
        line, column = len(lines), len(lines[-1]) + 1
    return DSLError(what, source=source, line=line, column=column, text=text)


# --- canonical printing --------------------------------------------------------------
def print_value(value: ArgValue) -> str:
    if isinstance(value, tuple):
        return ",".join(print_value(v) for v in value)
    if isinstance(value, bool):
        raise TypeError("booleans are written as identifiers: true / false")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"{text} cannot be written in a pipeline")
        return text
    return value if _WORD.match(value) else json.dumps(value)


def print_step(step: Step) -> str:
    parts = [step.verb] + ([step.object] if step.object else [])
    parts += [f"{key}={print_value(value)}" for key, value in step.args]
    return " ".join(parts)


def print_pipeline(pipeline: Pipeline) -> str:
    return "".join(print_step(s) + "\n" for s in pipeline.steps)


def is_word(text: str) -> bool:
    return bool(_WORD.match(text))


def is_key(text: str) -> bool:
    return bool(_KEY.match(text))


def is_verb(text: str) -> bool:
    return bool(_VERB.match(text))
