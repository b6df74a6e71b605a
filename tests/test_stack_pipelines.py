"""Both pipelines on the real stack: delivery, metrics, link faults, bad input."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from facts import topology
from facts import toxiproxy as toxiproxy_facts
from harness import kafka_admin
from tests import stackclient as sc

pytestmark = pytest.mark.stack

N = 1000
# Generous bound for "answers within its deadline" (the sync deadline is ~1 s): a hung call would
# take the client's 30 s timeout, so this tells a fast failure from a hang even on a loaded machine.
FAST_FAILURE_S = 8.0


@pytest.fixture
def on(stack: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The stack with the requested pipeline, a clean sink and every link healthy."""
    pipeline = request.param
    stack.toxiproxy.reset()
    if stack.pipeline != pipeline:
        stack.use_pipeline(pipeline)
    wait_drained()
    sc.sink_reset()
    yield stack
    stack.toxiproxy.reset()


def wait_drained(timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    left = kafka_admin.backlog()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = kafka_admin.backlog()
    return left


@pytest.mark.parametrize("on", topology.PIPELINES, indirect=True)
def test_every_reaction_is_delivered_exactly_once(on: Any) -> None:
    answers = sc.post_reactions(N)
    codes = Counter(a.status for a in answers)
    expected = 202 if on.pipeline == "async" else 200
    assert codes == {expected: N}, codes
    assert wait_drained() == 0
    stats = sc.wait_for_unique(N)
    deliveries = sc.sink_deliveries()
    sent = {a.reaction_id for a in answers}
    assert set(deliveries) == sent, "delivered ids differ from the ids sent"
    assert stats["unique"] == N
    assert all(d["count"] == 1 for d in deliveries.values()), "some reaction delivered twice"
    # Prometheus scraped the service while it worked: the request counter is there for this pipeline.
    deadline = time.monotonic() + 15
    series: list[dict[str, Any]] = []
    while not series and time.monotonic() < deadline:
        time.sleep(1)
        series = sc.prom_query(f'sum(reaction_requests_total{{pipeline="{on.pipeline}"}})')
    assert series and float(series[0]["value"][1]) >= N


@pytest.mark.parametrize("on", ["sync", "sync-resilient"], indirect=True)
def test_sync_fails_fast_when_notification_is_unreachable(on: Any) -> None:
    on.toxiproxy.set_enabled(topology.PROXY_NOTIFICATION.name, False)
    answers = sc.post_reactions(40, concurrency=8)
    assert {a.status for a in answers} <= {503, 504}, Counter(a.status for a in answers)
    assert max(a.elapsed for a in answers) < FAST_FAILURE_S
    on.toxiproxy.set_enabled(topology.PROXY_NOTIFICATION.name, True)
    time.sleep(1)  # a resilient caller's breaker may still be open for a moment
    deadline = time.monotonic() + 30
    ok = sc.post_reactions(1)
    while ok[0].status != 200 and time.monotonic() < deadline:
        time.sleep(1)
        ok = sc.post_reactions(1)
    assert ok[0].status == 200, "the sync pipeline did not recover after the link came back"


@pytest.mark.parametrize("on", ["async"], indirect=True)
def test_async_accepts_while_notification_is_unreachable_then_drains(on: Any) -> None:
    # The notification service's only inbound link in the async pipeline is its Kafka consumer link.
    on.toxiproxy.set_enabled(topology.PROXY_NOTIFICATION.name, False)
    on.toxiproxy.set_enabled(topology.PROXY_KAFKA_CONSUME.name, False)
    answers = sc.post_reactions(300)
    assert Counter(a.status for a in answers) == {202: 300}
    time.sleep(3)
    assert sc.sink_stats()["unique"] == 0, "consumption went on with the consumer link down"
    assert kafka_admin.backlog() == 300
    on.toxiproxy.set_enabled(topology.PROXY_KAFKA_CONSUME.name, True)
    on.toxiproxy.set_enabled(topology.PROXY_NOTIFICATION.name, True)
    assert wait_drained() == 0
    stats = sc.wait_for_unique(300)
    assert set(sc.sink_deliveries()) == {a.reaction_id for a in answers}, "reactions lost"
    assert stats["unique"] == 300


@pytest.mark.parametrize("on", ["async"], indirect=True)
def test_async_answers_503_when_kafka_is_unreachable(on: Any) -> None:
    on.toxiproxy.set_enabled(topology.PROXY_KAFKA_PRODUCE.name, False)
    answers = sc.post_reactions(20, concurrency=10)
    assert {a.status for a in answers} == {503}, Counter(a.status for a in answers)
    assert max(a.elapsed for a in answers) < FAST_FAILURE_S


@pytest.mark.parametrize("on", ["sync"], indirect=True)
def test_sync_is_untouched_when_kafka_is_unreachable(on: Any) -> None:
    on.toxiproxy.set_enabled(topology.PROXY_KAFKA_PRODUCE.name, False)
    on.toxiproxy.set_enabled(topology.PROXY_KAFKA_CONSUME.name, False)
    answers = sc.post_reactions(100)
    assert Counter(a.status for a in answers) == {200: 100}
    assert sc.wait_for_unique(100)["unique"] == 100


def _post_raw(body: bytes, post_id: str = "p1", content_type: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(
        f"{sc.API}/v1/posts/{post_id}/reactions", data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


BAD_INPUTS = [
    pytest.param(b"{not json", None, id="malformed-json"),
    pytest.param(b"[1, 2]", None, id="not-an-object"),
    pytest.param(json.dumps({"user_id": "u1"}).encode(), "kind", id="missing-kind"),
    pytest.param(json.dumps({"kind": "like"}).encode(), "user_id", id="missing-user"),
    pytest.param(json.dumps({"user_id": "u1", "kind": "meh"}).encode(), "kind", id="unknown-kind"),
    pytest.param(json.dumps({"user_id": 42, "kind": "like"}).encode(), "user_id", id="wrong-type"),
    pytest.param(json.dumps({"user_id": "u1", "kind": "like", "x": 1}).encode(), "x", id="extra-field"),
    pytest.param(json.dumps({"user_id": "u" * 20000, "kind": "like"}).encode(), None, id="oversized-body"),
]


@pytest.mark.parametrize("on", ["async"], indirect=True)
@pytest.mark.parametrize(("body", "field"), BAD_INPUTS)
def test_bad_input_gets_4xx_naming_the_field(on: Any, body: bytes, field: str | None) -> None:
    status, data = _post_raw(body)
    assert 400 <= status < 500, (status, data)
    assert "error" in data
    if field is not None:
        assert field in json.dumps(data), data


@pytest.mark.parametrize("on", ["async"], indirect=True)
def test_openapi_document_describes_the_reaction_endpoint(on: Any) -> None:
    with urllib.request.urlopen(f"{sc.API}/openapi.json", timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["openapi"].startswith("3.")
    assert "/v1/posts/{post_id}/reactions" in doc["paths"]


async def _produce_raw(key: bytes, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_admin.BOOTSTRAP, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topology.TOPIC_REACTIONS, value=value, key=key)
    finally:
        await producer.stop()


@pytest.mark.parametrize("on", ["async"], indirect=True)
def test_a_poison_record_is_dead_lettered_and_read_back_by_id(on: Any) -> None:
    import asyncio
    import uuid

    from harness.assemble import dead_letter_id

    before = kafka_admin.end_offsets(topology.TOPIC_DEAD_LETTER)
    key = f"poison-{uuid.uuid4()}".encode()
    asyncio.run(_produce_raw(key, b"\xff\xff\xff not a protobuf"))
    assert wait_drained() == 0, "the consumer never got past the poison record"
    records = kafka_admin.read_since(topology.TOPIC_DEAD_LETTER, before)
    assert [dead_letter_id(r) for r in records] == [key.decode()]
    assert dict(records[0].headers)["x-dlq-reason"] == b"undecodable"
    # Read from the offsets after it: nothing new.
    assert kafka_admin.read_since(topology.TOPIC_DEAD_LETTER, kafka_admin.end_offsets(topology.TOPIC_DEAD_LETTER)) == []


def test_toxiproxy_schedules_its_goroutines_on_one_thread(stack: Any) -> None:
    """facts/toxiproxy.py's environment reaches the running proxy: its Go runtime says so itself."""
    url = topology.url(topology.TOXIPROXY_API_PORT, "/metrics")
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    gauge = [line.split()[-1] for line in text.splitlines() if line.startswith("go_sched_gomaxprocs_threads ")]
    assert gauge == [toxiproxy_facts.ENVIRONMENT["GOMAXPROCS"]]


def test_a_restarted_notification_service_shuts_down_whole(stack: Any) -> None:
    """A restart (here use_tracing's) lets the service finish its shutdown, its consumer leaving the
    group (harness/supervisor.py's terminate_group says why it did not always): three, all whole."""
    log = stack.sup.log_dir / f"{topology.notification_replica(1).process}.log"

    def count(text: str) -> int:
        return log.read_text(errors="replace").count(text)

    stopped, left = count("targets.notification: stopped"), count("LeaveGroup request succeeded")
    for _ in range(3):
        # the same flags: only the restart, which returns once the new consumer is in the group (a
        # consumer leaves only a group it joined)
        stack.use_tracing(stack.tracing)
    assert count("targets.notification: stopped") - stopped == 3
    assert count("LeaveGroup request succeeded") - left >= 3  # aiokafka's own line (a session's restart adds one)


def test_after_a_crash_a_restart_returns_with_the_consumer_in_its_group(stack: Any) -> None:
    """A notification service killed with SIGKILL never left the group, which waits for its session to
    expire before its successor gets any partition: use_tracing returns only once the group is settled."""
    stack.kill(topology.notification_replica(1).process)
    stack.use_tracing(stack.tracing)
    assert kafka_admin.group_settled(stack.replicas.count)
