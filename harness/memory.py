"""Memory of every process during a cell: the RSS of each stack component and the load generator,
read every few seconds on a thread of its own, and judged flat or growing against limits that are
data (harness/limits/memory.yaml).

A component is a process tree (Locust and its workers, HAProxy's master and worker): its RSS is
the sum over the process and its live descendants, read in one pass over /proc/<pid>/stat (the
kernel's resident pages; shared pages count in each process that maps them, so a tree's figure is
an upper bound, and one that moves the same way). A component restarted during the cell (a fault
killed it) gets a new process; its series then mixes two processes and is not judged.

The verdict reads the judged samples, those after the warm-up: start and end are the medians of
their first and last tenth, the growth is the least-squares slope (bytes per hour), and the
process is flat when the slope's growth over the judged span stays under max(5 % of the start,
20 MiB), or what the limits file says today. Fewer samples than the limits' minimum give
"not enough samples", never a verdict.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from harness import yamlpos

LIMITS_FILE = Path(__file__).resolve().parent / "limits" / "memory.yaml"
MIB = 1024 * 1024
HOUR = 3600.0
_PAGE = os.sysconf("SC_PAGE_SIZE")

Verdict = Literal["flat", "growing", "grows by design", "not enough samples", "restarted"]


class MemoryLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_seconds: float = Field(gt=0)
    warmup_share: float = Field(ge=0, lt=1)
    warmup_max_seconds: float = Field(ge=0)
    min_samples: int = Field(ge=3)
    edge_share: float = Field(gt=0, le=0.5)
    growth_share: float = Field(ge=0)
    growth_floor_mib: float = Field(ge=0)
    grows_by_design: dict[str, str] = Field(default_factory=dict)

    def warmup(self, load_seconds: float) -> float:
        return min(self.warmup_share * load_seconds, self.warmup_max_seconds)

    def limit_bytes(self, start_bytes: float) -> float:
        return max(self.growth_share * start_bytes, self.growth_floor_mib * MIB)

    def rule(self) -> str:
        return (
            f"flat: the fitted growth over the judged span < max({self.growth_share:.0%} of the start, "
            f"{self.growth_floor_mib:g} MiB)"
        )


def load_limits(path: Path = LIMITS_FILE) -> MemoryLimits:
    return yamlpos.load_model(path, MemoryLimits)


# -- the result's part ---------------------------------------------------------------------------


class ProcessMemory(BaseModel):
    """One process tree's RSS during a cell, and what it says."""

    model_config = ConfigDict(extra="forbid")

    process: str
    # (seconds from the load's start, RSS bytes), every reading from the load's start on
    series: list[tuple[float, int]] = Field(default_factory=list)
    restarts: int = 0  # how often another process took the name during the cell
    samples: int = 0  # judged: after the warm-up, within the load
    start_bytes: float | None = None  # median of the first tenth of the judged samples
    end_bytes: float | None = None  # median of the last tenth
    growth_bytes_per_hour: float | None = None  # least-squares slope
    growth_bytes: float | None = None  # the slope over the judged span
    limit_bytes: float | None = None  # what `growth_bytes` had to stay under
    verdict: Verdict = "not enough samples"
    note: str = ""  # why: the by-design reason, how many samples were missing


class MemoryProfile(BaseModel):
    """The cell's memory per process (harness/memory.py); not measured where the harness cannot see
    the processes (compose)."""

    model_config = ConfigDict(extra="forbid")

    measured: bool
    interval_seconds: float | None = None
    warmup_seconds: float | None = None
    rule: str = ""  # the limit the verdicts were given against, in words
    processes: list[ProcessMemory] = Field(default_factory=list)

    @classmethod
    def judged(cls, processes: list[ProcessMemory], load_seconds: float, limits: MemoryLimits) -> MemoryProfile:
        """A measured profile: the processes' verdicts with the sampling and the rule they came from."""
        return cls(
            measured=True,
            interval_seconds=limits.interval_seconds,
            warmup_seconds=limits.warmup(load_seconds),
            rule=limits.rule(),
            processes=processes,
        )

    def growing(self) -> float | None:
        """Processes whose memory grew past the limit (not by design); None when none was judged."""
        judged = [p for p in self.processes if p.verdict in ("flat", "growing", "grows by design")]
        if not self.measured or not judged:
            return None
        return float(sum(p.verdict == "growing" for p in judged))


# -- judging ---------------------------------------------------------------------------------------


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over t; None for fewer than two distinct instants."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var <= 0:
        return None
    return sum((t - mt) * (y - my) for t, y in points) / var


def judge(
    process: str,
    series: Sequence[tuple[float, int]],
    load_seconds: float,
    limits: MemoryLimits,
    restarts: int = 0,
) -> ProcessMemory:
    """The summary and verdict of one process's series (seconds from the load's start, RSS bytes)."""
    warmup = limits.warmup(load_seconds)
    judged = [(t, float(b)) for t, b in series if warmup <= t <= load_seconds]
    n = len(judged)
    out = ProcessMemory(process=process, series=list(series), restarts=restarts, samples=n)
    if n == 0:
        out.note = f"no sample after the {warmup:g} s warm-up"
        return out
    k = max(1, math.ceil(limits.edge_share * n))
    out.start_bytes = statistics.median(b for _, b in judged[:k])
    out.end_bytes = statistics.median(b for _, b in judged[-k:])
    per_second = slope(judged)
    if per_second is not None:
        out.growth_bytes_per_hour = per_second * HOUR
        out.growth_bytes = per_second * (judged[-1][0] - judged[0][0])
    out.limit_bytes = limits.limit_bytes(out.start_bytes)
    if restarts:
        out.verdict, out.note = "restarted", f"another process took its place {restarts}x: two processes, not judged"
    elif n < limits.min_samples or out.growth_bytes is None:
        out.verdict, out.note = "not enough samples", f"{n} judged, {limits.min_samples} needed"
    elif out.growth_bytes < out.limit_bytes:
        out.verdict = "flat"
    elif process in limits.grows_by_design:
        out.verdict, out.note = "grows by design", limits.grows_by_design[process]
    else:
        out.verdict = "growing"
    return out


class Reading(NamedTuple):
    unix: float
    rss_bytes: int
    identity: tuple[int, int]  # (pid, start time in clock ticks): another process, another identity


def profile(
    readings: Mapping[str, Sequence[Reading]], epoch: float, load_seconds: float, limits: MemoryLimits
) -> MemoryProfile:
    """Every process's readings on the load's time axis (from its start on), judged."""
    processes = []
    for name, rs in readings.items():
        kept = [r for r in rs if r.unix >= epoch]
        restarts = sum(1 for a, b in itertools.pairwise(kept) if a.identity != b.identity)
        series = [(round(r.unix - epoch, 2), r.rss_bytes) for r in kept]
        processes.append(judge(name, series, load_seconds, limits, restarts))
    return MemoryProfile.judged(processes, load_seconds, limits)


# -- reading /proc ---------------------------------------------------------------------------------


class _Stat(NamedTuple):
    ppid: int
    start_ticks: int
    rss_bytes: int


def process_table(proc: Path = Path("/proc")) -> dict[int, _Stat]:
    """Every process's parent, start time and RSS, from one pass over /proc/<pid>/stat."""
    table: dict[int, _Stat] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:  # it exited meanwhile
            continue
        # The command name (field 2) may hold spaces or parentheses: split after its closing one.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):  # dead, not yet reaped (a killed component): nothing resident
            continue
        # proc(5): ppid is field 4, starttime 22, rss 24 (pages); fields[0] is field 3, the state.
        table[int(entry.name)] = _Stat(int(fields[1]), int(fields[19]), int(fields[21]) * _PAGE)
    return table


def tree_rss(pid: int, table: Mapping[int, _Stat], children: Mapping[int, list[int]]) -> int:
    """RSS bytes of `pid` and its live descendants."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in table:
            continue
        seen.add(p)
        total += table[p].rss_bytes
        todo += children.get(p, [])
    return total


def read_once(pids: Mapping[str, int], alone: Collection[str] = (), proc: Path = Path("/proc")) -> dict[str, Reading]:
    """One reading of every named process tree (`alone`: the process without its children); a
    process that is not running is left out."""
    now = time.time()
    table = process_table(proc)
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st.ppid, []).append(pid)
    out = {}
    for name, pid in pids.items():
        if pid not in table:
            continue
        rss = table[pid].rss_bytes if name in alone else tree_rss(pid, table, children)
        out[name] = Reading(now, rss, (pid, table[pid].start_ticks))
    return out


class MemoryWatch:
    """Reads every process's RSS every `interval` seconds until stopped. `pids` is asked at every
    reading (a restarted component has another pid); `alone`: names read without their children."""

    def __init__(
        self,
        pids: Callable[[], Mapping[str, int]],
        interval: float | None = None,
        alone: Collection[str] = (),
    ) -> None:
        self.pids, self.alone = pids, alone
        self.interval = interval if interval is not None else load_limits().interval_seconds
        self.readings: dict[str, list[Reading]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-watch", daemon=True)

    def _loop(self) -> None:
        while True:
            t0 = time.monotonic()
            with contextlib.suppress(OSError, RuntimeError, ValueError, IndexError):  # never the cell's end
                for name, reading in read_once(self.pids(), self.alone).items():
                    self.readings.setdefault(name, []).append(reading)
            if self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0))):
                return

    def start(self) -> MemoryWatch:
        self._thread.start()
        return self

    def stop(self) -> dict[str, list[Reading]]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.readings
