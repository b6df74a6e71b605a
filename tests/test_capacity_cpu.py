"""CPU accounting of a capacity step: the machine's busy time without the hypervisor's steal, the
harness without the stack under it, and what is left for other processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.capacity import cpu
from harness.capacity.cpu import MACHINE, STOLEN, CpuSnapshot
from harness.capacity.search import busiest


def test_steal_is_not_busy_time_of_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice, in ticks
    ticks = [3, 1, 2, 50, 4, 1, 1, 7, 2, 0]
    stat.write_text("cpu  " + " ".join(str(t * hz) for t in ticks) + "\ncpu0 0 0 0 0 0 0 0 0 0 0\n")
    monkeypatch.setattr(cpu, "PROC_STAT", stat)
    assert cpu.machine_busy_seconds() == 8.0  # user + nice + system + irq + softirq (guest is in user)
    assert cpu.machine_steal_seconds() == 7.0


def test_what_no_component_used_is_other_processes_and_steal_apart() -> None:
    before = CpuSnapshot(0.0, {"reaction": 1.0, "harness": 0.5, MACHINE: 10.0, STOLEN: 2.0})
    after = CpuSnapshot(2.0, {"reaction": 1.4, "harness": 1.5, MACHINE: 12.0, STOLEN: 3.4})
    cores = CpuSnapshot.with_other(after.cores_since(before))
    assert cores == pytest.approx({"reaction": 0.2, "harness": 0.5, "other": 0.3, "steal": 0.7})
    # the busiest component is the pipeline's, however busy the generator, harness, rest and steal
    assert busiest({**cores, "loadgen": 0.9}) == "reaction"


def test_a_process_read_alone_leaves_its_children_out() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        while (cpu.process_cpu_seconds(child.pid) or 0.0) < 0.3:  # the child's own CPU, not wall time
            assert child.poll() is None, f"the busy child exited ({child.returncode})"
            time.sleep(0.05)
        snap = CpuSnapshot.take({"tree": os.getpid()}, 0.0, alone={"alone": os.getpid()})
    finally:
        child.kill()
        child.wait()
    assert snap.seconds["tree"] - snap.seconds["alone"] >= 0.3
    assert MACHINE in snap.seconds and STOLEN in snap.seconds
