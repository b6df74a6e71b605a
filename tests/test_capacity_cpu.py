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


def test_steal_is_not_busy_time_and_other_cpus_are_not_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice, in ticks; cpu1 and cpu3 are another tenant's
    ours, theirs = [3, 1, 2, 50, 4, 1, 1, 7, 2, 0], [90, 0, 9, 1, 0, 0, 0, 40, 0, 0]

    def line(name: str, ticks: list[int]) -> str:
        return f"{name} " + " ".join(str(t * hz) for t in ticks) + "\n"

    total = [2 * a + 2 * b for a, b in zip(ours, theirs, strict=True)]  # the aggregate line: all four
    stat.write_text(line("cpu ", total) + line("cpu0", ours) + line("cpu1", theirs) + line("cpu2", ours)
                    + line("cpu3", theirs) + "intr 12345 0 0\n")  # fmt: skip
    monkeypatch.setattr(cpu, "PROC_STAT", stat)
    monkeypatch.setattr(cpu, "our_cpus", lambda: {0, 2})  # a cpuset of two CPUs of four
    # busy: user + nice + system + irq + softirq (guest is in user), twice; then steal, twice
    assert cpu.machine_seconds() == (16.0, 14.0)
    assert cpu.machine_busy_seconds() == 16.0


def cgroups(root: Path, lines: str, files: dict[str, str]) -> None:
    (root / "proc").mkdir()
    (root / "proc" / "cgroup").write_text(lines)
    for name, text in files.items():
        (root / "sys" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "sys" / name).write_text(text)


@pytest.mark.parametrize(
    ("lines", "files", "quota"),
    [
        # cgroup v2: the group's own limit, or a tighter one on an ancestor
        ("0::/ci/job\n", {"ci/job/cpu.max": "200000 100000\n", "ci/cpu.max": "max 100000\n"}, 2.0),
        ("0::/ci/job\n", {"ci/job/cpu.max": "max 100000\n", "ci/cpu.max": "150000 100000\n"}, 1.5),
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),  # the root: no quota
        # cgroup v1: the cpu controller's hierarchy; inside a container its mount is the group itself
        ("4:cpu,cpuacct:/docker/abc\n1:memory:/docker/abc\n",
         {"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3.0),
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        # a malformed line or file tells nothing, and stops nothing
        ("garbage\n0::/ci\n", {"ci/cpu.max": "lots 100000\n", "cpu.max": "100000 100000\n"}, 1.0),
    ],
)  # fmt: skip
def test_a_cgroup_quota_is_read_from_the_group_and_its_ancestors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str, files: dict[str, str], quota: float | None
) -> None:
    cgroups(tmp_path, lines, files)
    monkeypatch.setattr(cpu, "PROC_CGROUP", tmp_path / "proc" / "cgroup")
    monkeypatch.setattr(cpu, "CGROUP_ROOT", tmp_path / "sys")
    assert cpu.cgroup_cpu_quota() == quota


@pytest.mark.parametrize(("affinity", "quota", "usable"), [(64, 2.0, 2), (64, 1.5, 2), (4, 8.0, 4), (2, None, 2)])
def test_usable_cpus_are_the_affinity_capped_by_the_quota(
    monkeypatch: pytest.MonkeyPatch, affinity: int, quota: float | None, usable: int
) -> None:
    monkeypatch.setattr(cpu, "our_cpus", lambda: set(range(affinity)))
    monkeypatch.setattr(cpu, "cgroup_cpu_quota", lambda: quota)
    assert cpu.usable_cpus() == usable


def test_this_machine_s_usable_cpus_are_its_affinity_at_most() -> None:
    assert 1 <= cpu.usable_cpus() <= len(os.sched_getaffinity(0))


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
        # the child's own CPU, not wall time; past 0.3 s by a margin (tick sums in floats: 4.51 - 4.21 < 0.3)
        while (cpu.process_cpu_seconds(child.pid) or 0.0) < 0.4:
            assert child.poll() is None, f"the busy child exited ({child.returncode})"
            time.sleep(0.05)
        own_before = cpu.process_cpu_seconds(os.getpid()) or 0.0
        snap = CpuSnapshot.take({"tree": os.getpid()}, 0.0, alone={"alone": os.getpid()})
    finally:
        child.kill()
        child.wait()
    # Against this process' own CPU read just before: the two reads of the snapshot are a few ticks
    # apart (this process works between them), so the child's 0.3 s is compared with a fixed point.
    assert snap.seconds["tree"] - own_before >= 0.3  # the child counted in the tree
    assert snap.seconds["alone"] - own_before < 0.3  # and not in the process read alone
    assert MACHINE in snap.seconds and STOLEN in snap.seconds
