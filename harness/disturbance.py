"""Was the machine disturbed during a cell? CPU taken by processes outside the stack, steal time,
load average, sampled once a second on a thread of its own.

"Ours" is the harness process and every process under it: the stack's components, Locust and its
workers are all its descendants. Everything else that burned CPU meanwhile (a package being
installed, another job on the machine) is outside. The hypervisor's steal (a neighbour on the host)
is no process's here: it has its own share and limit. A cell past either limit (data:
harness/limits/disturbance.yaml) is flagged, and no verdict rests on it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from harness import yamlpos
from harness.capacity import cpu
from harness.result import Disturbance

LIMITS_FILE = Path(__file__).resolve().parent / "limits" / "disturbance.yaml"


class DisturbanceLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outside_cpu_share: float = Field(gt=0, le=1)  # of all the machine's CPU, mean over the cell
    steal_share: float = Field(gt=0, le=1)


def load_limits(path: Path = LIMITS_FILE) -> DisturbanceLimits:
    return yamlpos.load_model(path, DisturbanceLimits)


def _cpu_times(cpus: set[int]) -> Any:
    """psutil's CPU times summed over `cpus` (on a host shared through a cpuset, the other CPUs'
    work is not the machine this run has)."""
    rows = [t for n, t in enumerate(psutil.cpu_times(percpu=True)) if n in cpus]
    return type(rows[0])(*map(sum, zip(*rows, strict=True)))


def _busy(t: Any) -> float:
    """CPU seconds processes on this machine used: guest time is already in user, and steal is the
    hypervisor's (counted on its own), used by no process here."""
    not_used = t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0)
    return float(sum(t) - not_used - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0))


class MachineWatch:
    """Samples the machine every `interval` seconds until stopped; `disturbance()` sums it up."""

    def __init__(self, limits: DisturbanceLimits | None = None, root_pid: int | None = None, interval: float = 1.0):
        self.limits = limits or load_limits()
        self.root = psutil.Process(root_pid or os.getpid())
        self.interval = interval
        self.our_cpus = cpu.our_cpus()
        self.cpus = len(self.our_cpus)
        self.samples: list[tuple[float, float, float]] = []  # (outside share, steal share, load average)
        self._seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds at the last sample
        self._since = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="machine-watch", daemon=True)

    def _ours(self) -> float:
        """CPU seconds our processes used since the last call. A process started since the watch began
        counts from its start (a restarted broker's JVM burns CPU at once); one that exited and was
        waited for moves into its parent's children times, which may count it twice, never as outside."""
        used = 0.0
        for p in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total = t.user + t.system + t.children_user + t.children_system
                key = (p.pid, p.create_time())
                before = self._seen.get(key, 0.0 if key[1] >= self._since else total)
                used += total - before
                self._seen[key] = total
        return used

    def _loop(self) -> None:
        self._ours()  # the baseline: what our processes had used before the cell
        times, wall = _cpu_times(self.our_cpus), time.monotonic()
        while not self._stop.wait(self.interval):
            times2, ours, wall2 = _cpu_times(self.our_cpus), self._ours(), time.monotonic()
            capacity = self.cpus * (wall2 - wall)
            outside = max(0.0, _busy(times2) - _busy(times) - ours)
            steal = getattr(times2, "steal", 0.0) - getattr(times, "steal", 0.0)
            self.samples.append((min(1.0, outside / capacity), min(1.0, steal / capacity), os.getloadavg()[0]))
            times, wall = times2, wall2

    def start(self) -> MachineWatch:
        self._thread.start()
        return self

    def stop(self) -> Disturbance:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.disturbance()

    def disturbance(self) -> Disturbance:
        if not self.samples:
            return Disturbance(measured=False)
        n = len(self.samples)
        outside = sum(s[0] for s in self.samples) / n
        steal = sum(s[1] for s in self.samples) / n
        reasons = []
        if outside > self.limits.outside_cpu_share:
            limit = self.limits.outside_cpu_share
            reasons.append(f"processes outside the stack took {outside:.0%} of the CPU (limit {limit:.0%})")
        if steal > self.limits.steal_share:
            reasons.append(f"the hypervisor stole {steal:.0%} of the CPU (limit {self.limits.steal_share:.0%})")
        return Disturbance(
            measured=True,
            samples=n,
            outside_cpu_share_mean=outside,
            outside_cpu_share_max=max(s[0] for s in self.samples),
            steal_share_mean=steal,
            load_average_max=max(s[2] for s in self.samples),
            flagged=reasons,
        )
