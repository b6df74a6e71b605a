"""A tiny, safe expression language for verdict rules and thresholds (parsed, never `eval()`ed).

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER [ms | s | %] | NAME | FUNC "(" sum ("," sum)* ")" | "(" expr ")"

NAME is a dotted metric name such as `async.push-slow.api.p99`. Names may contain hyphens (scenario
and pipeline names do), so a binary minus needs a space before it: `a.x.lost - b.x.lost`.
Numbers are seconds and ratios: `400ms` is 0.4, `1%` is 0.01.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from facts import comparison

FUNCTIONS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}
KEYWORDS = ("and", "or", "not")
UNITS = {"ms": 1e-3, "s": 1.0, "%": 1e-2}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?P<unit>ms\b|s\b|%)?
  | (?P<name>[A-Za-z_]\w*(?:-\w+)*(?:\.\w+(?:-\w+)*)*)
  | (?P<op><=|>=|==|!=|[<>+\-*/(),])
    """,
    re.VERBOSE,
)
COMPARISONS = comparison.OPS  # one table for hypotheses, claims and thresholds


class ExprError(ValueError):
    """A malformed expression; `column` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column


class Missing(LookupError):
    """A name the environment has no value for (the cell was not run, or the metric is null)."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str
    column: int


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Num | Name | Call | Unary | Binary
BOOLEAN_OPS = (*COMPARISONS, "and", "or", "not")


def is_boolean(node: Node) -> bool:
    return isinstance(node, Unary | Binary) and node.op in BOOLEAN_OPS


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, name, op, end
    text: str
    column: int
    value: float = 0.0


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExprError(f"unexpected character {text[pos]!r}", pos + 1)
        if m.group("number") is not None:
            scale = UNITS.get(m.group("unit") or "", 1.0)
            out.append(_Tok("number", m.group(0), pos + 1, float(m.group("number")) * scale))
        elif m.lastgroup != "space":
            out.append(_Tok(str(m.lastgroup), m.group(0), pos + 1))
        pos = m.end()
    out.append(_Tok("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, *texts: str) -> _Tok | None:
        tok = self.peek()
        if tok.kind in ("op", "name") and tok.text in texts:
            return self.take()
        return None

    def expect(self, text: str) -> None:
        if not self.accept(text):
            tok = self.peek()
            raise ExprError(f"expected {text!r}, found {tok.text or 'the end'!r}", tok.column)

    def boolean(self, node: Node, tok: _Tok, what: str) -> Node:
        if not is_boolean(node):
            raise ExprError(f"{what} needs a comparison, not a number", tok.column)
        return node

    def number(self, node: Node, tok: _Tok, what: str) -> Node:
        if is_boolean(node):
            raise ExprError(f"{what!r} needs a number, not a comparison", tok.column)
        return node

    def parse(self) -> Node:
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExprError(f"unexpected {tok.text!r}", tok.column)
        return node

    def or_(self) -> Node:
        start = self.peek()
        node = self.and_()
        while op := self.accept("or"):
            right = self.and_()
            node = Binary("or", self.boolean(node, start, "'or'"), self.boolean(right, op, "'or'"))
        return node

    def and_(self) -> Node:
        start = self.peek()
        node = self.not_()
        while op := self.accept("and"):
            right = self.not_()
            node = Binary("and", self.boolean(node, start, "'and'"), self.boolean(right, op, "'and'"))
        return node

    def not_(self) -> Node:
        if op := self.accept("not"):
            return Unary("not", self.boolean(self.not_(), op, "'not'"))
        return self.compare()

    def compare(self) -> Node:
        start = self.peek()
        node = self.sum()
        if op := self.accept(*COMPARISONS):
            right = self.sum()
            node = Binary(op.text, self.number(node, start, op.text), self.number(right, op, op.text))
            if nxt := self.accept(*COMPARISONS):
                raise ExprError("chained comparisons are not supported; join them with 'and'", nxt.column)
        return node

    def sum(self) -> Node:
        start = self.peek()
        node = self.product()
        while op := self.accept("+", "-"):
            right = self.product()
            node = Binary(op.text, self.number(node, start, op.text), self.number(right, op, op.text))
        return node

    def product(self) -> Node:
        start = self.peek()
        node = self.unary()
        while op := self.accept("*", "/"):
            right = self.unary()
            node = Binary(op.text, self.number(node, start, op.text), self.number(right, op, op.text))
        return node

    def unary(self) -> Node:
        if op := self.accept("-"):
            return Unary("-", self.number(self.unary(), op, "-"))
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            return Num(tok.value)
        if tok.kind == "op" and tok.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind == "name" and tok.text in KEYWORDS:
            raise ExprError(f"unexpected {tok.text!r}", tok.column)
        if tok.kind == "name" and self.peek().text == "(":
            if tok.text not in FUNCTIONS:
                raise ExprError(f"unknown function {tok.text!r} (functions: {', '.join(FUNCTIONS)})", tok.column)
            self.take()
            args = [self.number(self.sum(), tok, tok.text)]
            while self.accept(","):
                args.append(self.number(self.sum(), tok, tok.text))
            self.expect(")")
            if tok.text == "abs" and len(args) != 1:
                raise ExprError("abs() takes one argument", tok.column)
            if tok.text in ("min", "max") and len(args) < 2:  # min(x) is x: a rule meant something else
                raise ExprError(f"{tok.text}() takes two or more arguments", tok.column)
            return Call(tok.text, tuple(args))
        if tok.kind == "name":
            return Name(tok.text, tok.column)
        raise ExprError(f"unexpected {tok.text or 'end of expression'!r}", tok.column)


def parse(text: str) -> Node:
    """Parse an expression; raises ExprError (with the column) when it is malformed."""
    if not text.strip():
        raise ExprError("empty expression", 1)
    return _Parser(text).parse()


def parse_condition(text: str) -> Node:
    """Parse an expression that must be true or false (a comparison, or comparisons joined by and/or)."""
    node = parse(text)
    if not is_boolean(node):
        raise ExprError("must be a comparison (e.g. `a.b.c < 0.5`), not just a number", 1)
    return node


def names(node: Node) -> Iterator[Name]:
    """Every name the expression reads, in reading order."""
    if isinstance(node, Name):
        yield node
    elif isinstance(node, Call):
        for a in node.args:
            yield from names(a)
    elif isinstance(node, Unary):
        yield from names(node.operand)
    elif isinstance(node, Binary):
        yield from names(node.left)
        yield from names(node.right)


def evaluate(node: Node, env: Mapping[str, float | None]) -> float | bool:
    """Evaluate against `env`; raises Missing for an absent or null name, ZeroDivisionError as Python does."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        value = env.get(node.name)
        if value is None:
            raise Missing(node.name)
        return float(value)
    if isinstance(node, Call):
        return float(FUNCTIONS[node.func](*(float(evaluate(a, env)) for a in node.args)))
    if isinstance(node, Unary):
        v = evaluate(node.operand, env)
        return (not v) if node.op == "not" else -float(v)
    if node.op == "and":
        return bool(evaluate(node.left, env)) and bool(evaluate(node.right, env))
    if node.op == "or":
        return bool(evaluate(node.left, env)) or bool(evaluate(node.right, env))
    a, b = float(evaluate(node.left, env)), float(evaluate(node.right, env))
    if node.op in COMPARISONS:
        return COMPARISONS[node.op](a, b)
    if node.op == "+":
        return a + b
    if node.op == "-":
        return a - b
    if node.op == "*":
        return a * b
    return a / b


Interval = tuple[float, float]


def _span(values: list[float]) -> Interval:
    return min(values), max(values)


def evaluate_interval(node: Node, env: Mapping[str, Interval | None]) -> Interval | bool | None:
    """Evaluate with every name an interval [low, high] (a point value is [v, v]): arithmetic on
    intervals, and comparisons in three values: True when every value in the intervals satisfies
    them, False when none does, None (undecided) when the intervals straddle the threshold.
    Raises Missing like `evaluate`, ZeroDivisionError when a divisor's interval contains zero."""
    if isinstance(node, Num):
        return node.value, node.value
    if isinstance(node, Name):
        span = env.get(node.name)
        if span is None:
            raise Missing(node.name)
        return float(span[0]), float(span[1])
    if isinstance(node, Call):
        args = [_interval(evaluate_interval(a, env)) for a in node.args]
        if node.func == "abs":
            lo, hi = args[0]
            return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
        f = FUNCTIONS[node.func]
        return float(f(a[0] for a in args)), float(f(a[1] for a in args))
    if isinstance(node, Unary):
        v = evaluate_interval(node.operand, env)
        if node.op == "not":
            return None if v is None else not v
        lo, hi = _interval(v)
        return -hi, -lo
    if node.op in ("and", "or"):
        left, right = evaluate_interval(node.left, env), evaluate_interval(node.right, env)
        if node.op == "and":
            return False if left is False or right is False else (None if left is None or right is None else True)
        return True if left is True or right is True else (None if left is None or right is None else False)
    (alo, ahi), (blo, bhi) = _interval(evaluate_interval(node.left, env)), _interval(evaluate_interval(node.right, env))
    if node.op in COMPARISONS:
        op = COMPARISONS[node.op]
        corners = [op(a, b) for a in (alo, ahi) for b in (blo, bhi)]
        if node.op in ("==", "!="):
            # Equal for certain only when both are the same point; unequal for certain when they do not meet.
            equal = all(COMPARISONS["=="](a, b) for a in (alo, ahi) for b in (blo, bhi))
            meet = COMPARISONS["<="](alo, bhi) or COMPARISONS["=="](alo, bhi)
            meet = meet and (COMPARISONS["<="](blo, ahi) or COMPARISONS["=="](blo, ahi))
            decided = True if equal else False if not meet else None
            return decided if node.op == "==" or decided is None else not decided
        return True if all(corners) else False if not any(corners) else None
    if node.op == "+":
        return alo + blo, ahi + bhi
    if node.op == "-":
        return alo - bhi, ahi - blo
    if node.op == "*":
        return _span([alo * blo, alo * bhi, ahi * blo, ahi * bhi])
    if blo <= 0 <= bhi:
        raise ZeroDivisionError("the divisor's interval contains zero")
    return _span([alo / blo, alo / bhi, ahi / blo, ahi / bhi])


def _interval(value: Interval | bool | None) -> Interval:
    if isinstance(value, tuple):
        return value
    raise TypeError("a comparison where a number was expected")
