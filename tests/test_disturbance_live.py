"""A CPU burner outside the stack during a real cell: the cell is flagged, and the claims that read
it are inconclusive."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry

from chaos.engine import ChaosMetrics
from harness import claims, run
from harness import result as result_model
from harness.plan import make_plan
from harness.report import model
from tests import stackclient as sc
from tests.synthetic_run import CAPACITIES

pytestmark = pytest.mark.stack

# Forks once and exits, so the burner is re-parented away from the harness' process tree (it is
# "outside the stack"), writes its pid, and spins one core for at most argv[2] seconds.
BURNER = """
import os, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
os.nice(19)  # it takes the CPU our processes leave idle, so the load generator still keeps up
open(sys.argv[1], "w").write(str(os.getpid()))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


def test_a_cpu_burner_outside_the_stack_flags_the_cell(stack: Any, tmp_path: Path) -> None:
    seconds = 24.0  # the slow push starts at 4 s (10 of 60 s): after the warm-up, a control window remains
    (cell,) = make_plan(["sync"], ["push-slow"], seconds, capacities=CAPACITIES).cells
    pid_file = tmp_path / "burner.pid"
    subprocess.run([sys.executable, "-c", BURNER, str(pid_file), str(seconds + 60)], check=True, timeout=30)
    try:
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        burner = int(pid_file.read_text())
        metrics, limits = ChaosMetrics(CollectorRegistry()), sc.traces_in_windows()
        result = run.run_cell(stack, cell, tmp_path / "run", metrics, processes=1, limits=limits)
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert burner not in {c.pid for c in psutil.Process().children(recursive=True)}
    d = result.disturbance
    assert d.measured and d.outside_cpu_share_mean is not None
    assert d.flagged and d.flagged[0].startswith("processes outside the stack took"), d
    loaded = result_model.load(tmp_path / "run")
    judged = {j.claim.id: j for j in claims.judge_all(loaded)}
    assert judged["sync-caller-blocked"].verdict == "inconclusive"
    assert "sync--push-slow was disturbed" in judged["sync-caller-blocked"].reason
    rows = model.rows(loaded, list(judged.values()))  # the report's header and machine table say so
    assert rows.machine_summary.endswith("; 1 of 1 cells disturbed by a busy machine (see machine)")
    assert dict(rows.machine)["during the run"].startswith("of 1 cells, 1 disturbed;")
