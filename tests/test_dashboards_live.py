"""Every dashboard query, run against the real stack's Prometheus after a real load with a fault.

For each pipeline: switch the reaction service to it, run Locust (a short steady profile) and a
one-fault timeline through the chaos engine, serving chaos_fault_active / chaos_cell_active on
topology.CHAOS_METRICS_PORT as `bench run` does. The moment just before the fault is undone is
that pipeline's query time: load, fault and cell series all exist then. Afterwards every query
of every dashboard covering the pipeline runs at that time (the API's `time` parameter), so it
does not matter that Locust's and the harness' series went stale since. A query fails the test
when Prometheus rejects it, or when it is empty and not declared below as allowed to be.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from chaos.engine import ChaosMetrics, Timeline
from chaos.scenario import ToxicFault
from dashboards import queries
from facts import topology
from harness.loadgen import LoadRun, steady

pytestmark = pytest.mark.stack

PROM = topology.url(topology.PROMETHEUS_PORT)
SCENARIO = "dashboards-live"
LOAD_SECONDS = 12.0
PROFILE = steady("dashboards-live", 30, LOAD_SECONDS, "short steady load")
# Errors for the sync pipelines (1.5 s of latency on the gRPC hop is past the 1 s deadline, and
# opens sync-resilient's breaker); a slow phone for async (its API never waits for the push).
FAULTS: dict[str, tuple[str, int]] = {  # pipeline -> (link, latency in ms)
    "sync": ("notification", 1500),
    "sync-resilient": ("notification", 1500),
    "async": ("push", 300),
}
# Queried at the fault's end: series born with the fault (the first 504 comes a 1 s deadline
# after it starts) then have several samples in the rules' 10 s windows.
FAULT_AT, FAULT_SECONDS = 2.0, 6.0
ALL = frozenset(topology.PIPELINES)
SYNC = frozenset({"sync", "sync-resilient"})

# (pattern in the query as written, pipelines for which an empty result is fine, why).
MAY_BE_EMPTY: list[tuple[str, frozenset[str], str]] = [
    (r'code!~"2\.\."', frozenset({"async"}), "async answers 202: its fault slows the push, not Kafka"),
    (r"reaction_transport_errors", frozenset({"async"}), "Kafka keeps acknowledging under this fault"),
    (r"pipeline:notification_consumer_lag_messages", SYNC, "Kafka series are labelled pipeline=async"),
    (r"pipeline:notification_dead_lettered:", SYNC, "Kafka series are labelled pipeline=async"),
    (r"pipeline_reason:notification_dead_lettered:", ALL, "nothing fails long enough to be dead-lettered"),
    (r"increase\(notification_dead_lettered_total", ALL, "nothing fails long enough to be dead-lettered"),
    (r"notification_delivery_retries", ALL, "the push never fails under these faults: no retries"),
]
# Series that must not just exist but show the load (checks the rules' pipeline attribution).
MUST_BE_POSITIVE = [
    "pipeline:reaction_requests:rate10s",
    "pipeline:loadgen_requests_started:rate10s",
    "pipeline:pushsink_first_deliveries:rate10s",
]


def may_be_empty(q: queries.Query) -> bool:
    return any(q.pipeline in pipelines and re.search(p, q.template) for p, pipelines, _ in MAY_BE_EMPTY)


def prom_query(expr: str, at: float) -> list[dict[str, Any]]:
    """An instant query at `at` (unix seconds); a rejected query raises with Prometheus' reason."""
    data = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}).encode()
    try:
        with urllib.request.urlopen(f"{PROM}/api/v1/query", data=data, timeout=10) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:  # 400/422: bad expression or execution error
        body = json.loads(e.read())
    if body.get("status") != "success":
        raise AssertionError(f"{body.get('errorType')}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def poll(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.25)


def loadgen_started() -> bool:
    try:
        with urllib.request.urlopen(topology.url(topology.LOADGEN_METRICS_PORT, "/metrics"), timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return False
    m = re.search(r"^loadgen_requests_started_total (\S+)$", text, re.MULTILINE)
    return bool(m and float(m.group(1)) > 0)


@dataclass
class Cell:
    pipeline: str
    query_time: float  # unix seconds: load running, fault active


def run_cell(stack: Any, pipeline: str, metrics: ChaosMetrics, out: Path) -> Cell:
    stack.toxiproxy.reset()
    if stack.pipeline != pipeline:
        stack.use_pipeline(pipeline)
    link, latency_ms = FAULTS[pipeline]
    fault = ToxicFault(
        kind="toxic",
        at=FAULT_AT,
        duration=FAULT_SECONDS,
        link=link,
        toxic="latency",
        attributes={"latency": latency_ms},
    )
    timeline = Timeline([fault], LOAD_SECONDS, stack.toxiproxy, stack, metrics=metrics)
    load = LoadRun.in_folder(out, PROFILE, request_timeout=5.0)
    proc = load.start()
    cell = metrics.cell_active.labels(pipeline, SCENARIO)
    query_time = None
    try:
        # The fault timeline starts with the load itself, not with Locust's start-up.
        poll(lambda: loadgen_started() or proc.poll() is not None, 60, "Locust to start sending")
        assert proc.poll() is None, f"Locust exited early: {load.log.read_text()[-2000:]}"
        cell.set(1)
        timeline.start()
        while proc.poll() is None and timeline.elapsed() < LOAD_SECONDS + 30:
            timeline.tick()
            if timeline.active():
                query_time = time.time()
            time.sleep(0.1)
        proc.wait(timeout=30)
    finally:
        cell.set(0)
        timeline.undo_all()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert all(w.error is None for w in timeline.windows), [w.error for w in timeline.windows]
    assert query_time is not None, "the fault was never active"
    return Cell(pipeline, query_time)


@pytest.fixture(scope="module")
def cells(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cell]:
    registry = CollectorRegistry()
    metrics = ChaosMetrics(registry)
    server, thread = start_http_server(topology.CHAOS_METRICS_PORT, addr=topology.HOST, registry=registry)
    out = tmp_path_factory.mktemp("dashboards-live")
    try:
        done = {p: run_cell(stack, p, metrics, out / p) for p in topology.PIPELINES}
        # Prometheus scrapes every second: wait until it has evaluated rules past the last cell.
        last = max(c.query_time for c in done.values())
        poll(lambda: time.time() > last + 3 and prom_query("pipeline:reaction_transport_ready:count", time.time()),
             30, "Prometheus to catch up")  # fmt: skip
        return done
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_every_dashboard_query_runs_against_the_real_prometheus(cells: dict[str, Cell]) -> None:
    all_queries = queries.all_queries()
    assert {q.pipeline for q in all_queries} == set(topology.PIPELINES)
    failures: list[str] = []
    for q in all_queries:
        at = cells[q.pipeline].query_time
        try:
            result = prom_query(q.expr, at)
            if not result and not may_be_empty(q):
                # Rule evaluation can trail the scrape by a tick: give it a few seconds.
                poll(partial(prom_query, q.expr, at), 5, "a result")
        except AssertionError as e:
            failures.append(f"{q.where}: {e}\n    {q.expr}")
    assert not failures, f"{len(failures)} of {len(all_queries)} queries failed:\n" + "\n".join(failures)
    # Every declaration still matches a query (a renamed panel query must not leave one behind).
    for pattern, _, why in MAY_BE_EMPTY:
        assert any(re.search(pattern, q.template) for q in all_queries), f"stale declaration {pattern!r} ({why})"


@pytest.mark.parametrize("pipeline", topology.PIPELINES)
def test_the_load_is_attributed_to_its_pipeline(cells: dict[str, Cell], pipeline: str) -> None:
    at = cells[pipeline].query_time
    for name in MUST_BE_POSITIVE:
        result = prom_query(f'{name}{{pipeline="{pipeline}"}}', at)
        assert result and float(result[0]["value"][1]) > 0, (name, result)
    # The load generator's series carry no pipeline: the rules must give them the current one only.
    others = prom_query(f'pipeline:loadgen_requests_started:rate10s{{pipeline!="{pipeline}"}}', at)
    assert not others, others
    faults = prom_query("chaos_fault_active == 1", at)
    assert [r["metric"]["target"] for r in faults] == [f"link:{FAULTS[pipeline][0]}"]


def test_the_scenario_variable_finds_the_cells(cells: dict[str, Cell]) -> None:
    # What Grafana's label_values(chaos_cell_active, scenario) asks for, over the test's range.
    times = [c.query_time for c in cells.values()]
    params = {"match[]": "chaos_cell_active", "start": f"{min(times) - 60:.0f}", "end": f"{max(times) + 5:.0f}"}
    url = f"{PROM}/api/v1/label/scenario/values?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success" and SCENARIO in body["data"], body
