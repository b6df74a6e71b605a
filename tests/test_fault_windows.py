"""Which seconds a report shades as a fault: what really happened, not only what was planned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import results
from harness.report import fault_text


def w(**kw: Any) -> dict[str, Any]:
    return {"kind": "kill", "label": "kill kafka", "start": 5.0, "end": 10.0, **kw}


def test_a_window_runs_from_applied_to_recovered() -> None:
    data = {"faults": [w(applied_offset=5.1, undone_offset=10.0, recovered_offset=21.5)]}
    assert results.fault_windows(data) == [(5.1, 21.5, "kill kafka")]
    assert results.fault_seconds(data) == set(range(5, 21))


def test_without_recovery_it_ends_at_the_undo_and_without_records_as_planned() -> None:
    assert results.fault_windows({"faults": [w(applied_offset=5.2, undone_offset=10.3)]}) == [(5.2, 10.3, "kill kafka")]
    assert results.fault_windows({"faults": [w()]}) == [(5.0, 10.0, "kill kafka")]


def test_a_fault_that_never_applied_is_not_shaded_and_says_so_per_cell() -> None:
    failed = w(applied_offset=None, undone_offset=None, recovered_offset=None, error="ConnectionError: refused")
    skipped = w(applied_offset=None, undone_offset=None, recovered_offset=None)  # the load ended first
    fine = w(applied_offset=5.0, undone_offset=10.0, recovered_offset=12.0)
    data = {"faults": [failed]}
    assert results.fault_windows(data) == []
    assert results.fault_seconds(data) == set()
    cells = [results.Cell(p, "s", {"faults": [f]}, Path("result.json")) for p, f in
             (("sync", fine), ("async", failed), ("sync-resilient", skipped))]  # fmt: skip
    assert fault_text(cells) == (
        "kill kafka 5-10 s (FAILED in async: ConnectionError: refused; not applied in sync-resilient)"
    )
    assert fault_text(cells[:1]) == "kill kafka 5-10 s"
    assert fault_text([]) == "none"
