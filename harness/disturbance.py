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

import psutil
from pydantic import BaseModel, ConfigDict, Field

from harness import yamlpos
from harness.capacity import cpu
from harness.result import Disturbance

LIMITS_FILE = Path(__file__).resolve().parent / "limits" / "disturbance.yaml"


class DisturbanceLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outside_cpu_share: float = Field(gt=0, le=1)  # of the CPUs the harness may use, mean over the cell
    steal_share: float = Field(gt=0, le=1)


def load_limits(path: Path = LIMITS_FILE) -> DisturbanceLimits:
    return yamlpos.load_model(path, DisturbanceLimits)


class MachineWatch:
    """Samples the machine every `interval` seconds until stopped; `disturbance()` sums it up."""

    def __init__(self, limits: DisturbanceLimits | None = None, root_pid: int | None = None, interval: float = 1.0):
        self.limits = limits or load_limits()
        self.root = psutil.Process(root_pid or os.getpid())
        self.interval = interval
        self.cpus = len(cpu.our_cpus())  # the CPUs cpu.machine_seconds reads
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
        before, wall = cpu.machine_seconds(), time.monotonic()
        while not self._stop.wait(self.interval):
            now, ours, wall2 = cpu.machine_seconds(), self._ours(), time.monotonic()
            if before is not None and now is not None:  # /proc/stat unreadable: no sample, never a wrong one
                capacity = self.cpus * (wall2 - wall)
                outside = max(0.0, now[0] - before[0] - ours)
                stolen = max(0.0, now[1] - before[1])
                self.samples.append((min(1.0, outside / capacity), min(1.0, stolen / capacity), os.getloadavg()[0]))
            before, wall = now, wall2

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
