"""What Locust's own statistics (web UI, --csv, the master's totals) learn of the open loop's requests.

Locust's per-request path (`events.request.fire` -> `RequestStats.log_request` / `log_error`, for
the entry and the total) costs more than this generator's whole request otherwise. So by default
the driver hands each completion to `LocustReport.add` (an append and, for a failure, a counter)
and `flush()` (every second, and before the driver says it drained) merges the batch into Locust's
entries with `StatsEntry.extend`: the very merge Locust's master applies to its workers' reports.
Request and failure counts, response-time percentiles (Locust's own rounding), content length and
the failures table come out as if each request had been logged; the requests-per-second series is
per flush (one-second buckets, what the UI shows anyway). In distributed mode the merged entries
travel to the master in Locust's normal worker report.

`--request-events` restores one `events.request` per request (latency from the intended start, as
before), for a locustfile with request listeners of its own, at the old cost.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import cast

from locust import stats as locust_stats
from locust.env import Environment
from locust.stats import StatsEntry, StatsError

from loadtests.outcome import Outcome
from loadtests.reaction import ENDPOINTS, REACTIONS, Endpoint


class RequestFailed(Exception):
    """A definite failure (HTTP error status or refused connection), as Locust's failure table shows it."""


class OutcomeUnknown(Exception):
    """No answer (timeout, reset, aborted): the reaction may or may not have been processed."""


class LocustReport:
    def __init__(
        self, env: Environment, url: str, per_request: bool = False, endpoint: Endpoint = ENDPOINTS[REACTIONS]
    ) -> None:
        self._env = env
        self._url = url
        self._method, self._name = endpoint.method, endpoint.stats_name
        self.per_request = per_request
        self._latencies_ms: list[float] = []
        self._length = 0
        self._failures: Counter[tuple[Outcome, str]] = Counter()
        self._exceptions: dict[tuple[Outcome, str], Exception] = {}  # one instance per distinct failure

    def _exception(self, outcome: Outcome, text: str) -> Exception:
        key = (outcome, text)
        exc = self._exceptions.get(key)
        if exc is None:
            exc = self._exceptions[key] = (RequestFailed if outcome is Outcome.FAILED else OutcomeUnknown)(text)
        return exc

    def add(
        self,
        outcome: Outcome,
        error_text: str | None,
        latency: float,
        length: int,
        reaction_id: str,
        started_unix: float,
    ) -> None:
        """One finished request; `latency` in seconds from its intended start."""
        if self.per_request:
            self._env.events.request.fire(
                request_type=self._method,
                name=self._name,
                response_time=latency * 1000.0,
                response_length=length,
                exception=None if outcome is Outcome.ACK else self._exception(outcome, error_text or "no response"),
                context={"reaction_id": reaction_id, "outcome": str(outcome)},
                url=self._url,
                start_time=started_unix,
                response=None,
            )
            return
        self._latencies_ms.append(latency * 1000.0)
        self._length += length
        if outcome is not Outcome.ACK:
            self._failures[(outcome, error_text or "no response")] += 1

    def flush(self) -> None:
        """Merge the requests added since the last flush into Locust's stats."""
        latencies = self._latencies_ms
        if not latencies:
            return
        self._latencies_ms = []
        failures, self._failures = self._failures, Counter()
        length, self._length = self._length, 0
        stats = self._env.stats
        now = time.time()
        second = int(now)
        failed = sum(failures.values())
        batch = StatsEntry(stats, self._name, self._method)
        batch.start_time = stats.total.start_time or now
        batch.num_requests = len(latencies)
        batch.num_failures = failed
        # Locust annotates response times as int yet logs the float milliseconds its clients measure.
        batch.total_response_time = cast(int, sum(latencies))
        batch.min_response_time = cast(int, min(latencies))
        batch.max_response_time = cast(int, max(latencies))
        # through the module, so a locustfile that replaces Locust's bucketing is followed
        batch.response_times = dict(Counter(map(locust_stats.bucket_response_time, latencies)))
        batch.num_reqs_per_sec = {second: len(latencies)}
        batch.num_fail_per_sec = {second: failed} if failed else {}
        batch.total_content_length = length
        batch.last_request_timestamp = now
        stats.get(self._name, self._method).extend(batch)
        stats.total.extend(batch)
        for (outcome, text), n in failures.items():
            exc = self._exception(outcome, text)
            key = StatsError.create_key(self._method, self._name, exc)
            entry = stats.errors.get(key)
            if entry is None:
                entry = stats.errors[key] = StatsError(self._method, self._name, exc)
            entry.occurrences += n
