"""A machine disturbed during a cell: flagged, and no verdict rests on it."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from harness import claims, disturbance
from harness import result as result_model
from harness.report import model
from tests.synthetic_run import article_cells, write_run

LIMITS = disturbance.DisturbanceLimits(outside_cpu_share=0.2, steal_share=0.1)


def watch_with(samples: list[tuple[float, float, float]]) -> disturbance.MachineWatch:
    w = disturbance.MachineWatch(LIMITS)
    w.samples = samples
    return w


def test_a_quiet_machine_is_not_flagged() -> None:
    d = watch_with([(0.02, 0.0, 1.2), (0.05, 0.01, 1.4)]).disturbance()
    assert d.measured and d.flagged == [] and d.samples == 2
    assert d.outside_cpu_share_max == 0.05 and d.load_average_max == 1.4


def test_cpu_taken_outside_the_stack_or_stolen_is_flagged_with_the_figure() -> None:
    d = watch_with([(0.5, 0.15, 3.0), (0.6, 0.15, 3.5)]).disturbance()
    assert d.flagged == [
        "processes outside the stack took 55% of the CPU (limit 20%)",
        "the hypervisor stole 15% of the CPU (limit 10%)",
    ]
    assert not watch_with([]).disturbance().measured


def test_the_shipped_limits_load_and_a_bad_file_is_named(tmp_path: Path) -> None:
    assert 0 < disturbance.load_limits().outside_cpu_share < 1
    bad = tmp_path / "d.yaml"
    bad.write_text("outside_cpu_share: 2\nsteal_share: 0.1\n")
    with pytest.raises(ValueError, match=rf"{bad}: field 'outside_cpu_share'"):
        disturbance.load_limits(bad)


def test_a_claim_that_reads_a_disturbed_cell_is_inconclusive_and_the_report_says_why(tmp_path: Path) -> None:
    cells = article_cells()
    for c in cells:
        if (c.pipeline, c.scenario) == ("sync", "push-slow"):
            c.disturbance = watch_with([(0.5, 0.0, 3.0)]).disturbance()
    run = result_model.load(write_run(tmp_path / "run", cells))
    judged = {j.claim.id: j for j in claims.judge_all(run)}
    j = judged["sync-caller-blocked"]
    assert j.verdict == "inconclusive"
    assert j.reason == "sync--push-slow was disturbed: processes outside the stack took 50% of the CPU (limit 20%)"
    assert judged["sync-realtime"].verdict == "confirmed"  # reads other cells only
    (row,) = [
        h
        for h in model.rows(run, list(judged.values())).hypotheses
        if (h.pipeline, h.scenario) == ("sync", "push-slow")
    ]
    assert row.warnings == ("disturbed: processes outside the stack took 50% of the CPU (limit 20%)",)
    # the run's header says how many cells a busy machine disturbed, its machine table how busy it was
    rows = model.rows(run, list(judged.values()))
    assert rows.machine_summary.endswith(f"; 1 of {len(cells)} cells disturbed by a busy machine (see machine)")
    assert dict(rows.machine)["during the run"].startswith(f"of {len(cells)} cells (1 measured), 1 disturbed;")
    assert "processes outside the stack up to 50%" in dict(rows.machine)["during the run"]


def test_steal_is_the_hypervisor_s_not_processes_outside_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = itertools.count()
    # only steal grows (three seconds a reading): the host ran someone else, no process here ran
    monkeypatch.setattr(disturbance.cpu, "machine_seconds", lambda: (15.0, 3.0 * next(readings)))
    watch = disturbance.MachineWatch(LIMITS, interval=0.01)
    monkeypatch.setattr(watch, "_ours", lambda: 0.0)
    watch.start()
    while len(watch.samples) < 3:
        assert watch._thread.is_alive(), "the watch's thread died"
        time.sleep(0.01)
    d = watch.stop()
    assert d.outside_cpu_share_max == 0.0
    assert d.steal_share_mean is not None and d.steal_share_mean > LIMITS.steal_share
    assert d.flagged == [f"the hypervisor stole {d.steal_share_mean:.0%} of the CPU (limit 10%)"]
