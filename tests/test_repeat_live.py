"""`bench run --repeat 2` on the real stack, then `bench report`: intervals over the repetitions, and
verdicts computed from them. Starts its own stack, as `bench run` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import claims, cli
from harness import result as result_model
from tests.synthetic_run import CAPACITIES, write_capacity

pytestmark = [pytest.mark.stack, pytest.mark.own_stack]


def test_repeated_cells_give_intervals_and_verdicts_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNC_ASYNC_BENCH_RUNS", str(tmp_path / "runs"))
    capacity = write_capacity(tmp_path / "capacity.json")
    # Tracing off: intervals and verdicts are what this test reads, not each cell's traces. One
    # scenario (its profile is the baseline's, relative to the capacity), both pipelines, twice.
    rc = cli.main(
        ["run", "--pipeline", "sync", "async", "--scenario", "notification-down",
         "--duration", "12", "--repeat", "2", "--capacity", str(capacity), "--tracing", "off"]
    )  # fmt: skip
    assert rc in (0, 1), capsys.readouterr().err  # 1: a hypothesis failed on a short cell; still a whole run
    # 12 s cells: the outage starts at 3 s (15 of 60 s), after the 2 s warm-up: a 1 s control window
    # remains (about 75 requests at 0.3 x the test capacity).
    run_dir = (tmp_path / "runs" / "latest").resolve()
    run = result_model.load(run_dir)
    assert (run_dir / "capacity.json").read_bytes() == capacity.read_bytes()  # what the rates came from
    cell = run.cells[0]
    assert cell.profile["relative_rates"] == {"rate": "0.3 x sync"}
    assert cell.profile["rate"] == 0.3 * CAPACITIES.rates["sync"]
    assert len(run.cells) == 4 and {len(run.repetitions(p, "notification-down")) for p in ("sync", "async")} == {2}
    assert "2 repetitions" in run.interval_method()
    spans = run.intervals()
    assert spans["sync.notification-down.fault.error_ratio"][1] >= spans["sync.notification-down.fault.error_ratio"][0]
    judged = {j.claim.id: j for j in claims.judge_all(run)}
    cascading = judged["sync-cascading-failures"]
    assert cascading.intervals["sync.notification-down.fault.error_ratio"] is not None
    assert cascading.verdict in ("confirmed", "refuted", "inconclusive")  # decided on the intervals
    assert cli.main(["report", str(run_dir)]) == 0
    md = (run_dir / "report.md").read_text()
    assert "Student's t over 2 repetitions" in md and " [" in md  # values shown with their interval
