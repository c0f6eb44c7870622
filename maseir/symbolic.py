"""Symbolic sizes: a dim is an int, a symbol (``"seq"``) or a ``SizeExpr``.

A ``SizeExpr`` is a size computed from symbols and ints with ``+``, ``-``,
``*`` and floor division ``//``: ``batch*seq`` (a reshape that merges two
dims), ``seq+1`` (a concatenated token), ``(seq-1)//2+1`` (a strided
convolution). Plain ints and plain symbols are never wrapped: every function
here returns an ``int`` for a constant and a ``str`` for a lone symbol, so the
code that handles ``int | str`` dims keeps working and an expression is always
something more.

The normal form is a polynomial with integer coefficients whose variables are
the symbols and the floor divisions that do not simplify (``seq//4``). Terms
are kept in a fixed order (highest degree first, then by name), so equal
polynomials are equal objects, print the same text and serialize to the same
bytes. Floor division simplifies what integer arithmetic allows:
``(4*batch*seq+seq+3)//4`` is ``batch*seq+(seq+3)//4``, ``(seq//2)//3`` is
``seq//6``, ``(2*seq)//4`` is ``seq//2``, an exact quotient by a product of
symbols (``(batch*seq)//seq`` is ``batch``) is taken. Symbols stand for sizes
(non-negative ints); a symbolic divisor is taken to be positive. Equal values
that these rules do not relate compare unequal (``seq//2+(seq+1)//2`` is
``seq`` for every size, but stays as written).

Why not sympy: ``maseir show`` and ``maseir check --structure`` read files
without torch and must start fast (sympy alone takes longer to import than the
CLI's whole budget); the canonical text must stay the same across sympy
releases so git diffs of ``.mir`` files stay stable; and the IR needs four
operations, evaluation, printing and parsing, which fit in this module. sympy
is still what torch.export hands over; ``from_sympy`` converts it.

The text form is Python's integer syntax (``+ - * // **``, parentheses), with
the precedence Python gives it; ``parse`` reads it back (it never evaluates
anything) and ``parse(str(d)) == d`` for every dim whose symbols are
identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import gcd
from typing import Any, Callable, Mapping, Union

Dim = Union[int, str, "SizeExpr"]
"""One dimension: a fixed size, a symbolic name such as ``batch``, or an expression of them."""

_Mono = tuple  # ((atom, power), ...) sorted by atom; () is the constant monomial


@dataclass(frozen=True)
class FloorDiv:
    """``num // den`` where it does not simplify: a variable of a SizeExpr's polynomial.

    ``num`` is any dim, ``den`` a positive int or a symbolic dim (taken to be positive)."""

    num: Dim
    den: Dim

    @cached_property
    def text(self) -> str:
        return f"{_numerator_text(self.num)}//{_denominator_text(self.den)}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SizeExpr:
    """A size computed from symbols: a polynomial over symbols and FloorDiv atoms.

    Make one with ``add``, ``sub``, ``mul``, ``floordiv`` or ``parse``, never
    directly: they keep the normal form (``terms``: ``((monomial, coefficient),
    ...)`` in canonical order, a monomial being ``((atom, power), ...)``), and
    return a plain int or symbol name where the result is one."""

    terms: tuple

    @cached_property
    def text(self) -> str:
        parts = []
        for i, (mono, coeff) in enumerate(self.terms):
            magnitude = abs(coeff)
            if not mono:
                body = str(magnitude)
            else:
                alone = coeff == 1 and len(mono) == 1 and mono[0][1] == 1
                factors = "*".join(_factor_text(atom, power, alone) for atom, power in mono)
                body = factors if magnitude == 1 else f"{magnitude}*{factors}"
            parts.append(("-" if coeff < 0 else "+" if i else "") + body)
        return "".join(parts)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"SizeExpr({self.text!r})"


# --- arithmetic --------------------------------------------------------------------------
def is_symbolic(d: Any) -> bool:
    """Whether ``d`` is a symbolic dim: a symbol name or an expression."""
    return isinstance(d, (str, SizeExpr))


def add(*dims: Dim) -> Dim:
    """The sum of ``dims``."""
    total: dict = {}
    for d in dims:
        for mono, coeff in _poly(d).items():
            total[mono] = total.get(mono, 0) + coeff
    return _dim(total)


def sub(a: Dim, b: Dim) -> Dim:
    """``a - b``."""
    return add(a, mul(-1, b))


def mul(*dims: Dim) -> Dim:
    """The product of ``dims``."""
    product: dict = {(): 1}
    for d in dims:
        poly = _poly(d)
        result: dict = {}
        for m1, c1 in product.items():
            for m2, c2 in poly.items():
                mono = _mono_mul(m1, m2)
                result[mono] = result.get(mono, 0) + c1 * c2
        product = {m: c for m, c in result.items() if c}
    return _dim(product)


def floordiv(a: Dim, b: Dim) -> Dim:
    """``a // b`` (floor division). ``b`` must be a positive int or symbolic (taken
    to be positive); raises ValueError for a constant divisor below 1."""
    num, den = _poly(a), _dim(_poly(b))
    if isinstance(den, int):
        if den < 1:
            raise ValueError(f"floor division of {_text(a)} by {den}: a divisor must be a positive size")
        return _floordiv_int(num, den)
    if not num:
        return 0
    den_poly = _poly(den)
    if len(den_poly) == 1:
        ((den_mono, den_coeff),) = den_poly.items()
        if den_coeff > 0:  # terms divisible by the single-term divisor come out of the floor
            quotient, rest = {}, {}
            for mono, coeff in num.items():
                q = _mono_div(mono, den_mono)
                if q is not None and coeff % den_coeff == 0:
                    quotient[q] = coeff // den_coeff
                else:
                    rest[mono] = coeff
            if not rest:
                return _dim(quotient)
            return add(_dim(quotient), _atom_dim(FloorDiv(_dim(rest), den)))
    ratio = _multiple(num, den_poly)
    if ratio is not None:
        return ratio
    return _atom_dim(FloorDiv(_dim(num), den))


def _floordiv_int(num: dict, k: int) -> Dim:
    if k == 1:
        return _dim(num)
    # (k*q + r) // k == q + r // k for integer-valued q: coefficients split into both parts.
    quotient, rest = {}, {}
    for mono, coeff in num.items():
        q, r = divmod(coeff, k)
        if q:
            quotient[mono] = q
        if r:
            rest[mono] = r
    if not rest or set(rest) == {()}:  # 0 <= r < k: nothing or a constant below k
        return _dim(quotient)
    g = gcd(k, *rest.values())
    if g > 1:  # (g*x) // (g*m) == x // m
        rest, k = {m: c // g for m, c in rest.items()}, k // g
    if len(rest) == 1:
        ((mono, coeff),) = rest.items()
        if coeff == 1 and len(mono) == 1 and mono[0][1] == 1 and isinstance(mono[0][0], FloorDiv):
            inner = mono[0][0]  # (x // m) // k == x // (m*k)
            return add(_dim(quotient), floordiv(inner.num, mul(inner.den, k)))
    return add(_dim(quotient), _atom_dim(FloorDiv(_dim(rest), k)))


def _multiple(num: dict, den: dict) -> int | None:
    """c when ``num == c * den`` for an int c, else None."""
    if set(num) != set(den):
        return None
    mono = next(iter(den))
    if num[mono] % den[mono]:
        return None
    c = num[mono] // den[mono]
    return c if all(num[m] == c * den[m] for m in den) else None


# --- reading a dim -------------------------------------------------------------------------
def symbols(d: Dim) -> frozenset[str]:
    """The symbol names ``d`` uses."""
    if isinstance(d, str):
        return frozenset((d,))
    if isinstance(d, int):
        return frozenset()
    found: set[str] = set()
    for mono, _ in d.terms:
        for atom, _ in mono:
            found |= {atom} if isinstance(atom, str) else symbols(atom.num) | symbols(atom.den)
    return frozenset(found)


def is_nonnegative(d: Dim) -> bool:
    """Whether ``d`` is at least 0 for all sizes of its symbols (sufficient test:
    non-negative coefficients of non-negative atoms)."""
    if isinstance(d, int):
        return d >= 0
    if isinstance(d, str):
        return True
    return all(coeff > 0 and all(isinstance(a, str) or is_nonnegative(a.num) for a, _ in mono)
               for mono, coeff in d.terms)


def fold(d: Dim, leaf: Callable[[int | str], Any], add: Callable, sub: Callable, mul: Callable,
         floordiv: Callable, recurse: Callable[[Dim], Any] | None = None) -> Any:
    """``d`` computed with the given operations: ``leaf`` turns an int or a symbol name
    into a value, the others combine two values. ``recurse`` computes the numerator and
    denominator of a floor division (default: ``fold`` again; a caller that caches
    sub-results passes its own). Used to evaluate a dim and to emit the nodes that
    compute it (torch sym sizes, ONNX ``Shape`` arithmetic)."""
    if isinstance(d, (int, str)):
        return leaf(d)
    if recurse is None:
        def recurse(x):
            return fold(x, leaf, add, sub, mul, floordiv)
    total = None
    for mono, coeff in d.terms:
        value = None
        for atom, power in mono:
            v = leaf(atom) if isinstance(atom, str) else floordiv(recurse(atom.num), recurse(atom.den))
            for _ in range(power):
                value = v if value is None else mul(value, v)
        magnitude = abs(coeff)
        if value is None:
            value = leaf(magnitude)
        elif magnitude != 1:
            value = mul(leaf(magnitude), value)
        if total is None:
            total = value if coeff > 0 else sub(leaf(0), value)
        else:
            total = add(total, value) if coeff > 0 else sub(total, value)
    return total


def evaluate(d: Dim, sizes: Mapping[str, int]) -> int:
    """The int ``d`` is when its symbols have ``sizes``. Raises KeyError for a symbol
    without a size, ValueError for a division by zero."""
    def leaf(x):
        return x if isinstance(x, int) else int(sizes[x])

    def divide(a, b):
        if b == 0:
            raise ValueError(f"{_text(d)} divides by zero at sizes {dict(sizes)}")
        return a // b
    return fold(d, leaf, lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, divide)


def substitute(d: Dim, values: Mapping[str, Dim]) -> Dim:
    """``d`` with each symbol in ``values`` replaced by its dim (others kept)."""
    return fold(d, lambda x: values.get(x, x) if isinstance(x, str) else x, add, sub, mul, floordiv)


# --- text ------------------------------------------------------------------------------------
def format_dim(d: Dim) -> str:
    """The canonical text of a dim: ``128``, ``seq``, ``batch*seq``, ``seq//4+1``."""
    return _text(d)


class _Parser:
    _TOKENS = ("**", "//", "+", "-", "*", "(", ")")
    _MAX_DEPTH = 64

    def __init__(self, text: str):
        self.text = text
        self.tokens = self._lex(text)
        self.i = 0
        self.depth = 0

    def _lex(self, text: str) -> list[tuple[str, Any, int]]:
        tokens, i = [], 0
        while i < len(text):
            c = text[i]
            if c.isspace():
                i += 1
            elif c.isascii() and c.isdigit():
                j = i
                while j < len(text) and text[j].isascii() and text[j].isdigit():
                    j += 1
                tokens.append(("int", int(text[i:j]), i))
                i = j
            elif c == "_" or c.isascii() and c.isalpha():
                j = i
                while j < len(text) and (text[j] == "_" or text[j].isascii() and text[j].isalnum()):
                    j += 1
                tokens.append(("name", text[i:j], i))
                i = j
            else:
                op = next((t for t in self._TOKENS if text.startswith(t, i)), None)
                if op is None:
                    raise self._error(f"unexpected {c!r}", i)
                tokens.append((op, op, i))
                i += len(op)
        tokens.append(("end", None, len(text)))
        return tokens

    def _error(self, why: str, at: int) -> ValueError:
        return ValueError(f"size expression {self.text!r}, column {at + 1}: {why}")

    def peek(self) -> str:
        return self.tokens[self.i][0]

    def take(self):
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Dim:
        value = self.expr()
        if self.peek() != "end":
            raise self._error(f"unexpected {self.tokens[self.i][1]!r}", self.tokens[self.i][2])
        return value

    def expr(self) -> Dim:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[0]
            other = self.term()
            value = add(value, other) if op == "+" else sub(value, other)
        return value

    def term(self) -> Dim:
        value = self.unary()
        while self.peek() in ("*", "//"):
            op, _, at = self.take()
            other = self.unary()
            if op == "*":
                value = mul(value, other)
            else:
                try:
                    value = floordiv(value, other)
                except ValueError as exc:
                    raise self._error(str(exc), at) from None
        return value

    def unary(self) -> Dim:
        if self.peek() in ("+", "-"):
            op = self.take()[0]
            value = self.unary()
            return value if op == "+" else mul(-1, value)
        return self.power()

    def power(self) -> Dim:
        base = self.atom()
        if self.peek() != "**":
            return base
        _, _, at = self.take()
        exponent = self.unary()
        if not isinstance(exponent, int) or not 0 <= exponent <= 64:
            raise self._error("an exponent must be an int from 0 to 64", at)
        return mul(*([base] * exponent)) if exponent else 1

    def atom(self) -> Dim:
        kind, value, at = self.take()
        if kind in ("int", "name"):
            return value
        if kind == "(":
            self.depth += 1
            if self.depth > self._MAX_DEPTH:
                raise self._error("parentheses nested too deeply", at)
            inner = self.expr()
            if self.peek() != ")":
                raise self._error("expected ')'", self.tokens[self.i][2])
            self.take()
            self.depth -= 1
            return inner
        raise self._error("expected a size, a name or '('" if kind != "end" else "unexpected end", at)


def parse(text: str) -> Dim:
    """The dim written as ``text`` (``"128"``, ``"seq"``, ``"batch*seq"``, ``"(seq-1)//2+1"``).
    Raises ValueError naming the column of a mistake. Nothing is evaluated."""
    return _Parser(text).parse()


# --- sympy (what torch.export's sizes are) ------------------------------------------------------
def from_sympy(expr, symbol: Callable[[str], Dim]) -> Dim:
    """The dim a sympy size expression from torch (``s0*s1``, ``FloorDiv(s0, 4)``) stands
    for; ``symbol`` maps each sympy symbol's name to a dim. Raises ValueError for what a
    SizeExpr cannot hold (``Max``, a true division, a float)."""
    name = type(expr).__name__
    args = getattr(expr, "args", ())
    if getattr(expr, "is_Integer", False):
        return int(expr)
    if getattr(expr, "is_Symbol", False):
        return symbol(str(expr))
    convert = [from_sympy(a, symbol) for a in args] if not getattr(expr, "is_Rational", False) else []
    if getattr(expr, "is_Add", False):
        return add(*convert)
    if getattr(expr, "is_Mul", False):
        return mul(*convert)
    if (getattr(expr, "is_Pow", False) or name == "PowByNatural") and isinstance(convert[1], int) \
            and convert[1] >= 0:
        return mul(*([convert[0]] * convert[1])) if convert[1] else 1
    if name in ("FloorDiv", "CleanDiv"):
        return floordiv(*convert)
    if name == "CeilDiv":
        return floordiv(add(convert[0], convert[1], -1), convert[1])
    if name in ("Mod", "PythonMod"):
        return sub(convert[0], mul(convert[1], floordiv(*convert)))
    if name == "ModularIndexing":
        quotient = floordiv(convert[0], convert[1])
        return sub(quotient, mul(convert[2], floordiv(quotient, convert[2])))
    if name == "Identity":
        return convert[0]
    raise ValueError(f"size {expr} uses {name}, which a size expression does not hold (+, -, *, //)")


# --- internals -----------------------------------------------------------------------------------
def _atom_key(atom) -> tuple:
    return (0, atom) if isinstance(atom, str) else (1, atom.text)


def _mono_key(mono: _Mono) -> tuple:
    degree = sum(p for _, p in mono)
    return (-degree, tuple((_atom_key(a), -p) for a, p in mono))


def _mono_mul(a: _Mono, b: _Mono) -> _Mono:
    if not a:
        return b
    if not b:
        return a
    powers = dict(a)
    for atom, p in b:
        powers[atom] = powers.get(atom, 0) + p
    return tuple(sorted(powers.items(), key=lambda ap: _atom_key(ap[0])))


def _mono_div(a: _Mono, b: _Mono) -> _Mono | None:
    powers = dict(a)
    for atom, p in b:
        if powers.get(atom, 0) < p:
            return None
        powers[atom] -= p
    return tuple(sorted(((x, p) for x, p in powers.items() if p), key=lambda ap: _atom_key(ap[0])))


def _poly(d: Dim) -> dict:
    if isinstance(d, bool):
        raise TypeError(f"not a size: {d!r}")
    if isinstance(d, int):
        return {(): d} if d else {}
    if isinstance(d, str):
        return {((d, 1),): 1}
    if isinstance(d, SizeExpr):
        return dict(d.terms)
    raise TypeError(f"not a size: {d!r}")


def _dim(poly: dict) -> Dim:
    items = [(m, c) for m, c in poly.items() if c]
    if not items:
        return 0
    if len(items) == 1:
        mono, coeff = items[0]
        if not mono:
            return coeff
        if coeff == 1 and len(mono) == 1 and mono[0][1] == 1 and isinstance(mono[0][0], str):
            return mono[0][0]
    return SizeExpr(tuple(sorted(items, key=lambda mc: _mono_key(mc[0]))))


def _atom_dim(atom: FloorDiv) -> Dim:
    if isinstance(atom.num, int) and isinstance(atom.den, int):
        return atom.num // atom.den
    mono = ((atom, 1),)
    return SizeExpr(((mono, 1),))


def _text(d: Dim) -> str:
    return d.text if isinstance(d, SizeExpr) else str(d)


def _factor_text(atom, power: int, alone: bool) -> str:
    text = atom if isinstance(atom, str) else atom.text
    if isinstance(atom, FloorDiv) and not alone:
        text = f"({text})"
    return f"{text}**{power}" if power > 1 else text


def _numerator_text(d: Dim) -> str:
    if isinstance(d, str) or isinstance(d, int) and d >= 0:
        return str(d)
    if isinstance(d, SizeExpr) and len(d.terms) == 1:
        mono, coeff = d.terms[0]
        if coeff > 0 and all(isinstance(a, str) for a, _ in mono):
            return d.text  # a product binds as tightly as //, and comes first: a*b//c is (a*b)//c
    return f"({_text(d)})"


def _denominator_text(d: Dim) -> str:
    if isinstance(d, str) or isinstance(d, int) and d >= 0:
        return str(d)
    return f"({_text(d)})"

