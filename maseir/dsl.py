"""The pipeline language: parse text into a Pipeline of Steps, and print it back.

The grammar is ``spec/passes.lark`` (shipped in the package as
``maseir.spec``). ``parse(text)`` gives plain dataclasses; ``print_pipeline``
gives the one canonical form (arguments sorted by key, single spaces,
identifiers bare and other strings quoted), so ``parse(print_pipeline(p)) ==
p``. ``read_pipeline(path)`` reads a file (UTF-8, or UTF-16/32 with a byte
order mark). Every error is a DSLError with the file, line and column, and a
window of the line with a caret under the column.

Strings (the grammar's STRING) keep every backslash except one that escapes a
quote or a backslash: ``\\"`` is ``"``, ``\\\\`` is ``\\``, and
``"encoder\\.layer"`` is the regex ``encoder\\.layer``. They hold no control
characters, so every string a pipeline can hold prints and parses back.
"""

from __future__ import annotations

import codecs
import math
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
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPED = re.compile(r'\\([\\"])')              # what a string's text unescapes: \" and \\
_NEEDS_ESCAPE = re.compile(r'\\(?=[\\"]|\Z)|"')   # what the printer escapes
CONTEXT_WIDTH = 100
"""The most characters of a source line an error shows (a window around the column)."""


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
                self.context = caret_context(lines[line - 1], column)


def caret_context(line: str, column: int, width: int = CONTEXT_WIDTH) -> str:
    """Two lines: ``line`` (at most ``width`` characters of it, around
    ``column``, with ``...`` where it is cut) and a caret under ``column``
    (1-based). Tabs and other control characters show as one character each
    (a space, a ``?``), so the caret stays under its character."""
    index = min(max(column - 1, 0), len(line))
    start = max(0, min(index - width // 2, len(line) - width))
    end = min(len(line), start + width)
    shown = _CONTROL.sub(lambda m: " " if m.group() == "\t" else "?", line[start:end])
    left = "..." if start > 0 else ""
    right = "..." if end < len(line) else ""
    return f"  {left}{shown}{right}\n  {' ' * (len(left) + index - start)}^"


def clip(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...`` when cut), for
    quoting user text in a one-line message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class Step:
    """One line of a pipeline: ``verb [object] key=value ...``.

    ``args`` is sorted by key (stably: a key given twice stays twice, in
    source order, for the validator to refuse). ``line`` and ``column`` (of
    the verb), ``object_column`` and ``arg_columns`` (of each key, in the
    order of ``args``) say where it came from, for error messages; they are 0
    or empty for a step not parsed from text, and not part of equality.
    """

    verb: str
    object: str | None = None
    args: tuple[tuple[str, ArgValue], ...] = ()
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)
    object_column: int = field(default=0, compare=False)
    arg_columns: tuple[int, ...] = field(default=(), compare=False)

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
    """Tree -> list of Steps. Value errors are DSLError at the value's token."""

    def start(self, steps):
        return list(steps)

    def step(self, children):
        verb = children[0]
        obj, obj_column, args = None, 0, []
        for child in children[1:]:
            if isinstance(child, _Obj):
                obj, obj_column = child.name, child.column
            else:
                args.append(child)
        args.sort(key=lambda a: a[0])  # stable: repeats keep their order
        return Step(str(verb), obj, tuple((k, v) for k, v, _ in args), verb.line, verb.column, obj_column,
                    tuple(c for _, _, c in args))

    def object(self, children):
        return _Obj(str(children[0]), children[0].column)

    def arg(self, children):
        key, value = children
        return (str(key), value, key.column)

    def list(self, items):
        return tuple(items)

    def int(self, children):
        token = children[0]
        try:
            return int(token)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise _at(token, f"integer too long ({len(token)} characters)") from None

    def float(self, children):
        token = children[0]
        value = float(token)
        if not math.isfinite(value):
            raise _at(token, f"number out of range: {clip(str(token))}")
        return value

    def word(self, children):
        return str(children[0])

    def string(self, children):
        return unquote(children[0])


def _at(token, message: str) -> DSLError:
    return DSLError(message, line=token.line, column=token.column)


@dataclass(frozen=True)
class _Obj:
    name: str
    column: int


def unquote(literal: str) -> str:
    """The value of a STRING literal (with its quotes): ``\\"`` -> ``"``,
    ``\\\\`` -> ``\\``, every other backslash kept."""
    return _ESCAPED.sub(r"\1", literal[1:-1])


def quote(value: str) -> str:
    """``value`` as a STRING literal that ``unquote`` reads back: a quote, and a
    backslash before a backslash, a quote or the end, get a backslash; others
    stay as they are (``encoder\\.layer`` prints as written). Raises
    ValueError for a control character, which no string can hold."""
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(f"control character U+{ord(bad.group()):04X} cannot be written in a pipeline string")
    return '"' + _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(), value) + '"'


BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                    (codecs.BOM_UTF16_BE, "utf-16-be"))
"""(byte order mark, codec) for the encodings a pipeline file may have (UTF-32 before
UTF-16, whose little-endian mark starts UTF-32's); without a mark it is UTF-8."""


def decode(data: bytes, source: str = "<pipeline>") -> str:
    """Pipeline file bytes -> text: UTF-8, or UTF-8/16/32 with a byte order
    mark (which is dropped). Raises DSLError at the line and column (and byte
    offset in the file) of the first bytes that do not decode, and of a NUL
    byte in UTF-8 (a UTF-16 file without a mark, or a binary file such as a
    .mir)."""
    bom, codec = next(((b, c) for b, c in BYTE_ORDER_MARKS if data.startswith(b)), (b"", "utf-8"))
    body = data[len(bom):]
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        offset = len(bom) + exc.start
        what = (f"byte 0x{body[exc.start]:02x} at offset {offset} is not UTF-8" if codec == "utf-8" else
                f"the bytes at offset {offset} are not {codec[:6].upper()} ({exc.reason})")
        raise _decode_error(body, codec, exc.start, source, what + "; save the pipeline as UTF-8 text") from None
    if codec == "utf-8" and "\0" in text:
        start = body.index(b"\0")
        raise _decode_error(body, codec, start, source,
                            f"NUL byte at offset {len(bom) + start}: a pipeline is UTF-8 text (is this UTF-16 "
                            "without a byte order mark, or a binary file such as a .mir?)")
    return text


def _decode_error(body: bytes, codec: str, start: int, source: str, what: str) -> DSLError:
    """DSLError at ``body[start]`` (``body``: the file after its byte order mark)."""
    before = body[:start].decode(codec, errors="replace")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return DSLError(what, source=source, line=line, column=column, text=body.decode(codec, errors="replace"))


def read_pipeline(path, source: str | None = None) -> Pipeline:
    """Read and parse the pipeline file at ``path`` (see ``decode``); errors
    are MaseIRError (a missing or unreadable file) or DSLError, naming
    ``source`` (default: the path as given)."""
    from pathlib import Path
    source = str(path) if source is None else source
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MaseIRError(f"{source}: no such pipeline file") from None
    except OSError as exc:
        raise MaseIRError(f"{source}: cannot read the pipeline: {exc.strerror or exc}") from None
    return parse(decode(data, source), source)


def parse(text: str, source: str = "<pipeline>") -> Pipeline:
    """Parse pipeline text (a leading byte order mark, U+FEFF, is dropped);
    raises DSLError with line and column."""
    text = text.removeprefix("\ufeff")
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
        steps = _ToSteps().transform(tree)
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, DSLError):
            raise DSLError(inner.message, source=source, line=inner.line, column=inner.column,
                           text=text) from None
        meta = getattr(exc.obj, "meta", exc.obj)  # a Tree's meta, or the Token itself
        raise DSLError(f"invalid value: {clip(str(inner), 80)}", source=source,
                       line=getattr(meta, "line", 0) or 0, column=getattr(meta, "column", 0) or 0,
                       text=text) from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, source) from None
    return Pipeline(tuple(steps), source, text)


_VALUE_PREFIX = "_ value="


def parse_value(text: str, source: str = "<value>") -> ArgValue:
    """One argument value written as a pipeline writes it after ``key=``: ``4`` (int),
    ``0.5`` (float), ``l1`` (a name), ``"a b"`` (a string), or a comma list of those
    (``4,8`` -> the tuple ``(4, 8)``), so a value given elsewhere (``maseir sweep --vary``)
    means what it means in a pipeline.

    Raises DSLError (line 1, the column within ``text``) for what a pipeline would refuse,
    and for a line break or a ``#`` outside a quoted string (in a pipeline these end the
    value; here they would drop the rest silently)."""
    index = _outside_strings(text, "\r\n#")
    if index is not None:
        what = "a line break" if text[index] in "\r\n" else "'#' (a comment in a pipeline; quote it)"
        raise DSLError(f"a value cannot hold {what}", source=source, line=1, column=index + 1,
                       text=text.replace("\r", " ").replace("\n", " "))
    try:
        pipeline = parse(_VALUE_PREFIX + text, source)
    except DSLError as exc:
        raise DSLError(exc.message, source=source, line=1, column=max(exc.column - len(_VALUE_PREFIX), 1),
                       text=text) from None
    (step,) = pipeline.steps
    if step.object is not None or len(step.args) != 1:
        raise DSLError("expected one value (a comma list for several)", source=source, line=1, column=1,
                       text=text)
    return step.args[0][1]


def _outside_strings(text: str, chars: str) -> int | None:
    """Index of the first of ``chars`` outside a double-quoted string (escapes as STRING's), or None."""
    quoted, i = False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in chars and (not quoted or c in "\r\n"):
            return i
        i += 1
    return None


def source_lines(text: str) -> list[str]:
    """Lines as the parser counts them: split at newlines only (str.splitlines
    also splits at form feeds and other separators a comment may hold)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _syntax_error(exc: UnexpectedInput, text: str, source: str) -> DSLError:
    line, column = getattr(exc, "line", 0) or 0, getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        src = source_lines(text)[line - 1] if line else ""
        char = src[column - 1:column]
        what = f"unexpected character {char!r}"
        if char == '"':
            what, column = _bad_string(src, column)
    elif isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END" or token.type == "_NL":
            what = "unexpected end of line"
            if exc.expected & {"SIGNED_INT", "SIGNED_FLOAT", "WORD", "STRING"}:
                what += " (a value is missing after '=')"
        else:
            what = f"unexpected {clip(str(token.value))!r}"
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


def _bad_string(line: str, column: int) -> tuple[str, int]:
    """Why the string opening at ``column`` does not lex, and where."""
    i, escaped_quote = column, False  # i: 0-based index just after the opening quote
    while i < len(line) and line[i] != '"':
        if _CONTROL.match(line[i]):
            return (f"control character U+{ord(line[i]):04X} in a string (strings hold no control "
                    "characters)", i + 1)
        if line[i] == "\\" and i + 1 < len(line) and not _CONTROL.match(line[i + 1]):
            escaped_quote |= line[i + 1] == '"'
            i += 2
        else:
            i += 1
    hint = ' (\\" inside a string is a quote; write \\\\ for a backslash before the closing quote)'
    return "unterminated string" + (hint if escaped_quote else ""), column


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
    return value if _WORD.match(value) else quote(value)


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
