"""Cumulative load-generator counters and histograms as plain data.

Plain data so that a worker can ship a snapshot to the master inside Locust's periodic report
(msgpack: str keys, lists, numbers) and the master can sum the snapshots of all workers.
Snapshots are cumulative, not deltas: a lost or repeated report cannot skew the totals.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadtests.outcome import Outcome

# From a loopback 2xx (~1 ms) to a request that hits its deadline (the default timeout is 10 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Schedule lag is the load generator's own health: anything over a few ms means it is saturated.
LAG_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket (not cumulative), plus +Inf last
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # Prometheus buckets are upper-inclusive: value <= le.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip([*map(repr, self.bounds), "+Inf"], self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total

    def to_wire(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "total": self.total}

    @classmethod
    def from_wire(cls, bounds: tuple[float, ...], data: dict[str, Any]) -> Histogram:
        return cls(bounds, [int(c) for c in data["counts"]], float(data["total"]))


_NAMES = {o: str(o) for o in Outcome}
_STATUS_KEYS: dict[int | None, str] = {None: "none", 0: "none", **{s: str(s) for s in (200, 201, 202, 503, 504)}}


@dataclass
class LoadStats:
    arrivals: int = 0  # intended arrivals the schedule reached
    started: int = 0  # requests actually started (achieved rate)
    missed: int = 0  # arrivals dropped because the in-flight cap was reached
    in_flight: int = 0
    in_flight_limit: int = 0
    responses: dict[str, dict[str, int]] = field(default_factory=dict)  # outcome -> status -> count
    latency: dict[str, Histogram] = field(default_factory=lambda: {o: Histogram(LATENCY_BUCKETS) for o in Outcome})
    lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))

    def on_arrival(self, started: bool) -> None:
        self.arrivals += 1
        if started:
            self.started += 1
            self.in_flight += 1
        else:
            self.missed += 1

    def on_start(self, lag: float) -> None:
        self.lag.observe(max(0.0, lag))

    def on_response(self, outcome: Outcome, status: int | None, latency: float) -> None:
        self.in_flight -= 1
        name = _NAMES[outcome]
        by_status = self.responses.get(name)
        if by_status is None:
            by_status = self.responses[name] = {}
        key = _STATUS_KEYS.get(status) or (str(status) if status else "none")
        by_status[key] = by_status.get(key, 0) + 1
        self.latency[name].observe(latency)

    def to_wire(self) -> dict[str, Any]:
        return {
            "arrivals": self.arrivals,
            "started": self.started,
            "missed": self.missed,
            "in_flight": self.in_flight,
            "in_flight_limit": self.in_flight_limit,
            "responses": {o: dict(s) for o, s in self.responses.items()},
            "latency": {o: h.to_wire() for o, h in self.latency.items()},
            "lag": self.lag.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> LoadStats:
        stats = cls(
            arrivals=int(data["arrivals"]),
            started=int(data["started"]),
            missed=int(data["missed"]),
            in_flight=int(data["in_flight"]),
            in_flight_limit=int(data["in_flight_limit"]),
            responses={o: {s: int(n) for s, n in by.items()} for o, by in data["responses"].items()},
            lag=Histogram.from_wire(LAG_BUCKETS, data["lag"]),
        )
        for outcome, hist in data["latency"].items():
            stats.latency[outcome] = Histogram.from_wire(LATENCY_BUCKETS, hist)
        return stats

    @classmethod
    def merged(cls, parts: Iterable[LoadStats]) -> LoadStats:
        total = cls()
        for p in parts:
            total.arrivals += p.arrivals
            total.started += p.started
            total.missed += p.missed
            total.in_flight += p.in_flight
            total.in_flight_limit += p.in_flight_limit
            for outcome, by_status in p.responses.items():
                mine = total.responses.setdefault(outcome, {})
                for status, n in by_status.items():
                    mine[status] = mine.get(status, 0) + n
            for outcome, hist in p.latency.items():
                total.latency.setdefault(outcome, Histogram(LATENCY_BUCKETS)).add(hist)
            total.lag.add(p.lag)
        return total
