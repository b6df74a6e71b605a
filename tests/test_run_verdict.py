"""The run's verdict: a cell that proves nothing does not pass."""

from __future__ import annotations

from typing import Any

import pytest

from harness import result as cell_result
from harness import run


def cell() -> run.Cell:
    (c,) = run.plan(["async"], ["baseline"], 10.0, False).cells
    return c


def result(attempted: float = 100, exit_code: int = 0, drained: bool = True, lost: float = 0) -> dict[str, Any]:
    measured = {"attempted": attempted, "lost": lost, "unexpected": 0.0, "error_ratio": 0.0}
    return {"measured": measured, "locust_exit_code": exit_code, "timings": {"drained": drained}}


def test_a_healthy_cell_passes() -> None:
    v = cell_result.verdict(cell(), result())
    assert v["passed"]
    assert [c["check"] for c in v["checks"]][3:] == ["lost == 0", "unexpected == 0", "error_ratio < 0.01"]


@pytest.mark.parametrize(
    ("kwargs", "failing"),
    [
        ({"attempted": 0}, "attempted > 0"),
        ({"exit_code": 1}, "load generator exit code == 0"),
        ({"drained": False}, "drained within drain_timeout"),
        ({"lost": 3}, "lost == 0"),
    ],
)
def test_a_cell_that_proves_nothing_or_loses_fails(kwargs: dict[str, Any], failing: str) -> None:
    v = cell_result.verdict(cell(), result(**kwargs))
    assert not v["passed"]
    assert [c["check"] for c in v["checks"] if not c["passed"]] == [failing]


def test_a_check_without_a_measurement_fails() -> None:
    r = result()
    r["measured"]["error_ratio"] = None
    v = cell_result.verdict(cell(), r)
    assert not v["passed"]
