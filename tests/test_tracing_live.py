"""Traces on the real stack: one connected trace per reaction in each pipeline, read from Jaeger.

Figures (completeness, spans per reaction, hops, CPU per 1,000 reactions with tracing on and off)
are printed as JSON lines starting with "TRACING " (run with -s to see them).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chaos.toxiproxy import Toxic
from dashboards import queries
from dashboards.grafana.export import dashboard_dicts
from facts import topology
from harness import kafka_admin, traces
from harness.stack import Tracing
from tests import stackclient as sc

pytestmark = pytest.mark.stack

N = 1000
MACHINE = "2 vCPU VM"


def wait_drained(timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    left = kafka_admin.backlog()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = kafka_admin.backlog()
    return left


def report(kind: str, **figures: Any) -> None:
    print("TRACING", json.dumps({"kind": kind, **figures}, default=str))


@pytest.fixture
def on(stack: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The stack with the requested pipeline, tracing on at ratio 1, a clean sink, healthy links."""
    stack.toxiproxy.reset()
    if stack.tracing != Tracing():
        stack.use_tracing(Tracing())
    if stack.pipeline != request.param:
        stack.use_pipeline(request.param)
    wait_drained()
    sc.sink_reset()
    yield stack
    stack.toxiproxy.reset()
    if stack.tracing != Tracing():
        stack.use_tracing(Tracing())


def post_and_deliver(n: int, concurrency: int = 32) -> tuple[list[sc.Answer], set[str]]:
    answers = sc.post_reactions(n, concurrency=concurrency)
    ok = [a for a in answers if 200 <= a.status < 300]
    assert wait_drained() == 0
    sc.wait_for_unique(len(ok))
    return answers, set(sc.sink_deliveries())


def reaction_traces(reaction_id: str, since: float, wait: float = 20.0) -> list[traces.Trace]:
    """The reaction's traces in Jaeger since `since` (unix seconds), read until they connect the
    request to the push or `wait` seconds pass (spans arrive a batch interval after they end)."""
    query = traces.JaegerQuery()
    deadline = time.monotonic() + wait
    found: list[traces.Trace] = []
    while time.monotonic() < deadline:
        window = (int(since * 1e6), int((time.time() + 60) * 1e6))
        found = query.find("reaction", *window, tags={"reaction.id": reaction_id})
        if found and traces.follow(reaction_id, found).connected:
            break
        time.sleep(0.5)
    return found


@pytest.mark.parametrize("on", ["sync", "sync-resilient", "async"], indirect=True)
def test_one_reaction_is_one_connected_trace_in_jaegers_api(on: Any) -> None:
    (answer,), delivered = post_and_deliver(1)
    assert answer.reaction_id in delivered
    found = reaction_traces(answer.reaction_id, since=0.0)
    assert len(found) == 1, f"{len(found)} traces for one reaction"
    followed = traces.follow(answer.reaction_id, found)
    assert followed.connected and followed.first_push_connected, followed
    services = {s.service for s in found[0].spans}
    assert services == {"reaction", "notification", "pushsink"}
    kinds = Counter((s.service, s.kind) for s in found[0].spans)
    if on.pipeline == "async":
        # The Kafka hand-off: a producer span in the reaction service, the consumer's process span a
        # child of it (same trace), not a link.
        producer = next(s for s in found[0].spans if s.kind == "producer")
        consumers = [s for s in found[0].spans if s.kind == "consumer"]
        assert [s.operation for s in consumers] == ["process reactions"]
        assert all(s.parent_id == producer.span_id and not s.links for s in consumers)
        assert producer.operation == "send reactions" and producer.tags["messaging.system"] == "kafka"
    else:
        assert kinds[("reaction", "client")] == 1 and kinds[("notification", "server")] >= 1
        rpc = next(s for s in found[0].spans if s.kind == "client" and s.service == "reaction")
        assert rpc.operation.endswith("Notification/Notify") and not rpc.operation.startswith("/")
        assert rpc.tags["rpc.system"] == "grpc" and rpc.tags["reaction.id"] == answer.reaction_id
    report("one", pipeline=on.pipeline, spans=len(found[0].spans), hops=followed.hops)


# The latency histograms whose observations carry the trace id of the reaction they timed.
EXEMPLAR_HISTOGRAMS = (
    "reaction_request_duration_seconds",
    "reaction_transport_send_duration_seconds",
    "notification_delivery_duration_seconds",
    "pushsink_end_to_end_latency_seconds",
)


def exemplar_trace_ids(expr: str, start: float, end: float) -> set[int]:
    """Trace ids (as numbers: Jaeger drops leading zeros) of the exemplars Prometheus stored for the
    series `expr` selects, timestamped in [start, end] (/api/v1/query_exemplars, as Grafana asks)."""
    data = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"}).encode()
    url = topology.url(topology.PROMETHEUS_PORT, "/api/v1/query_exemplars")
    with urllib.request.urlopen(url, data=data, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return {int(e["labels"]["trace_id"], 16) for series in body["data"] for e in series["exemplars"]}


def scraped_exemplars(expr: str, start: float, timeout: float = 20.0) -> set[int]:
    """Waits for Prometheus (1 s scrapes) to have an exemplar of `expr` since `start`."""
    deadline = time.monotonic() + timeout
    while not (found := exemplar_trace_ids(expr, start, time.time() + 1)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


@pytest.mark.parametrize("on", ["sync", "async"], indirect=True)
def test_latency_exemplars_lead_from_prometheus_to_the_reactions_trace_in_jaeger(on: Any) -> None:
    start = time.time()
    (answer,), delivered = post_and_deliver(1)
    assert answer.reaction_id in delivered
    found = reaction_traces(answer.reaction_id, since=start)
    assert len(found) == 1, f"{len(found)} traces for one reaction"
    reaction_trace = int(found[0].trace_id, 16)

    # The only reaction since `start`: every latency histogram's new exemplars are its trace.
    for histogram in EXEMPLAR_HISTOGRAMS:
        trace_ids = scraped_exemplars(f'{histogram}_bucket{{pipeline="{on.pipeline}"}}', start)
        assert trace_ids == {reaction_trace}, histogram
    # What Grafana's link asks Jaeger for: that trace, by the exemplar's id, with every service's spans.
    (linked,) = traces.JaegerQuery().traces([format(reaction_trace, "032x")])
    assert int(linked.trace_id, 16) == reaction_trace
    assert {s.service for s in linked.spans} == {"reaction", "notification", "pushsink"}

    # The dashboards' exemplar queries, as Grafana runs them for this pipeline, find it too.
    exprs = {
        queries.substitute(t["expr"], {"pipeline": on.pipeline, "scenario": queries.ALL_SCENARIOS, "datasource": ""})
        for d in dashboard_dicts()
        if on.pipeline in queries.pipeline_values(d)
        for p in d["panels"]
        for t in p.get("targets", [])
        if t.get("exemplar")
    }
    assert len(exprs) == 4, exprs  # API and end-to-end percentiles, transport send, push delivery
    for expr in sorted(exprs):
        assert scraped_exemplars(expr, start) == {reaction_trace}, expr


@pytest.mark.parametrize("on", ["sync", "sync-resilient", "async"], indirect=True)
def test_a_thousand_reactions_all_have_connected_traces(on: Any) -> None:
    start = time.time() - 1
    # 16 in flight: the point is completeness, not capacity (sync-resilient's 300 ms attempt timeout
    # trips its breaker when the two cores are shared with other work).
    answers, delivered = post_and_deliver(N, concurrency=16)
    assert Counter(a.status for a in answers) == {202 if on.pipeline == "async" else 200: N}
    assert delivered == {a.reaction_id for a in answers}
    summary = traces.measure(
        [a.reaction_id for a in answers], [(start, time.time() + 60)], delivered=delivered, pipeline=on.pipeline
    )
    report("thousand", **summary.model_dump())
    assert summary.completeness == 1.0, summary.unconnected
    assert summary.first_push_connected == N
    assert summary.traces_per_reaction.max == 1  # one trace to open per reaction
    expected_hops = {"handler", "produce", "broker_wait", "delivery"} if on.pipeline == "async" else {
        "handler", "grpc_call", "delivery"}  # fmt: skip
    assert set(summary.hops) == expected_hops
    assert all(h.count == N for h in summary.hops.values())


@pytest.mark.parametrize("on", ["sync", "async"], indirect=True)
def test_a_share_of_reactions_is_traced_whole_and_the_rest_not_at_all(on: Any) -> None:
    """At 10 %, the reaction API draws which reactions are traced: about one in ten has its whole
    trace, the others none, and no service starts a trace of its own (a poll, a push, a call)."""
    n = 600
    on.use_tracing(Tracing(sample_ratio=0.1))
    start = time.time() - 1
    answers, delivered = post_and_deliver(n, concurrency=16)
    assert delivered == {a.reaction_id for a in answers if 200 <= a.status < 300}
    summary = traces.measure(
        [a.reaction_id for a in answers], [(start, time.time() + 60)], delivered=delivered, pipeline=on.pipeline
    )
    found = traces.JaegerQuery().window(start, time.time() + 60)
    report("share", pipeline=on.pipeline, traces=len(found), traced=summary.traced, connected=summary.connected)
    # Binomial(600, 0.1): 60 +- 7; drawn twice (0.1 x 0.1) it would be 6, every reaction 600.
    assert 30 <= len(found) <= 90
    roots = [[s for s in t.spans if s.parent_id is None] for t in found.values()]
    assert all([(r.service, r.kind) for r in rs] == [("reaction", "server")] for rs in roots), roots[:3]
    assert summary.connected == summary.traced == len(found)


def kill_with_uncommitted_deliveries(stack: Any, committed_before: int, tries: int = 50) -> None:
    """SIGKILL the notification service at a moment when the sink holds deliveries whose offsets the
    group has not committed: frozen (SIGSTOP), the broker's committed offsets and the sink's count
    say whether a kill now must redeliver; if not (between two batches), let it run a little longer."""
    for _ in range(tries):
        stack.pause("notification")
        _, committed = kafka_admin.offsets()
        if sc.sink_stats()["unique"] > committed - committed_before:
            stack.kill("notification")
            return
        stack.resume("notification")
        time.sleep(0.05)
    raise AssertionError(f"in {tries} looks the consumer never had delivered records left to commit")


@pytest.mark.parametrize("on", ["async"], indirect=True)
def test_killing_the_consumer_mid_load_keeps_redeliveries_in_the_reactions_trace(on: Any) -> None:
    """kill -9 of the notification service while it consumes: the records it had fetched but not
    committed come again to its successor, carrying the same trace context in their headers."""
    n = 3000
    start = time.time() - 1
    answers: list[sc.Answer] = []
    _, committed_before = kafka_admin.offsets()
    # A slower phone keeps deliveries in flight, so a batch spends most of its time in them.
    on.toxiproxy.add_toxic(Toxic(link="push", type="latency", attributes={"latency": 30}))
    try:
        poster = threading.Thread(target=lambda: answers.extend(sc.post_reactions(n, concurrency=32)))
        poster.start()
        deadline = time.monotonic() + 60
        while sc.sink_stats()["unique"] < n // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_with_uncommitted_deliveries(on, committed_before)
        killed_at = time.time()
        on.restart("notification")
        while not on.ready("notification"):
            time.sleep(0.2)
        poster.join()
    finally:
        on.toxiproxy.reset()
    assert Counter(a.status for a in answers) == {202: n}
    assert wait_drained(180) == 0
    sc.wait_for_unique(n, timeout=180)
    deliveries = sc.sink_deliveries()
    assert set(deliveries) == {a.reaction_id for a in answers}, "reactions lost"
    redelivered = {rid for rid, d in deliveries.items() if d["count"] > 1}

    summary = traces.measure(
        [a.reaction_id for a in answers], [(start, time.time() + 60)], delivered=set(deliveries), pipeline="async"
    )
    # The redelivered reactions, one by one.
    found = traces.JaegerQuery().window(start, time.time() + 60)
    by_reaction: dict[str, list[traces.Trace]] = {}
    for t in found.values():
        for rid in {s.reaction_id for s in t.spans if s.reaction_id} & redelivered:
            by_reaction.setdefault(rid, []).append(t)
    followed = [traces.follow(rid, by_reaction.get(rid, [])) for rid in sorted(redelivered)]
    report(
        "kill",
        killed_at=killed_at,
        redelivered=len(redelivered),
        redelivered_traces=Counter(f.traces for f in followed),
        redelivered_entries=Counter(f.entries for f in followed),
        redelivered_connected=sum(f.connected for f in followed),
        redelivered_first_push_connected=sum(f.first_push_connected for f in followed),
        redelivered_unconnected=Counter(f.why for f in followed if not f.connected),
        summary=summary.model_dump(),
    )
    assert redelivered, "the kill redelivered nothing: it did not hit the consumer mid-batch"
    # A redelivery is never a new trace: one trace per reaction, the second delivery inside it.
    assert summary.traces_per_reaction.max == 1
    assert all(f.traces == 1 for f in followed)
    # Its successor's delivery connects (its spans were exported); the killed process's own spans of
    # them (its process span, the first push) were still in its export queue and died with it.
    assert all(f.connected for f in followed), [f for f in followed if not f.connected][:3]
    # The other unconnected reactions were delivered once, by the killed process, within its last
    # export interval (0.5 s): the push sink's span is there, its parent never reached Jaeger.
    per_reaction: dict[str, list[traces.Trace]] = {}
    for t in found.values():
        for rid in {s.reaction_id for s in t.spans if s.reaction_id}:
            per_reaction.setdefault(rid, []).append(t)
    lost = [rid for rid in deliveries if not traces.follow(rid, per_reaction.get(rid, [])).connected]
    pushed_at = [deliveries[rid]["first_delivery_unix_nanos"] / 1e9 for rid in lost]
    report("kill-lost", lost=len(lost), earliest_before_kill=max((killed_at - t for t in pushed_at), default=None))
    assert len(lost) == summary.delivered - summary.connected
    assert all(t <= killed_at + 0.1 for t in pushed_at), "a reaction delivered after the kill has a broken trace"
    assert all("parent span is missing" in why for why in summary.unconnected), summary.unconnected


def _load(n: int) -> int:
    sc.sink_reset()
    answers, delivered = post_and_deliver(n, concurrency=16)
    assert len(delivered) == n, Counter(a.status for a in answers)
    return n


@pytest.mark.parametrize("on", ["sync", "async"], indirect=True)
def test_tracing_cpu_per_thousand_reactions_on_and_off(on: Any) -> None:
    """CPU seconds of the three services (and Jaeger) per 1,000 reactions, tracing off then on for
    every reaction. (The shares between, 0.1 first, are `bench capacity`'s tracing costs, asserted
    in test_capacity_live.py.)"""
    n = 3000
    results = {}
    for enabled in (False, True):
        on.use_tracing(Tracing(enabled=enabled, sample_ratio=1.0))
        _load(200)  # warm up: connections, caches and the consumer's assignment
        pids = {name: on.sup.running[name].pid for name in (*topology.SERVICES, "jaeger")}
        results[enabled] = traces.cpu_per_1000(pids, lambda: _load(n), tracing=enabled, sample_ratio=1.0)
    overhead = traces.TracingOverhead(pipeline=on.pipeline, machine=MACHINE, off=results[False], on=results[True])
    report("overhead", **overhead.model_dump(), services_ratio=overhead.services_ratio)
    assert results[False].by_process["jaeger"] < results[True].by_process["jaeger"]  # off sends it nothing
    assert overhead.services_ratio is not None and overhead.services_ratio > 1.0


def test_jaeger_serves_the_query_api_on_localhost(stack: Any) -> None:
    with urllib.request.urlopen(traces.JaegerQuery().base_url + "/api/services", timeout=10) as r:
        assert r.status == 200
