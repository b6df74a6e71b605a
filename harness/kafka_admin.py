"""Admin calls on Kafka's internal listener (never through Toxiproxy): topics and backlog."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorForGroupError,
    TopicAlreadyExistsError,
)

from facts import kafka_broker, topology

# A cluster (compose's three-broker profile) lists every broker, so a read survives losing one.
BOOTSTRAP = os.environ.get("SYNC_ASYNC_BENCH_KAFKA_BOOTSTRAP") or topology.addr(topology.KAFKA_INTERNAL_PORT)


@contextlib.asynccontextmanager
async def _admin(request_timeout_ms: int) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=request_timeout_ms)
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def _list_topics() -> list[str]:
    async with _admin(3000) as admin:
        return list(await admin.list_topics())


def ready(timeout: float = 2.0) -> bool:
    """True once the broker answers metadata requests. Bounded: the fault timeline probes a
    restarting broker between its events, and a ready broker answers in milliseconds."""
    try:
        asyncio.run(asyncio.wait_for(_list_topics(), timeout))
    except (KafkaError, OSError, TimeoutError):
        return False
    return True


async def _create_topics(names: Sequence[str], partitions: int) -> None:
    async with _admin(10000) as admin:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, partitions, replication_factor=kafka_broker.TOPIC_REPLICATION_FACTOR)]
                )


PIPELINE_TOPICS = (topology.TOPIC_REACTIONS, topology.TOPIC_DEAD_LETTER)


def create_topics(partitions: int = topology.TOPIC_PARTITIONS, names: Sequence[str] = PIPELINE_TOPICS) -> None:
    """The topics (the pipeline's by default), each left as it is where it exists already."""
    asyncio.run(_create_topics(names, partitions))


async def _offsets(topic: str, group: str) -> tuple[int, int]:
    """(sum of end offsets, sum of the group's committed offsets) over the topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, request_timeout_ms=5000)
    try:
        await consumer.start()
        async with _admin(5000) as admin:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            done = sum(meta.offset for tp, meta in committed.items() if meta is not None and meta.offset >= 0)
            return sum(ends.values()), done
    finally:
        await consumer.stop()


def offsets(topic: str = topology.TOPIC_REACTIONS, group: str = topology.CONSUMER_GROUP) -> tuple[int, int]:
    # Right after the broker starts, the group coordinator is not elected yet: a retriable error.
    for attempt in range(30):
        try:
            return asyncio.run(_offsets(topic, group))
        except (GroupCoordinatorNotAvailableError, NotCoordinatorForGroupError):
            if attempt == 29:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


async def _group(group: str) -> tuple[str, int]:
    async with _admin(3000) as admin:
        (response,) = await admin.describe_consumer_groups([group])
        (described,) = response.to_object()["groups"]
        return described["state"], len(described["members"])


def group_settled(members: int, group: str = topology.CONSUMER_GROUP) -> bool:
    """Whether the consumer group is Stable with `members` members: every consumer has joined, and
    no rebalance waits on a member that went without leaving (until its session expires)."""
    try:
        state, count = asyncio.run(asyncio.wait_for(_group(group), 5))
    except (KafkaError, OSError, TimeoutError, ValueError):
        return False
    return state == "Stable" and count == members


def backlog(topic: str = topology.TOPIC_REACTIONS, group: str = topology.CONSUMER_GROUP) -> int:
    """Messages produced but not yet committed by the consumer group (the async pipeline's queue)."""
    end, done = offsets(topic, group)
    return max(0, end - done)


async def _end_offsets(topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, request_timeout_ms=5000)
    try:
        await consumer.start()
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()} if tps else {}
    finally:
        await consumer.stop()


def end_offsets(topic: str) -> dict[int, int]:
    """Each partition's end offset: taken before a run, it marks where that run's records begin."""
    return asyncio.run(_end_offsets(topic))


async def _read_since(topic: str, since: Mapping[int, int]) -> list[ConsumerRecord[bytes, bytes]]:
    # "earliest": were `since` below the log start (retention), the default "latest" would skip to the end.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, request_timeout_ms=5000, auto_offset_reset="earliest"
    )
    try:
        await consumer.start()
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        if not tps:
            return []
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since.get(tp.partition, 0))
        out: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
        return out
    finally:
        await consumer.stop()


def read_since(topic: str, since: Mapping[int, int], timeout: float = 30.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the offsets `since` (per partition, from end_offsets) to its end now."""
    try:
        return asyncio.run(asyncio.wait_for(_read_since(topic, since), timeout))
    except TimeoutError:
        raise TimeoutError(f"reading {topic}: not at its end offsets after {timeout:.0f}s") from None
