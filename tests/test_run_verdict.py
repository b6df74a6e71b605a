"""The run's verdict: a cell that proves nothing does not pass."""

from __future__ import annotations

from typing import Any

import pytest

from harness.assemble import judge
from harness.plan import PlannedCell, make_plan
from harness.result import CellResult
from tests.synthetic_run import CAPACITIES
from tests.synthetic_run import result as synthetic


def cell() -> PlannedCell:
    (c,) = make_plan(["async"], ["baseline"], 10.0, False, capacities=CAPACITIES).cells
    return c


def result(attempted: int = 100, exit_code: int = 0, drained: bool = True, lost: int = 0) -> CellResult:
    r = synthetic("async", "baseline", seconds=1, rate=100, lost=lost)
    r.ledger.attempted = r.ledger.acknowledged = attempted
    r.loadgen.exit_code, r.timings.drained = exit_code, drained
    return r


def test_a_healthy_cell_passes() -> None:
    v = judge(cell(), result())
    assert v.passed
    assert [c.check for c in v.checks if c.precondition] == [
        "attempted > 0",
        "load generator exit code == 0",
        "load generator bound == no",
        "drained within drain_timeout",
    ]
    assert [c.check for c in v.checks if not c.precondition] == ["lost == 0", "unexpected == 0", "error_ratio < 0.01"]


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
    v = judge(cell(), result(**kwargs))
    assert not v.passed
    failed = [c.check for c in v.checks if not c.passed]
    # No attempt at all also leaves error_ratio unmeasured: a check without a measurement fails too.
    assert failed == ([failing, "error_ratio < 0.01"] if kwargs == {"attempted": 0} else [failing])


def test_a_check_without_a_measurement_fails() -> None:
    r = result()
    r.ledger.attempted = 0  # error_ratio is then unmeasured
    v = judge(cell(), r)
    assert not v.passed
    assert next(c for c in v.checks if c.check == "error_ratio < 0.01").measured is None


def test_a_generator_that_fell_behind_fails_the_cell_with_its_reason() -> None:
    r = result()
    r.loadgen.fell_behind = ["schedule lag p99 812.0 ms > 50 ms"]
    v = judge(cell(), r)
    assert not v.passed
    failed = [c.check for c in v.checks if not c.passed]
    assert failed == ["load generator bound == no (schedule lag p99 812.0 ms > 50 ms)"]
    assert r.metrics()["loadgen.bound"] == 1.0


def _shipped_checks() -> list[tuple[str, str, str]]:
    """(scenario, pipeline, check) for every check a shipped scenario makes, each once."""
    from chaos import scenario as scenarios
    from facts import topology

    seen: dict[str, tuple[str, str, str]] = {}
    for name in scenarios.shipped() + scenarios.shipped_for_replicas() + scenarios.shipped_soak():
        sc = scenarios.load(name)
        for p in topology.PIPELINES:
            for c in sc.checks_for(p):
                seen.setdefault(str(c), (name, p, str(c)))
    return list(seen.values())


# A measurement that fails each shipped check, by its text.
FAILING = {"lost == 0": 1.0, "unexpected == 0": 2.0, "error_ratio < 0.01": 0.01, "api.p99 < 0.4": 0.41,
           "memory.growing == 0": 1.0}  # fmt: skip


def test_every_shipped_check_has_a_failing_measurement() -> None:
    assert sorted(FAILING) == sorted(text for _, _, text in _shipped_checks())


@pytest.mark.parametrize(("scenario", "pipeline", "text"), _shipped_checks())
def test_each_shipped_check_fails_on_a_measurement_past_it(scenario: str, pipeline: str, text: str) -> None:
    from chaos import scenario as scenarios

    (check,) = [c for c in scenarios.load(scenario).checks_for(pipeline) if str(c) == text]
    assert check.holds(FAILING[text]) is False
    assert check.holds(0.0) is True  # and holds on a good one: it is not false by construction
