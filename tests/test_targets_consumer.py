"""The Kafka consumer with a fake Kafka and a fake push sink: commit only after every record of a
batch is delivered or dead-lettered; a failed dead-letter write holds the commit; Kafka trouble
restarts the session instead of killing the process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError

from protos import reaction_pb2
from targets import metrics
from targets.notification.consumer import ConsumerSettings, ReactionConsumer
from targets.notification.delivery import Deliverer, RetryPolicy

TOPIC = "reactions"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def record(partition: int, offset: int, rid: str) -> Record:
    value = reaction_pb2.ReactionEvent(reaction_id=rid, post_id="p", user_id="u", kind=reaction_pb2.SAD)
    return Record(TOPIC, partition, offset, b"p", value.SerializeToString())


def batch(*records: Record) -> dict[TopicPartition, list[Record]]:
    out: dict[TopicPartition, list[Record]] = {}
    for r in records:
        out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
    return out


class Sink:
    """200 unless the id starts with "fail" (500) or "reject" (400). Remembers what it got, in order."""

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def push(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        if key.startswith("fail"):
            return web.json_response({}, status=500)
        if key.startswith("reject"):
            return web.json_response({}, status=400)
        self.delivered.append(key)
        return web.json_response({"first": True})


class Kafka:
    """Shared state of the fake cluster across consumer sessions (like the real broker)."""

    def __init__(self, batches: list[dict[TopicPartition, list[Record]]], sink: Sink) -> None:
        self.batches = batches
        self.sink = sink
        self.start_failures = 0
        self.getmany_failures = 0
        self.commit_failures: list[Exception] = []
        self.dlq_failures = 0
        self.commits: list[tuple[dict[TopicPartition, int], list[str]]] = []  # offsets, sink state then
        self.dead_letters: list[tuple[bytes | None, dict[str, bytes]]] = []
        self.consumers = 0
        self.highwater = 0


class FakeConsumer:
    def __init__(self, kafka: Kafka) -> None:
        self.kafka = kafka
        kafka.consumers += 1
        self.pending: dict[TopicPartition, list[Record]] | None = None  # fetched, not committed

    async def start(self) -> None:
        if self.kafka.start_failures:
            self.kafka.start_failures -= 1
            raise KafkaConnectionError("Unable to bootstrap")

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        if self.kafka.getmany_failures:
            self.kafka.getmany_failures -= 1
            raise KafkaTimeoutError("fetch failed")
        if self.pending is None and self.kafka.batches:
            self.pending = self.kafka.batches[0]
            return self.pending
        await asyncio.sleep(0.01)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.kafka.commit_failures:
            self.pending = None  # the group moved on: the position is back at the committed offset
            raise self.kafka.commit_failures.pop(0)
        self.kafka.commits.append((dict(offsets), list(self.kafka.sink.delivered)))
        self.kafka.batches.pop(0)
        self.pending = None

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in range(3)}

    def highwater(self, tp: TopicPartition) -> int:
        return self.kafka.highwater

    async def stop(self) -> None:
        pass


class FakeProducer:
    def __init__(self, kafka: Kafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        pass

    async def send_and_wait(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.kafka.dlq_failures:
            self.kafka.dlq_failures -= 1
            raise KafkaTimeoutError("dlq down")
        assert topic == "reactions.dlq"
        self.kafka.dead_letters.append((value, dict(headers)))

    async def stop(self) -> None:
        pass


def run(kafka: Kafka, until: Callable[[], bool], check: Callable[[], Awaitable[None]] | None = None) -> None:
    settings = ConsumerSettings(
        bootstrap="fake:9092",
        topic=TOPIC,
        group="g",
        dead_letter_topic="reactions.dlq",
        poll_timeout=0.01,
        restart_backoff_initial=0.01,
        restart_backoff_max=0.02,
        dead_letter_retry_initial=0.01,
        dead_letter_retry_max=0.02,
    )

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/push", kafka.sink.push)
        async with TestServer(app) as http:
            policy = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.002)
            deliverer = Deliverer(str(http.make_url("/push")), policy=policy)
            await deliverer.start()
            consumer = ReactionConsumer(
                settings,
                deliverer,
                consumer_factory=lambda _: FakeConsumer(kafka),
                producer_factory=lambda _: FakeProducer(kafka),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(consumer.run(stop))
            try:
                for _ in range(1000):  # up to ~5 s
                    if until():
                        break
                    await asyncio.sleep(0.005)
                else:
                    raise AssertionError("the consumer never got there")
                if check is not None:
                    await check()
            finally:
                stop.set()
                await asyncio.wait_for(task, 2)
                await deliverer.close()

    asyncio.run(main())


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.NOTIFICATION_REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_commits_after_the_whole_batch_is_delivered() -> None:
    sink = Sink()
    kafka = Kafka([batch(record(0, 5, "a"), record(0, 6, "b"), record(1, 0, "c")), batch(record(2, 9, "d"))], sink)
    consumed = sample("notification_messages_consumed_total")
    run(kafka, lambda: len(kafka.commits) == 2)
    first_offsets, delivered_then = kafka.commits[0]
    assert first_offsets == {TopicPartition(TOPIC, 0): 7, TopicPartition(TOPIC, 1): 1}
    assert sorted(delivered_then) == ["a", "b", "c"], "committed before every record was delivered"
    assert kafka.commits[1][0] == {TopicPartition(TOPIC, 2): 10}
    assert sample("notification_messages_consumed_total") == consumed + 4
    assert kafka.dead_letters == []


def test_failures_go_to_the_dead_letter_topic_before_the_commit() -> None:
    sink = Sink()
    garbage = Record(TOPIC, 1, 3, b"p", b"\xff\xff\xff")
    kafka = Kafka([batch(record(0, 0, "ok-1"), record(0, 1, "fail-1"), record(1, 2, "reject-1"), garbage)], sink)
    exhausted = sample("notification_dead_lettered_total", {"reason": "exhausted"})
    run(kafka, lambda: len(kafka.commits) == 1)
    reasons = sorted(headers["x-dlq-reason"].decode() for _, headers in kafka.dead_letters)
    assert reasons == ["exhausted", "rejected", "undecodable"]
    assert len(kafka.commits) == 1 and kafka.commits[0][1] == ["ok-1"]
    assert kafka.commits[0][0] == {TopicPartition(TOPIC, 0): 2, TopicPartition(TOPIC, 1): 4}
    by_reason = {h["x-dlq-reason"].decode(): h for _, h in kafka.dead_letters}
    assert by_reason["exhausted"]["x-dlq-attempts"] == b"2"
    assert by_reason["exhausted"]["x-dlq-original-offset"] == b"1"
    assert by_reason["undecodable"]["x-dlq-original-partition"] == b"1"
    assert sample("notification_dead_lettered_total", {"reason": "exhausted"}) == exhausted + 1


def test_failed_dead_letter_write_holds_the_commit_until_it_succeeds() -> None:
    sink = Sink()
    kafka = Kafka([batch(record(0, 0, "fail-2"))], sink)
    kafka.dlq_failures = 3
    errors = sample("notification_dead_letter_errors_total")
    commits_seen_while_failing: list[int] = []

    def until() -> bool:
        if kafka.dlq_failures:
            commits_seen_while_failing.append(len(kafka.commits))
        return len(kafka.commits) == 1

    run(kafka, until)
    assert set(commits_seen_while_failing) == {0}
    assert len(kafka.dead_letters) == 1
    assert sample("notification_dead_letter_errors_total") == errors + 3


def test_kafka_unreachable_at_start_is_retried() -> None:
    sink = Sink()
    kafka = Kafka([batch(record(0, 0, "late"))], sink)
    kafka.start_failures = 3
    restarts = sample("notification_consumer_restarts_total")
    run(kafka, lambda: len(kafka.commits) == 1)
    assert kafka.consumers == 4
    assert sample("notification_consumer_restarts_total") == restarts + 3


def test_fetch_error_restarts_the_session_and_refetches() -> None:
    sink = Sink()
    kafka = Kafka([batch(record(0, 0, "x"))], sink)
    kafka.getmany_failures = 1
    run(kafka, lambda: len(kafka.commits) == 1)
    assert kafka.consumers == 2


def test_rebalance_during_a_batch_skips_the_commit_and_goes_on() -> None:
    sink = Sink()
    kafka = Kafka([batch(record(0, 0, "r1")), batch(record(0, 1, "r2"))], sink)
    kafka.commit_failures = [CommitFailedError("rebalanced")]
    rebalanced = sample("notification_offset_commits_total", {"result": "rebalanced"})
    run(kafka, lambda: len(kafka.commits) == 2)
    # The first batch was delivered twice: at-least-once, redelivered after the failed commit.
    assert sink.delivered == ["r1", "r1", "r2"]
    assert sample("notification_offset_commits_total", {"result": "rebalanced"}) == rebalanced + 1


def test_lag_is_highwater_minus_next_offset() -> None:
    sink = Sink()
    kafka = Kafka([batch(record(0, 4, "l1"))], sink)
    kafka.highwater = 10

    async def check() -> None:
        await asyncio.sleep(0.05)  # one more poll updates the gauge
        assert sample("notification_consumer_lag_messages") == 5  # partition 0: 10 - 5
        assert sample("notification_consumer_connected") == 1

    run(kafka, lambda: len(kafka.commits) == 1, check)
    assert sample("notification_consumer_connected") == 0
