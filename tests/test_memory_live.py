"""A short real cell: its result holds memory readings of every running component, the load
generator and the harness, each with a positive RSS, on the load's time axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from chaos.engine import ChaosMetrics
from harness import result as result_model
from harness import run
from harness.capacity import cpu
from harness.plan import make_plan
from tests import stackclient as sc
from tests.synthetic_run import CAPACITIES

pytestmark = pytest.mark.stack


def test_a_cell_reads_every_process_s_memory(stack: Any, tmp_path: Path) -> None:
    seconds = 30.0  # after the warm-up, enough readings for a verdict
    (cell,) = make_plan(["async"], ["baseline"], seconds, capacities=CAPACITIES).cells
    result = run.run_cell(
        stack, cell, tmp_path / "run", ChaosMetrics(CollectorRegistry()), processes=1, limits=sc.traces_in_windows()
    )
    mem = result.memory
    assert mem.measured and mem.interval_seconds and mem.warmup_seconds is not None
    components = set(stack.sup.running)
    assert {"kafka", "toxiproxy", "prometheus", "jaeger", "pushsink", "notification", "reaction"} <= components
    by_name = {p.process: p for p in mem.processes}
    assert set(by_name) == components | {cpu.LOADGEN, cpu.HARNESS}
    expected = int(seconds / mem.interval_seconds) // 2  # at least half the readings the load had time for
    for name, p in by_name.items():
        assert len(p.series) >= expected, (name, len(p.series))
        assert all(rss > 0 for _, rss in p.series), name
        assert all(0 <= t <= seconds + 60 for t, _ in p.series), name
        assert p.restarts == 0 and p.verdict != "restarted", name
        assert p.start_bytes is not None and p.start_bytes > 0, name
    back = result_model.load(tmp_path / "run").cells[0]
    assert back.memory == mem  # what the report reads
