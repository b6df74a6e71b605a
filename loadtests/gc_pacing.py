"""The load generator's garbage collection, paced: never in the middle of the schedule's arrivals.

Python's cyclic collector runs when allocations cross a threshold, wherever the loop happens to
be; a collection of the older generations scanned the tens of thousands of objects a busy cell
keeps alive (greenlets, sockets, frames of requests in flight, before the driver's client took
callbacks) and stopped the whole gevent loop
for 40-70 ms (measured in a sync surge at 750/s), which every arrival due meanwhile took as
schedule lag. So during a schedule:

- what exists at the start is frozen (Locust's heap is never scanned again);
- automatic collection is off, and the flusher collects the two young generations once a second,
  a few milliseconds over only what was allocated since and still lives;
- what outlives that goes to the oldest generation, left to the collector after the schedule.

Reference counting frees everything that is not a cycle at once; the request path keeps no cycles
(http_client.py hands errors on without their traceback), so the oldest generation holds
long-lived objects (pooled connections, the loop's watchers), not garbage. Each pause is timed and
reported in the worker's summary.
"""

from __future__ import annotations

import gc
import time
from types import TracebackType
from typing import Any


class PacedCollection:
    def __init__(self) -> None:
        self.collections = 0
        self.pause_total = 0.0
        self.pause_max = 0.0
        self._began = 0.0
        self._was_enabled = True

    def __enter__(self) -> PacedCollection:
        self._was_enabled = gc.isenabled()
        gc.freeze()
        gc.disable()
        gc.callbacks.append(self._timed)
        return self

    def collect_young(self) -> None:
        """Generations 0 and 1: what was allocated since the last call and still lives."""
        gc.collect(1)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        gc.callbacks.remove(self._timed)
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def _timed(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        self.collections += 1
        self.pause_total += pause
        self.pause_max = max(self.pause_max, pause)

    def summary(self) -> dict[str, float | int]:
        return {
            "gc_collections": self.collections,
            "gc_pause_total_seconds": round(self.pause_total, 6),
            "gc_pause_max_seconds": round(self.pause_max, 6),
        }
