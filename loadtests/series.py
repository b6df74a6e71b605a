"""One worker's per-second series, bucketed by the second of the *intended* start.

Bucketing by intended start shows what became of the load offered in each second (a request
offered at t=30.2 s that times out at 40 s counts in second 30). Per-worker quantiles cannot be
merged; for cross-worker latency quantiles read the outcomes files.

Line format (`series-w<worker>.jsonl`):
    {"second": 0, "unix_seconds": ..., "target_rate": 50.0, "intended": 50, "started": 50, "missed": 0,
     "ack": 49, "failed": 1, "unknown": 0, "latency_p50_seconds": ..., "latency_p99_seconds": ...,
     "latency_max_seconds": ..., "lag_max_seconds": ...}
"""

from __future__ import annotations

import functools
import json
import math
import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facts.quantiles import quantile
from loadtests.outcome import Outcome, run_here


@dataclass
class _Bucket:
    intended: int = 0
    started: int = 0
    missed: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    # 8 bytes a request where a list of floats took 32: kept for the whole run (a late answer
    # changes its second's quantiles). The generator grew 11 MiB over the 30 min soak at 194/s
    # (run 20261130-111836): 349,000 requests x 32 bytes.
    latencies: array[float] = field(default_factory=lambda: array("d"))
    lag_max: float = 0.0
    row: dict[str, Any] | None = None  # the rendered row, until the bucket changes again
    line: str | None = None  # ... and its JSON line (None whenever row is)


class Series:
    def __init__(self, target_rate: Callable[[float], float], duration: float, epoch_unix_seconds: float) -> None:
        """`target_rate(t)` is this worker's share of the profile rate at schedule time t."""
        self._target_rate = target_rate
        self._epoch = epoch_unix_seconds
        self._buckets = [_Bucket() for _ in range(max(1, math.ceil(duration)))]

    def bucket(self, intended: float) -> _Bucket:
        """The second of `intended`, for a caller that records several things of one request in it."""
        buckets = self._buckets
        i = int(intended)
        return buckets[i] if 0 <= i < len(buckets) else buckets[0 if i < 0 else -1]

    @staticmethod
    def started_in(b: _Bucket, lag: float) -> None:
        """A request of bucket `b` started, `lag` seconds after its intended time (arrival + lag at once)."""
        b.row = b.line = None
        b.intended += 1
        b.started += 1
        if lag > b.lag_max:
            b.lag_max = lag

    @staticmethod
    def completed_in(b: _Bucket, outcome: Outcome, latency: float) -> None:
        b.row = b.line = None
        b.outcomes[outcome] += 1
        b.latencies.append(latency)

    def missed(self, intended: float) -> None:
        """An arrival of second `intended` found the in-flight cap reached and was not sent."""
        b = self.bucket(intended)
        b.row = b.line = None
        b.intended += 1
        b.missed += 1

    def rows(self) -> list[dict[str, Any]]:
        """One row per second; a second whose bucket has not changed since the last call is not recomputed
        (a flush every second would otherwise sort every latency of the run so far, every second)."""
        rows = []
        for second, b in enumerate(self._buckets):
            if b.row is not None:
                rows.append(b.row)
                continue
            lat = sorted(b.latencies)
            b.row = row = {
                "second": second,
                "unix_seconds": self._epoch + second,
                # mean over the second, so a surge edge inside it shows as a partial rate
                "target_rate": round(sum(self._target_rate(second + (i + 0.5) / 10) for i in range(10)) / 10, 6),
                "intended": b.intended,
                "started": b.started,
                "missed": b.missed,
                **{str(o): n for o, n in b.outcomes.items()},
                "latency_p50_seconds": quantile(lat, 0.5),
                "latency_p99_seconds": quantile(lat, 0.99),
                "latency_max_seconds": lat[-1] if lat else None,
                "lag_max_seconds": b.lag_max,
            }
            rows.append(row)
        return rows

    def write(self, path: Path, run: Callable[[Callable[[], object]], object] = run_here) -> None:
        """Replace the file atomically, so a reader never sees half a series. `run` does the file
        work (the driver: in a thread); the rows are rendered here."""
        self.rows()
        lines = []
        for b in self._buckets:
            if b.line is None:
                b.line = json.dumps(b.row, separators=(",", ":")) + "\n"
            lines.append(b.line)
        run(functools.partial(_replace, path, "".join(lines)))


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
