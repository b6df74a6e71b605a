"""CPU time of processes and their descendants, read from /proc/<pid>/stat (utime + stime), and how
often they slept (voluntary context switches, /proc/<pid>/task/*/status).

A component is a process group (Kafka's JVM, a Python service, Locust and its workers): its CPU is
the sum over the process and every live descendant. A descendant that exited between two readings
takes its CPU along, so read a snapshot before and after a window and take the difference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process, seconds; None when it does not exist (any more)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS


def _over_tree(pid: int, read: Callable[[int], float | None]) -> float | None:
    """`read` of `pid` plus `read` of each live descendant; None when `pid` itself is gone."""
    own = read(pid)
    if own is None:
        return None
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    return own + sum(read(c.pid) or 0 for c in children)


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of `pid` and its live descendants; None when `pid` itself is gone."""
    return _over_tree(pid, process_cpu_seconds)


def process_wakeups(pid: int) -> int | None:
    """Voluntary context switches of every thread of `pid` (each is a sleep, so later a wakeup); None
    when it does not exist (any more)."""
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
                        break
        except OSError:  # the thread ended meanwhile
            continue
    return total


def tree_wakeups(pid: int) -> int | None:
    """Times `pid` and its live descendants went to sleep (voluntary switches, all threads); None when
    `pid` is gone. Read before and after a window, as the CPU seconds."""
    total = _over_tree(pid, process_wakeups)
    return None if total is None else int(total)


MACHINE = "(machine)"  # the busy time of the CPUs this process may use, whoever used it
STOLEN = "(stolen)"  # the hypervisor's steal: time the CPUs were withheld, used by no process here
# What a step (and a cell's memory watch) measures besides the stack's components: the load generator,
# this process (the harness, read without its descendants: they are the stack), then the rest of the
# machine and the hypervisor's steal. None of them is the pipeline.
LOADGEN, HARNESS, OTHER, STEAL = "loadgen", "harness", "other", "steal"
NOT_THE_PIPELINE = (LOADGEN, HARNESS, OTHER, STEAL)


PROC_STAT = Path("/proc/stat")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def our_cpus() -> set[int]:
    """The CPUs this process may run on (a cpuset, `taskset`); every CPU where that is unknown."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _quota(text: str) -> float | None:
    """CPUs a cgroup's quota allows: cgroup v2's cpu.max ("200000 100000", "max 100000"), or v1's
    quota and period joined by a space ("-1 100000": none)."""
    fields = text.split()
    if len(fields) != 2 or fields[0] in ("max", "-1"):
        return None
    quota, period = int(fields[0]), int(fields[1])
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota() -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors (a container's `--cpus`),
    in CPUs; None without one. Inside a container the hierarchy is mounted at its own group, which
    /proc/self/cgroup may still name by the host's path: the ancestors' files include it."""
    try:
        lines = PROC_CGROUP.read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    files: tuple[str, ...]
    for line in lines:
        fields = line.split(":", 2)  # hierarchy-ID:controllers:path
        if len(fields) != 3 or not fields[2].startswith("/"):
            continue
        _, controllers, path = fields
        if controllers == "":  # cgroup v2: cpu.max
            mount, files = CGROUP_ROOT, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's quota and period
            mount, files = CGROUP_ROOT / controllers, ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        for group in (Path(path), *Path(path).parents):
            try:  # a file unreadable or malformed tells nothing: a figure to record, never a reason to stop
                text = " ".join((mount / group.relative_to("/") / f).read_text(encoding="ascii") for f in files)
                quotas += [q] if (q := _quota(text)) is not None else []
            except (OSError, ValueError):
                continue
    return min(quotas) if quotas else None


def usable_cpus() -> int:
    """CPUs this process's tree may use: its affinity, capped by a cgroup quota (rounded up: 1.5 CPUs
    let two run part of the time, so a CPU bound on it is an "at most" still). os.cpu_count() counts
    the host's: in a container limited to 2 of 64, a bound computed on it would be 32 times too high."""
    cpus = len(our_cpus())
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def _proc_stat_ticks() -> list[int] | None:
    """Ticks of the CPUs this process may run on, summed: user nice system idle iowait irq softirq
    steal guest guest_nice (/proc/stat's "cpuN" lines: on a host shared through a cpuset, the other
    CPUs' work is not ours to count)."""
    mine = our_cpus()
    try:
        with PROC_STAT.open(encoding="ascii") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and not line.startswith("cpu ")]
    except OSError:
        return None
    rows = [[int(v) for v in row[1:]] for row in lines if int(row[0][3:]) in mine]
    return [sum(col) for col in zip(*rows, strict=True)] if rows else None


def machine_seconds() -> tuple[float, float] | None:
    """(busy, stolen) CPU seconds of this process's CPUs since boot, from one read of /proc/stat:
    busy is user, nice, system, irq and softirq (not idle, iowait or steal, which no process here
    used); stolen is the hypervisor's steal."""
    ticks = _proc_stat_ticks()
    if ticks is None:
        return None
    # guest time is already counted in user/nice: the first seven fields, then no steal (the eighth)
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:7]) - idle) / _TICKS, (ticks[7] if len(ticks) > 7 else 0) / _TICKS


def machine_busy_seconds() -> float | None:
    """Busy CPU seconds of this process's CPUs since boot (`machine_seconds`' first)."""
    read = machine_seconds()
    return None if read is None else read[0]


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds per component at one monotonic instant."""

    at: float
    seconds: Mapping[str, float]

    @classmethod
    def take(cls, pids: Mapping[str, int], at: float, alone: Mapping[str, int] | None = None) -> CpuSnapshot:
        """`pids` with their descendants, `alone` without (a process whose descendants are in `pids`)."""
        seconds = {name: s for name, pid in pids.items() if (s := tree_cpu_seconds(pid)) is not None}
        seconds |= {name: s for name, pid in (alone or {}).items() if (s := process_cpu_seconds(pid)) is not None}
        if (machine := machine_seconds()) is not None:
            seconds[MACHINE], seconds[STOLEN] = machine
        return cls(at, seconds)

    @staticmethod
    def with_other(per_component: Mapping[str, float]) -> dict[str, float]:
        """The machine's entries replaced by OTHER, what processes outside the snapshot's used, and
        STEAL, what the hypervisor withheld."""
        out = {n: v for n, v in per_component.items() if n not in (MACHINE, STOLEN)}
        if MACHINE in per_component:
            out[OTHER] = max(0.0, per_component[MACHINE] - sum(out.values()))
        if STOLEN in per_component:
            out[STEAL] = per_component[STOLEN]
        return out

    def cores_since(self, earlier: CpuSnapshot) -> dict[str, float]:
        """Average cores used by each component between `earlier` and this snapshot (1.0 = one full core)."""
        wall = self.at - earlier.at
        if wall <= 0:
            return {}
        return {n: max(0.0, (s - earlier.seconds[n]) / wall) for n, s in self.seconds.items() if n in earlier.seconds}

    def seconds_since(self, earlier: CpuSnapshot) -> dict[str, float]:
        return {n: max(0.0, s - earlier.seconds[n]) for n, s in self.seconds.items() if n in earlier.seconds}
