"""Which seconds count as a fault: what really happened, not only what was planned."""

from __future__ import annotations

from typing import Any

from harness.result import FaultWindow
from tests.synthetic_run import result


def w(**kw: Any) -> FaultWindow:
    return FaultWindow(index=0, kind="kill", target="process:kafka", label="kill kafka", start=5.0, end=10.0, **kw)


def test_a_window_runs_from_applied_to_recovered() -> None:
    window = w(applied_offset=5.1, undone_offset=10.0, recovered_offset=21.5)
    assert window.actual() == (5.1, 21.5)
    assert result("async", "broker-restart", seconds=30, faults=(window,)).fault_seconds() == set(range(5, 21))


def test_without_recovery_it_ends_at_the_undo() -> None:
    assert w(applied_offset=5.2, undone_offset=10.3).actual() == (5.2, 10.3)
    assert w(applied_offset=5.2).actual() == (5.2, 10.0)  # not undone yet: as planned


def test_a_fault_that_never_applied_has_no_seconds() -> None:
    failed = w(error="ConnectionError: refused")
    assert failed.actual() is None
    assert result("async", "broker-restart", faults=(failed,)).fault_seconds() == set()
