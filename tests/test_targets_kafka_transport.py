"""The async transport with a fake producer: 202 on ack, definite 503s, 504 at the deadline, a
producer that connects in the background and is replaced when it keeps failing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, NotEnoughReplicasError

from protos import reaction_pb2
from targets.reaction.kafka_transport import KafkaTransport
from targets.reaction.transport import Receipt, TransportError


class Cluster:
    def __init__(self, partitions: set[int] | None = None, leader: int | None = 1) -> None:
        self.partitions = {0, 1, 2} if partitions is None else partitions
        self.leader = leader

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions or None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def leader_for_partition(self, tp: Any) -> int | None:
        return self.leader


class Client:
    def __init__(self, cluster: Cluster, reachable: bool = True) -> None:
        self.cluster = cluster
        self.reachable = reachable

    async def ready(self, node_id: int) -> bool:
        return self.reachable


class FakeProducer:
    def __init__(self, *, start_error: Exception | None = None, send: Callable[[], Awaitable[None]] | None = None):
        self.client = Client(Cluster())
        self.start_error = start_error
        self.send = send
        self.sent: list[dict[str, Any]] = []
        self.stopped = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error

    async def send_and_wait(self, topic: str, value: bytes, key: bytes, partition: int | None) -> None:
        if self.send is not None:
            await self.send()
        self.sent.append({"topic": topic, "value": value, "key": key, "partition": partition})

    async def stop(self) -> None:
        self.stopped = True


def event(post_id: str = "post-7") -> reaction_pb2.ReactionEvent:
    return reaction_pb2.ReactionEvent(reaction_id="k1", post_id=post_id, user_id="u", kind=reaction_pb2.HAHA)


async def started(producers: list[FakeProducer], **kwargs: Any) -> KafkaTransport:
    """A transport whose factory hands out `producers` in order; waits until one is connected."""
    queue = list(producers)
    options: dict[str, Any] = {"deadline": 0.3, "request_timeout": 0.2, **kwargs}
    transport = KafkaTransport("fake:9092", "reactions", producer_factory=lambda: queue.pop(0), **options)
    await transport.start()
    await connected(transport)
    return transport


async def connected(transport: KafkaTransport) -> None:
    for _ in range(300):  # up to ~3 s
        if transport.ready():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the producer never connected")


async def outcome(transport: KafkaTransport) -> Receipt | TransportError:
    try:
        return await transport.send(event())
    except TransportError as exc:
        return exc


def test_request_timeout_must_be_below_the_deadline() -> None:
    with pytest.raises(ValueError):
        KafkaTransport("fake:9092", "t", deadline=1.0, request_timeout=1.0)


def test_acknowledged_send_is_202_keyed_by_post() -> None:
    async def main() -> None:
        producer = FakeProducer()
        transport = await started([producer])
        assert await transport.send(event()) == Receipt(202, "accepted")
        await transport.close()
        sent = producer.sent[0]
        assert (sent["topic"], sent["key"]) == ("reactions", b"post-7")
        assert reaction_pb2.ReactionEvent.FromString(sent["value"]) == event()
        assert sent["partition"] in {0, 1, 2}
        assert producer.stopped

    asyncio.run(main())


def test_same_post_same_partition() -> None:
    async def main() -> None:
        producer = FakeProducer()
        transport = await started([producer])
        for post in ("a", "b", "a", "c", "b"):
            await transport.send(event(post))
        await transport.close()
        by_post: dict[bytes, set[int]] = {}
        for sent in producer.sent:
            by_post.setdefault(sent["key"], set()).add(sent["partition"])
        assert all(len(partitions) == 1 for partitions in by_post.values())

    asyncio.run(main())


def test_kafka_unreachable_at_start_gives_503_then_recovers() -> None:
    async def main() -> None:
        down = [FakeProducer(start_error=KafkaConnectionError("Unable to bootstrap")) for _ in range(3)]
        up = FakeProducer()
        queue = [*down, up]
        transport = KafkaTransport(
            "fake:9092", "reactions", deadline=0.3, request_timeout=0.2, producer_factory=lambda: queue.pop(0)
        )
        await transport.start()
        error = await outcome(transport)
        assert isinstance(error, TransportError)
        assert (error.http_status, error.reason) == (503, "kafka_not_connected")
        await connected(transport)
        assert await transport.send(event()) == Receipt(202, "accepted")
        assert all(p.stopped for p in down), "failed producers must be closed"
        await transport.close()

    asyncio.run(main())


def test_unreachable_leader_is_a_definite_503_and_nothing_is_sent() -> None:
    async def main() -> None:
        producer = FakeProducer()
        producer.client.reachable = False
        transport = await started([producer])
        error = await outcome(transport)
        await transport.close()
        assert isinstance(error, TransportError)
        assert (error.http_status, error.reason) == (503, "kafka_unreachable")
        assert producer.sent == []

    asyncio.run(main())


def test_unknown_metadata_lets_the_producer_choose() -> None:
    async def main() -> None:
        producer = FakeProducer()
        producer.client.cluster.partitions = set()
        transport = await started([producer])
        assert await transport.send(event()) == Receipt(202, "accepted")
        await transport.close()
        assert producer.sent[0]["partition"] is None

    asyncio.run(main())


def test_broker_error_is_503() -> None:
    async def fail() -> None:
        raise NotEnoughReplicasError()

    async def main() -> None:
        transport = await started([FakeProducer(send=fail)])
        error = await outcome(transport)
        await transport.close()
        assert isinstance(error, TransportError)
        assert (error.http_status, error.reason) == (503, "kafka_unavailable")

    asyncio.run(main())


def test_no_ack_by_the_deadline_is_504() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        transport = await started([FakeProducer(send=hang)])
        error = await outcome(transport)  # the send hangs 10 s: only the deadline ends it
        await transport.close()
        assert isinstance(error, TransportError)
        assert (error.http_status, error.reason) == (504, "deadline_exceeded")

    asyncio.run(main())


def test_a_producer_that_keeps_failing_is_replaced() -> None:
    async def fail() -> None:
        raise NotEnoughReplicasError()

    async def main() -> None:
        broken, fresh = FakeProducer(send=fail), FakeProducer()
        transport = await started([broken, fresh], recreate_after=0.05)
        await outcome(transport)
        await asyncio.sleep(0.06)
        await outcome(transport)  # the streak is now long enough: replacement starts
        async with asyncio.timeout(3):
            while not fresh.sent:
                if transport.ready():
                    await transport.send(event())
                await asyncio.sleep(0.01)
        await transport.close()
        assert broken.stopped

    asyncio.run(main())
