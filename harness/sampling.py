"""Reading the pipeline while a cell plays: the backlog/sink sampler, and the drain after the load."""

from __future__ import annotations

import contextlib
import threading
import time

from harness import kafka_admin, sink
from harness.progress import Progress

POLL_SECONDS = 0.5  # the drain's reads of the backlog and the sink


def sample_backlog() -> int | None:
    try:
        return kafka_admin.backlog()
    except Exception:  # the broker may be the fault under test
        return None


class Sampler:
    """Samples the Kafka backlog and the sink's count once a second on its own thread.

    A sample can block for seconds while the broker is the fault under test; on the main thread
    that would hold up the fault timeline (a killed broker was restarted 15 s late that way).
    It only reads, so a thread is safe here (processes are started from the main thread only).
    """

    def __init__(self) -> None:
        self.series: list[tuple[float, int | None]] = []
        self.backlog: int | None = None
        self.unique: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.backlog = sample_backlog()
            self.series.append((time.time(), self.backlog))
            with contextlib.suppress(Exception):
                self.unique = int(sink.stats()["unique"])
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started (a cell interrupted at once may never have)
            self._thread.join(timeout=30)


def drain(
    timeout: float, progress: Progress, settle: float, series: list[tuple[float, int | None]] | None = None,
    *, quiet_before: bool = False,
) -> int | None:  # fmt: skip
    """Wait until Kafka's backlog is empty and the sink has received nothing for `settle` seconds, by
    the sink's own clock. With `quiet_before`, a quiet spell that began before this call counts: a
    drain before a sink reset, right after the previous cell's drain, then ends at once. Without it
    (after a load, its faults just undone: retries may still be on their way), the sink must stay
    quiet `settle` seconds from the call on. Returns the backlog left: 0 when drained."""
    t0 = time.monotonic()
    backlog: int | None = None
    while time.monotonic() - t0 < timeout:
        backlog = sample_backlog()
        if series is not None:
            series.append((time.time(), backlog))
        stats = sink.stats()
        idle = float(stats["idle_seconds"])
        if not quiet_before:
            idle = min(idle, time.monotonic() - t0)
        if backlog == 0 and idle >= settle:
            return 0
        progress.show("drain", time.monotonic() - t0, f"backlog {backlog}  sink raw {stats['raw']}")
        time.sleep(POLL_SECONDS if backlog != 0 else min(POLL_SECONDS, settle - idle))
    return backlog
