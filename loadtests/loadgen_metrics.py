"""Prometheus exposition of the load generator, for the single process or the Locust master.

A custom collector renders a `LoadStats` computed at scrape time, so the same code serves the
live counters of a single process and the sum of the snapshots that workers report to the master.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from loadtests.counters import LoadStats

# The harness reads it to time its fault timeline from the load's own time zero.
RUN_START_METRIC = "loadgen_run_start_time_seconds"


@dataclass(frozen=True)
class RunInfo:
    run_id: str = ""
    profile: str = ""
    arrivals: str = ""
    epoch_unix_seconds: float = 0.0  # the plan's time zero; 0 until planned


class LoadgenCollector:
    def __init__(
        self,
        stats: Callable[[], LoadStats],
        target_rate: Callable[[], float],
        workers: Callable[[], int],
        info: Callable[[], RunInfo],
    ) -> None:
        self._stats = stats
        self._target_rate = target_rate
        self._workers = workers
        self._info = info

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        info = self._info()
        run = GaugeMetricFamily(
            "loadgen_run_info", "The current load run (1 while known).", labels=["run_id", "profile", "arrivals"]
        )
        if info.run_id:
            run.add_metric([info.run_id, info.profile, info.arrivals], 1)
        yield run
        yield GaugeMetricFamily(
            RUN_START_METRIC,
            "Unix time of the current run's time zero (its schedule's origin); 0 until planned.",
            value=info.epoch_unix_seconds,
        )
        yield GaugeMetricFamily(
            "loadgen_target_requests_per_second",
            "Arrival rate the load profile offers now, all workers together.",
            value=self._target_rate(),
        )
        yield GaugeMetricFamily("loadgen_workers", "Processes generating load.", value=self._workers())
        yield CounterMetricFamily(
            "loadgen_arrivals", "Arrivals the schedule reached (started plus missed).", value=s.arrivals
        )
        yield CounterMetricFamily(
            "loadgen_requests_started", "Requests started; its rate is the achieved rate.", value=s.started
        )
        yield CounterMetricFamily(
            "loadgen_missed_arrivals", "Arrivals not started because the in-flight cap was reached.", value=s.missed
        )
        yield GaugeMetricFamily("loadgen_requests_in_flight", "Requests awaiting an answer.", value=s.in_flight)
        yield GaugeMetricFamily(
            "loadgen_requests_in_flight_limit", "Cap on requests in flight, all workers.", value=s.in_flight_limit
        )
        responses = CounterMetricFamily(
            "loadgen_responses",
            "Finished requests by outcome (ack, failed, unknown) and HTTP status (none: no response).",
            labels=["outcome", "status"],
        )
        for outcome, by_status in sorted(s.responses.items()):
            for status, n in sorted(by_status.items()):
                responses.add_metric([outcome, status], n)
        yield responses
        latency = HistogramMetricFamily(
            "loadgen_request_latency_seconds",
            "Time from the intended start (not the actual one: coordinated omission) to the answer.",
            labels=["outcome"],
        )
        for outcome, hist in sorted(s.latency.items()):
            latency.add_metric([outcome], hist.cumulative(), hist.total)
        yield latency
        lag = HistogramMetricFamily(
            "loadgen_schedule_lag_seconds", "Delay between an arrival's intended and actual start."
        )
        lag.add_metric([], s.lag.cumulative(), s.lag.total)
        yield lag


def registry_for(collector: LoadgenCollector) -> CollectorRegistry:
    # A registry of our own: only load-generator series, no process/GC noise from the default one.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def serve(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Serve /metrics from gevent's own server: no threads inside Locust's gevent hub."""
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None)
    server.start()
    return server
