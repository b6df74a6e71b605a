"""Open-loop arrivals: when each request is *meant* to start, independent of how the system answers.

Pure (no Locust, no gevent) so it can be driven by a fake clock in tests.

- `arrival_times` turns a rate function into intended start offsets (seconds from the schedule's
  t=0), constant or Poisson, seeded. Every process generates the same global sequence and keeps
  every n-th arrival (index i of n), so the union of all workers is exactly the single-process
  schedule and each worker gets 1/n of the rate.
- `OpenLoop` walks those offsets against a clock: it starts each arrival on time whatever is still
  in flight, and when the in-flight cap is reached it counts the arrival as *missed* rather than
  delaying it (delaying would hide the overload: coordinated omission).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

RateFunction = Callable[[float], float]

# Integration step for the cumulative rate. Breakpoints are added to the grid, so a step or surge
# edge is exact; between them a 1 ms midpoint rule is exact for piecewise-linear rates.
DEFAULT_STEP_SECONDS = 0.001


class ArrivalProcess(StrEnum):
    CONSTANT = "constant"  # evenly spaced at the current rate: reproducible, no bursts
    POISSON = "poisson"  # exponential gaps at the current rate: independent users, natural bursts


@dataclass(frozen=True)
class Share:
    """This process' part of the load: index `index` of `count` equal shares."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"invalid share {self.index} of {self.count}")

    def takes(self, seq: int) -> bool:
        return seq % self.count == self.index


def _grid(duration: float, breakpoints: Iterable[float], step: float) -> Iterator[tuple[float, float]]:
    edges = sorted({0.0, duration, *(b for b in breakpoints if 0.0 < b < duration)})
    for lo, hi in itertools.pairwise(edges):
        n = max(1, math.ceil((hi - lo) / step - 1e-9))
        for i in range(n):
            yield lo + (hi - lo) * i / n, lo + (hi - lo) * (i + 1) / n


def expected_arrivals(
    rate_at: RateFunction,
    duration: float,
    breakpoints: Iterable[float] = (),
    step: float = DEFAULT_STEP_SECONDS,
) -> float:
    """The integral of the rate over [0, duration): how many arrivals the whole schedule offers."""
    return sum(rate_at((t0 + t1) / 2) * (t1 - t0) for t0, t1 in _grid(duration, breakpoints, step))


def arrival_times(
    rate_at: RateFunction,
    duration: float,
    *,
    process: ArrivalProcess = ArrivalProcess.CONSTANT,
    seed: int = 0,
    share: Share = Share(),
    breakpoints: Iterable[float] = (),
    step: float = DEFAULT_STEP_SECONDS,
) -> Iterator[float]:
    """Yield this share's intended start offsets in seconds, ascending, all in [0, duration).

    Arrival k of the global sequence happens when the cumulative rate (expected count) reaches a
    target: k + 0.5 for constant arrivals (mid-slot, so float error never drops the last one) or
    a running sum of unit exponentials for Poisson (time-rescaling of a unit-rate process).
    """
    rng = random.Random(seed)

    def targets() -> Iterator[float]:
        if process == ArrivalProcess.CONSTANT:
            k = 0
            while True:
                yield k + 0.5
                k += 1
        total = 0.0
        while True:
            total += rng.expovariate(1.0)
            yield total

    upcoming = targets()
    target = next(upcoming)
    seq = 0
    cumulative = 0.0
    for t0, t1 in _grid(duration, breakpoints, step):
        rate = rate_at((t0 + t1) / 2)
        if rate <= 0.0:
            continue
        end = cumulative + rate * (t1 - t0)
        while target < end:
            if share.takes(seq):
                yield min(t0 + (target - cumulative) / rate, t1)
            seq += 1
            target = next(upcoming)
        cumulative = end


class Clock(Protocol):
    """Seconds on the schedule's own timeline (0 = the first instant of the profile)."""

    def now(self) -> float: ...

    def sleep_until(self, deadline: float) -> None:
        """Return at or after `deadline`; when already past it, still let other work run now and then
        (a loop that falls behind must not starve the rest of the process)."""


class Arrival(NamedTuple):  # a tuple: made once per arrival, on the generator's hot path
    seq: int  # position in this share's sequence
    intended: float  # intended start, schedule seconds
    decided: float  # when the loop got to it; decided - intended is the schedule lag


class OpenLoop:
    """Starts arrivals on schedule up to an in-flight cap; counts the rest as missed."""

    def __init__(self, arrivals: Iterable[float], clock: Clock, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._arrivals = arrivals
        self._clock = clock
        self.max_in_flight = max_in_flight
        self.intended = 0
        self.started = 0
        self.missed = 0
        self.finished = False

    def run(
        self,
        *,
        in_flight: Callable[[], int],
        start: Callable[[Arrival], None],
        miss: Callable[[Arrival], None],
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        """Block until the schedule is exhausted or `stopped()`.

        `start` must count the request as in flight before it returns (spawn, don't wait), so the
        next arrival sees it. When the loop falls behind, late arrivals start at once, back to
        back: their lag is recorded, never skipped.
        """
        for seq, intended in enumerate(self._arrivals):
            self._clock.sleep_until(intended)
            if stopped():
                return
            arrival = Arrival(seq, intended, self._clock.now())
            self.intended += 1
            if in_flight() >= self.max_in_flight:
                self.missed += 1
                miss(arrival)
            else:
                self.started += 1
                start(arrival)
        self.finished = True
