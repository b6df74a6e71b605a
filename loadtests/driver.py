"""One process' share of the open-loop schedule, sent with gevent greenlets over geventhttpclient.

The `OpenLoop` decides when each request starts; this module owns what happens to it: one greenlet
per request (spawned, never awaited by the loop), a total deadline, the outcome record, the
per-second series, the counters, and a report callback that feeds Locust's request event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.pool import Group
from locust.contrib.fasthttp import FastHttpSession

from loadtests.arrivals import Arrival, OpenLoop
from loadtests.counters import LoadStats
from loadtests.outcome import Outcome, OutcomeLog, OutcomeRecord, classify, describe, outcomes_path
from loadtests.reaction import REQUEST_NAME, Reaction, ReactionFactory
from loadtests.series import Series

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 1.0
ABORT_GRACE_SECONDS = 5.0


class Aborted(Exception):
    """The load test stopped before the request got an answer."""


class GeventClock:
    """Schedule time on the local monotonic clock, anchored once to the plan's Unix epoch.

    All workers share the Unix epoch (same host clock), so their schedules line up; pacing on the
    monotonic clock keeps a wall-clock step (NTP) from bunching or stretching arrivals.
    """

    def __init__(self, epoch_unix_nanos: int) -> None:
        self.epoch_unix_nanos = epoch_unix_nanos
        self._mono_epoch = time.monotonic() - (time.time_ns() - epoch_unix_nanos) / 1e9

    def now(self) -> float:
        return time.monotonic() - self._mono_epoch

    def sleep_until(self, deadline: float) -> None:
        # sleep(0) when already late still yields, so request greenlets run during a catch-up burst.
        gevent.sleep(max(0.0, deadline - self.now()))

    def unix_nanos(self, t: float) -> int:
        return self.epoch_unix_nanos + round(t * 1e9)


@dataclass(frozen=True)
class DriverConfig:
    schedule: Iterable[float]  # this share's intended start offsets, seconds
    epoch_unix_nanos: int
    duration: float
    share_rate: Callable[[float], float]  # this share's target rate at schedule time t
    max_in_flight: int
    request_timeout: float
    worker: int
    outcomes_dir: Path
    summary: dict[str, Any]  # run description copied into summary-w<worker>.json


@dataclass(frozen=True)
class Completion:
    """One finished request, as the report callback (Locust's request event) sees it."""

    reaction: Reaction
    outcome: Outcome
    status: int | None
    error: BaseException | None
    latency: float  # seconds from the intended start
    started_unix: float
    response_length: int
    url: str
    response: Any


class _SilentEvent:
    """FastHttpSession reports its own timing from the actual start; we report from the intended one."""

    def fire(self, **_kwargs: Any) -> None:
        pass


def make_session(host: str, request_timeout: float, max_in_flight: int) -> FastHttpSession:
    return FastHttpSession(
        base_url=host,
        request_event=_SilentEvent(),
        user=None,
        network_timeout=request_timeout,
        connection_timeout=request_timeout,
        max_retries=0,  # one attempt per reaction id: a retry would be a second, unrecorded send
        concurrency=max_in_flight,  # a connection per request in flight, so none queues for a socket
        insecure=True,
    )


class Driver:
    def __init__(
        self,
        session: FastHttpSession,
        factory: ReactionFactory,
        config: DriverConfig,
        stats: LoadStats,
        report: Callable[[Completion], None],
    ) -> None:
        self._session = session
        self._factory = factory
        self.config = config
        self.stats = stats
        self._report = report
        self.clock = GeventClock(config.epoch_unix_nanos)
        self.loop = OpenLoop(config.schedule, self.clock, config.max_in_flight)
        self.outcomes = OutcomeLog(outcomes_path(config.outcomes_dir, config.worker))
        self.series = Series(config.share_rate, config.duration, config.epoch_unix_nanos / 1e9)
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._requests = Group()
        self._in_flight = 0
        self.closed = False
        stats.in_flight_limit = config.max_in_flight  # one driver per process at a time

    def run(self, stopped: Callable[[], bool]) -> bool:
        """Follow the schedule, then wait for every started request. True if the schedule completed."""
        flusher = gevent.spawn(self._flush_periodically)
        try:
            self.loop.run(in_flight=self._current, start=self._start, miss=self._miss, stopped=stopped)
            # Drain: every request started gets its answer or hits its deadline.
            self._requests.join()
        finally:
            flusher.kill()
        return self.loop.finished

    def _current(self) -> int:
        return self._in_flight

    def _start(self, arrival: Arrival) -> None:
        self._in_flight += 1
        self.stats.on_arrival(started=True)
        self.series.arrival(arrival.intended, started=True)
        self._requests.spawn(self._send, arrival)

    def _miss(self, arrival: Arrival) -> None:
        if self.loop.missed == 1:
            log.warning(
                "loadgen: %d requests in flight (the cap): arrivals are being counted as missed",
                self.config.max_in_flight,
            )
        self.stats.on_arrival(started=False)
        self.series.arrival(arrival.intended, started=False)

    def _send(self, arrival: Arrival) -> None:
        reaction = self._factory.make()
        started_ns = time.time_ns()
        lag = self.clock.now() - arrival.intended
        self.stats.on_start(lag)
        self.series.lag(arrival.intended, lag)
        status: int | None = None
        error: BaseException | None = None
        response: Any = None
        length = 0
        deadline = gevent.Timeout(self.config.request_timeout)
        deadline.start()
        try:
            response = self._session.request("POST", reaction.path, json=reaction.body(), name=REQUEST_NAME)
            status = response.status_code or None
            error = getattr(response, "error", None)
            length = len(response.content or b"") if status else 0
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            error = exc
        except GreenletExit:
            self._finish(arrival, reaction, started_ns, None, Aborted("load test stopped"), None, 0)
            raise
        except Exception as exc:  # a client bug must not lose the id: record it as unknown
            log.exception("loadgen: unexpected error sending %s", reaction.reaction_id)
            error = exc
        finally:
            deadline.close()
        self._finish(arrival, reaction, started_ns, status, error, response, length)

    def _finish(
        self,
        arrival: Arrival,
        reaction: Reaction,
        started_ns: int,
        status: int | None,
        error: BaseException | None,
        response: Any,
        length: int,
    ) -> None:
        ended_ns = time.time_ns()
        intended_ns = self.clock.unix_nanos(arrival.intended)
        outcome = classify(status, error)
        latency = (ended_ns - intended_ns) / 1e9
        self._in_flight -= 1
        self.counts[outcome] += 1
        self.stats.on_response(outcome, status, latency)
        self.series.completed(arrival.intended, outcome, latency)
        self.outcomes.add(
            OutcomeRecord(
                reaction_id=reaction.reaction_id,
                post_id=reaction.post_id,
                worker=self.config.worker,
                intended_unix_nanos=intended_ns,
                started_unix_nanos=started_ns,
                ended_unix_nanos=ended_ns,
                outcome=outcome,
                status=status,
                error=None if outcome is Outcome.ACK else describe(error) or f"HTTP {status}",
            )
        )
        self._report(
            Completion(
                reaction=reaction,
                outcome=outcome,
                status=status,
                error=error,
                latency=latency,
                started_unix=started_ns / 1e9,
                response_length=length,
                url=f"{self._session.base_url}{reaction.path}",
                response=response,
            )
        )

    def _flush_periodically(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_SECONDS)
            self.flush()

    def flush(self) -> None:
        self.outcomes.flush()
        self.series.write(self.config.outcomes_dir / f"series-w{self.config.worker}.jsonl")

    def abort(self, grace: float = ABORT_GRACE_SECONDS) -> None:
        """Stop now: requests still in flight are recorded as unknown (aborted)."""
        if self._requests:
            log.info("loadgen: aborting %d requests in flight", len(self._requests))
        self._requests.kill(block=True, timeout=grace)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
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
            **{str(o): n for o, n in self.counts.items()},
        }
        path = self.config.outcomes_dir / f"summary-w{self.config.worker}.json"
        path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
