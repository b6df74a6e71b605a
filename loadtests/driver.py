"""One process' share of the open-loop schedule, sent over keep-alive connections on gevent's loop.

The `OpenLoop` decides when each request starts; this module owns what happens to it: it is
written at once by the callback-driven client (no greenlet per request; its deadline and answer
come back as one callback), then its outcome record, the per-second series, the counters, and the
report to Locust's stats.

The per-request path is kept cheap (it is the generator's ceiling): requests are rendered in
batches ahead of use (`ReactionFactory.render`), sent on kept-alive connections by a client that
only reads the status (`http_client.KeepAliveClient`), and each outcome is one packed 72-byte
record appended to a list (`OutcomeLog.add_packed`); files, the series and Locust's stats are
written once a second (`flush`), never per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from loadtests.arrivals import Arrival, OpenLoop
from loadtests.counters import LoadStats
from loadtests.gc_pacing import PacedCollection
from loadtests.http_client import KeepAliveClient
from loadtests.outcome import (
    KIND_OUTCOME,
    OUTCOME_CODES,
    RECORD,
    Outcome,
    OutcomeLog,
    classify,
    describe,
    outcomes_path,
    series_path,
    summary_path,
)
from loadtests.reaction import ReactionFactory, Rendered
from loadtests.series import Series

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 1.0
ABORT_GRACE_SECONDS = 5.0
RENDER_BATCH = 64  # requests rendered at a time


class Aborted(Exception):
    """The load test stopped before the request got an answer."""


def _nothing() -> None:
    pass


class GeventClock:
    """Schedule time on the local monotonic clock, anchored once to the plan's Unix epoch.

    All workers share the Unix epoch (same host clock), so their schedules line up; pacing on the
    monotonic clock keeps a wall-clock step (NTP) from bunching or stretching arrivals.

    With a `wake_interval`, a sleep never ends sooner than that after the previous wakeup: the
    arrivals due meanwhile start together, up to the interval late (their lag says so), and
    `on_wake` (the client's `poll`) reads the answers that came in. A wakeup costs more CPU than a
    request on a VM; this is how the open loop pays one per several requests, as `wrk` does. The
    arrivals of one wakeup start back to back without yielding to the loop; a catch-up burst that
    outlasts the interval yields and reads answers once per interval.
    """

    def __init__(self, epoch_unix_nanos: int, wake_interval: float, on_wake: Callable[[], None]) -> None:
        self.epoch_unix_nanos = epoch_unix_nanos
        self._mono_epoch = time.monotonic() - (time.time_ns() - epoch_unix_nanos) / 1e9
        self.wake_interval = wake_interval
        self.on_wake = on_wake  # what a wakeup does besides starting the arrivals due (read answers)
        self._woke = -wake_interval

    def now(self) -> float:
        return time.monotonic() - self._mono_epoch

    def sleep_until(self, deadline: float) -> None:
        now = self.now()
        if deadline > now:
            gevent.sleep(max(deadline, self._woke + self.wake_interval) - now)
        elif now - self._woke < self.wake_interval:
            return  # due in this wakeup's batch: start it at once (a yield is a loop iteration, ~2 us)
        else:
            gevent.sleep(0)  # late by a whole interval: still yield, so the rest of the loop runs in a catch-up
        now = self.now()
        if now - self._woke >= self.wake_interval:
            self._woke = now
            self.on_wake()

    def unix_nanos(self, t: float) -> int:
        return self.epoch_unix_nanos + round(t * 1e9)


@dataclass(frozen=True)
class DriverConfig:
    schedule: Iterable[float]  # this share's intended start offsets, seconds
    epoch_unix_nanos: int
    duration: float
    share_rate: Callable[[float], float]  # this share's target rate at schedule time t
    max_in_flight: int
    wake_interval: float  # seconds; > 0 needs a batched client (GeventClock says why)
    worker: int
    outcomes_dir: Path
    summary: dict[str, Any]  # run description copied into summary-w<worker>.json


class Reporter(Protocol):
    """Where each finished request is reported besides the outcome file (Locust's stats: locust_stats.py)."""

    def add(
        self,
        outcome: Outcome,
        error_text: str | None,
        latency: float,
        length: int,
        reaction_id: str,
        started_unix: float,
    ) -> None: ...

    def flush(self) -> None: ...


class Driver:
    def __init__(
        self,
        client: KeepAliveClient,
        factory: ReactionFactory,
        config: DriverConfig,
        stats: LoadStats,
        report: Reporter,
    ) -> None:
        self._client = client
        self._factory = factory
        self.config = config
        self.stats = stats
        self._report = report
        if config.wake_interval > 0 and not client.batched:
            raise ValueError("a wake interval needs a batched client: nothing else would read its answers")
        self.clock = GeventClock(
            config.epoch_unix_nanos, config.wake_interval, client.poll if client.batched else _nothing
        )
        self.loop = OpenLoop(config.schedule, self.clock, config.max_in_flight)
        self.outcomes = OutcomeLog(outcomes_path(config.outcomes_dir, config.worker), config.worker)
        self.series = Series(config.share_rate, config.duration, config.epoch_unix_nanos / 1e9)
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._rendered: list[Rendered] = []
        self._hub = gevent.get_hub()
        self._in_flight = 0
        self._idle = Event()  # set whenever nothing is in flight
        self._idle.set()
        self._closing: Event | None = None  # set once close() has written everything
        self.gc = PacedCollection()
        self._flush_lock = Semaphore()
        self._flushing_stopped = Event()
        stats.in_flight_limit = config.max_in_flight  # one driver per process at a time

    def run(self, stopped: Callable[[], bool]) -> bool:
        """Follow the schedule, then wait for every started request. True if the schedule completed."""
        with self.gc:  # collections only between flushes, never mid-schedule (gc_pacing.py)
            flusher = gevent.spawn(self._flush_periodically)
            try:
                self.loop.run(in_flight=self._current, start=self._start, miss=self._miss, stopped=stopped)
                # Drain: every request started gets its answer or hits its deadline.
                self._idle.wait()
            finally:
                # Not killed: a flush in progress finishes, so no batch is written after a later one.
                self._flushing_stopped.set()
                flusher.join()
        return self.loop.finished

    def _current(self) -> int:
        return self._in_flight

    def _start(self, arrival: Arrival) -> None:
        """Send one request now (the client never blocks); `_done` records it when it ends."""
        self._in_flight += 1
        self._idle.clear()
        self.stats.on_arrival(started=True)
        rendered = self._rendered
        if not rendered:
            rendered.extend(reversed(self._factory.render(RENDER_BATCH, self._client.host_header)))
        request = rendered.pop()
        intended = arrival.intended
        started_ns = time.time_ns()
        lag = self.clock.now() - intended
        self.stats.on_start(lag)
        bucket = self.series.bucket(intended)
        Series.started_in(bucket, lag)
        self._client.send(request.payload, (intended, bucket, request, started_ns), self._done)

    def _miss(self, arrival: Arrival) -> None:
        if self.loop.missed == 1:
            log.warning(
                "loadgen: %d requests in flight (the cap): arrivals are being counted as missed",
                self.config.max_in_flight,
            )
        self.stats.on_arrival(started=False)
        self.series.missed(arrival.intended)

    def _done(
        self,
        job: tuple[float, Any, Rendered, int],
        status: int | None,
        length: int,
        error: BaseException | None,
        ended_ns: int,
    ) -> None:
        """One request ended (called from the event loop): record what became of it."""
        try:
            self._finish(*job, status, error, length, ended_ns)
        except Exception:  # a bug here must not leave the request "in flight" and the drain waiting forever
            log.exception("loadgen: recording %s failed", job[2].reaction_id.decode())
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    def _finish(
        self, intended: float, bucket: Any, request: Rendered, started_ns: int, status: int | None,
        error: BaseException | None, length: int, ended_ns: int,
    ) -> None:  # fmt: skip
        intended_ns = self.clock.unix_nanos(intended)
        outcome = Outcome.ACK if status is not None and 200 <= status < 300 else classify(status, error)
        latency = (ended_ns - intended_ns) / 1e9
        self.counts[outcome] += 1
        self.stats.on_response(outcome, status, latency)
        Series.completed_in(bucket, outcome, latency)
        text = None if outcome is Outcome.ACK else describe(error) or f"HTTP {status}"
        log_ = self.outcomes
        log_.add_packed(
            RECORD.pack(
                request.reaction_id, intended_ns, started_ns, ended_ns, request.post, status or 0,
                log_.error_ref(text), OUTCOME_CODES[outcome], KIND_OUTCOME,
            )
        )  # fmt: skip
        self._report.add(outcome, text, latency, length, request.reaction_id.decode(), started_ns / 1e9)
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    def _flush_periodically(self) -> None:
        while not self._flushing_stopped.wait(FLUSH_INTERVAL_SECONDS):
            self.flush()
            self.gc.collect_young()

    def flush(self) -> None:
        """Write what the last second added. The files are written from the hub's thread pool: a
        file operation that waits for the disk (an `openat` of the series file took 46 ms under
        strace while Kafka and Prometheus wrote) then holds this greenlet only, never the schedule.
        One flush at a time, so batches reach the files in order (an error text before its use)."""
        with self._flush_lock:
            self.outcomes.flush(self._in_thread)
            self.series.write(series_path(self.config.outcomes_dir, self.config.worker), self._in_thread)
            self._report.flush()

    def _in_thread(self, work: Callable[[], object]) -> None:
        self._hub.threadpool.apply(work)

    def abort(self, grace: float = ABORT_GRACE_SECONDS) -> None:
        """Stop now: requests still in flight are recorded as unknown (aborted)."""
        if self._client.in_flight:
            log.info("loadgen: aborting %d requests in flight", self._client.in_flight)
            self._client.cancel_all(Aborted("load test stopped"))
        self._idle.wait(grace)
        self.close()

    def close(self) -> None:
        """Flush, close the files and write the summary. A second caller (the stop's handler while the
        driving greenlet closes) waits for the first: its flush yields to the thread pool, and a Locust
        worker told to quit exits once its stop handler returns, which would cut the summary off."""
        if self._closing is not None:
            self._closing.wait()
            return
        self._closing = Event()
        try:
            self._close()
        finally:
            self._closing.set()

    def _close(self) -> None:
        # The client first: a request still in flight (the grace of abort() ran out) ends now, as
        # aborted, and is recorded by the flush below instead of after the file is closed.
        self._client.cancel_all(Aborted("load test stopped"))
        self._client.close()
        self.flush()
        self.outcomes.close()
        summary = {
            **self.config.summary,
            "worker": self.config.worker,
            "completed_schedule": self.loop.finished,
            "intended": self.loop.intended,
            "started": self.loop.started,
            "missed": self.loop.missed,
            "recorded": self.outcomes.written,
            **self.gc.summary(),
            **{str(o): n for o, n in self.counts.items()},
        }
        path = summary_path(self.config.outcomes_dir, self.config.worker)
        path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
