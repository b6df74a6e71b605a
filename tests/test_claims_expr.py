"""The safe expression language behind the claims rules and the compare thresholds."""

from __future__ import annotations

import re

import pytest

from harness import expr

ENV = {
    "sync.push-slow.api.p99": 0.45,
    "sync.baseline.api.p99": 0.004,
    "async.push-slow.api.p99": 0.006,
    "async.baseline.api.p99": 0.004,
    "async.surge.lost": 0.0,
    "async.surge.e2e.p99": None,
}


def ev(text: str) -> float | bool:
    return expr.evaluate(expr.parse(text), ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("8 / 4 / 2", 1.0),
        ("-2 * -3", 6.0),
        ("400ms", 0.4),
        ("2s + 5ms", 2.005),
        ("1%", 0.01),
        ("1.5e3", 1500.0),
        ("max(1, 5, 3) + min(2, 4) - abs(-1)", 6.0),
        ("sync.push-slow.api.p99 - sync.baseline.api.p99", pytest.approx(0.446)),
    ],
)
def test_arithmetic(text: str, expected: float) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sync.push-slow.api.p99 - sync.baseline.api.p99 >= 300ms", True),
        ("async.push-slow.api.p99 - async.baseline.api.p99 < 0.05", True),
        ("sync.push-slow.api.p99 > async.push-slow.api.p99 * 2", True),
        ("async.surge.lost == 0", True),
        ("async.surge.lost != 0", False),
        ("0.1 + 0.2 == 0.3", True),  # float noise is not a difference
        ("1 < 2 and 2 < 1", False),
        ("1 < 2 or 2 < 1", True),
        ("not 1 < 2", False),
        ("not (1 < 2 and 2 < 1)", True),
        ("1 < 2 or 2 < 1 and 3 < 1", True),  # and binds tighter than or
    ],
)
def test_conditions(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_names_keep_hyphens_and_dots() -> None:
    node = expr.parse("sync.push-slow.api.p99 - sync.baseline.api.p99 > 1")
    assert [n.name for n in expr.names(node)] == ["sync.push-slow.api.p99", "sync.baseline.api.p99"]


def test_minus_without_space_before_it_is_part_of_the_name() -> None:
    node = expr.parse("a.b-c.d")
    assert [n.name for n in expr.names(node)] == ["a.b-c.d"]
    node = expr.parse("a.b -c.d")
    assert [n.name for n in expr.names(node)] == ["a.b", "c.d"]


def test_missing_or_null_values_raise_missing() -> None:
    with pytest.raises(expr.Missing, match=r"async\.surge\.e2e\.p99"):
        ev("async.surge.e2e.p99 < 1")
    with pytest.raises(expr.Missing, match=r"nope\.x\.y"):
        ev("nope.x.y < 1")


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("", "empty expression", 1),
        ("1 +", "unexpected 'end of expression'", 4),
        ("(1 < 2", "expected ')'", 7),
        ("1 < 2 < 3", "chained comparisons", 7),
        ("a.b.c $ 2", "unexpected character '$'", 7),
        ("__import__(1)", "unknown function '__import__'", 1),
        ("__import__('os')", "unexpected character", 12),
        ("open(1)", "unknown function 'open'", 1),
        ("a.b.c < 1 and 2", "'and' needs a comparison", 11),
        ("(1 < 2) + 1", "needs a number", 1),
        ("abs(1, 2) < 1", "abs() takes one argument", 1),
        ("max(a.b.c) < 1", "max() takes two or more arguments", 1),
        ("1 < min(2)", "min() takes two or more arguments", 5),
        ("1 2", "unexpected '2'", 3),
        ("x.y < 1 or", "unexpected 'end of expression'", 11),
    ],
)
def test_errors_name_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(expr.ExprError, match=re.escape(message)) as info:
        expr.parse_condition(text) if text else expr.parse(text)
    assert info.value.column == column


def test_a_condition_must_compare() -> None:
    with pytest.raises(expr.ExprError, match="must be a comparison"):
        expr.parse_condition("a.b.c + 1")


def test_division_by_zero_is_left_to_the_caller() -> None:
    with pytest.raises(ZeroDivisionError):
        expr.evaluate(expr.parse("1 / (2 - 2)"), {})
