"""The async pipeline's entry: a Kafka consumer group that delivers, then commits.

At-least-once: a batch's offsets are committed only after every record in it was delivered or
acknowledged by the dead-letter topic. A record is never dropped: if the dead-letter write fails
too, the record is tried again (delivery first, the sink may be back) until one of them succeeds.

Kafka being unreachable (at start, mid-run, a broker restart) ends the current session at worst;
the supervisor loop in `run` builds a fresh consumer after a backoff, and whatever was not
committed is fetched again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from google.protobuf.message import DecodeError

from protos import reaction_pb2
from targets import metrics, tracing
from targets.notification.dead_letter import DeadLetterWriter
from targets.notification.delivery import Deliverer

log = logging.getLogger(__name__)

PIPELINE = "async"


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap: str
    topic: str
    group: str
    dead_letter_topic: str
    # A batch is committed when its slowest record is done; with the sink black-holed a record takes
    # attempts x (attempt timeout + backoff), so a batch must stay well inside max.poll.interval.ms
    # (5 min) at the deliverer's concurrency.
    batch_size: int = 256
    poll_timeout: float = 1.0  # seconds getmany waits; also bounds how fast a stop is noticed
    request_timeout: float = 15.0  # Kafka requests; low enough to notice a black-holed link
    start_timeout: float = 20.0
    restart_backoff_initial: float = 0.5
    restart_backoff_max: float = 2.0  # a refused connect is cheap; recovery time is measured
    dead_letter_retry_initial: float = 0.5
    dead_letter_retry_max: float = 10.0
    client_id: str = "notification"


def make_consumer(settings: ConsumerSettings) -> Any:
    return AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap,
        group_id=settings.group,
        client_id=settings.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(settings.request_timeout * 1000),
    )


def make_producer(settings: ConsumerSettings) -> Any:
    # The dead-letter producer goes through the same proxy as the consumer: it is this service's
    # one link to Kafka.
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id}-dlq",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(settings.request_timeout * 1000),
    )


class ReactionConsumer:
    def __init__(
        self,
        settings: ConsumerSettings,
        deliverer: Deliverer,
        *,
        consumer_factory: Callable[[ConsumerSettings], Any] = make_consumer,
        producer_factory: Callable[[ConsumerSettings], Any] = make_producer,
    ) -> None:
        self._settings = settings
        self._deliverer = deliverer
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._connected = False
        self._had_session = False  # whether the latest session got as far as polling
        self._next_offset: dict[Any, int] = {}  # TopicPartition -> next offset to handle

    @property
    def connected(self) -> bool:
        return self._connected

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; never returns early because Kafka misbehaves."""
        s = self._settings
        backoff = s.restart_backoff_initial
        failures = 0  # consecutive sessions that ended in an error
        while not stop.is_set():
            try:
                await self._session(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.notification_consumer_restarts.inc()
                failures = 1 if self._had_session else failures + 1
                if failures == 1 or failures % 30 == 0:  # an outage is logged, not every retry
                    log.warning(
                        "Kafka consumer session ended (%s: %s); retrying (failure %d in a row)",
                        type(exc).__name__,
                        exc,
                        failures,
                    )
            if stop.is_set():
                break
            if self._had_session:  # a session that worked earns a fresh, short backoff
                backoff = s.restart_backoff_initial
            await _wait(stop, backoff)
            backoff = min(backoff * 2, s.restart_backoff_max)

    async def _session(self, stop: asyncio.Event) -> None:
        s = self._settings
        self._had_session = False
        consumer = self._consumer_factory(s)
        producer = self._producer_factory(s)
        try:
            async with asyncio.timeout(s.start_timeout):
                await consumer.start()
                await producer.start()
            self._had_session = True
            self._set_connected(True)
            self._next_offset.clear()
            dead_letter = DeadLetterWriter(producer, s.dead_letter_topic, timeout=s.request_timeout + 5)
            log.info("Kafka consumer in group %r on %s, topic %r", s.group, s.bootstrap, s.topic)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=int(s.poll_timeout * 1000), max_records=s.batch_size)
                if batches:
                    await self._handle_batch(consumer, dead_letter, batches)
                self._update_lag(consumer)
        finally:
            self._set_connected(False)
            await _stop_quietly(consumer, "consumer")
            await _stop_quietly(producer, "dead-letter producer")

    async def _handle_batch(self, consumer: Any, dead_letter: DeadLetterWriter, batches: dict[Any, list[Any]]) -> None:
        records = [record for partition_records in batches.values() for record in partition_records]
        metrics.notification_messages_consumed.inc(len(records))
        outcomes: Counter[str] = Counter()
        async with asyncio.TaskGroup() as group:
            for record in records:
                group.create_task(self._handle_record(record, dead_letter, outcomes))
        if set(outcomes) - {"delivered"}:
            log.warning("batch of %d records handled: %s", len(records), dict(outcomes))

        offsets = {
            tp: partition_records[-1].offset + 1 for tp, partition_records in batches.items() if partition_records
        }
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while we worked: these partitions may belong to someone else now,
            # who will fetch the batch again. That is the at-least-once contract, not an error.
            metrics.notification_offset_commits.labels("rebalanced").inc()
            log.warning("commit skipped after a rebalance (%s); the batch will be redelivered", type(exc).__name__)
            return
        metrics.notification_offset_commits.labels("ok").inc()
        self._next_offset.update(offsets)

    async def _handle_record(self, record: Any, dead_letter: DeadLetterWriter, outcomes: Counter[str]) -> None:
        """Return only once the record is delivered or dead-lettered."""
        # The messaging conventions' "process" span, a child of the producer's span (the context in
        # the record's headers): a redelivered record adds one more to the same trace.
        with tracing.span(
            f"process {record.topic}",
            kind=tracing.SpanKind.CONSUMER,
            attributes=lambda: self._span_attributes(record),
            context=tracing.consume_context(record.headers),
        ) as span:
            outcome = await self._deliver_or_dead_letter(record, dead_letter, outcomes)
            span.set_attribute("reaction.outcome", outcome)

    def _span_attributes(self, record: Any) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": self._settings.group,
        }
        event = _decode(record)
        if not isinstance(event, str):
            attributes[tracing.REACTION_ID] = event.reaction_id
        return attributes

    async def _deliver_or_dead_letter(self, record: Any, dead_letter: DeadLetterWriter, outcomes: Counter[str]) -> str:
        s = self._settings
        retry_in = s.dead_letter_retry_initial
        while True:
            event = _decode(record)
            error: str | None
            if isinstance(event, str):
                reason, error, attempts = "undecodable", event, 0
            else:
                # No deadline: nobody waits for the answer, so the attempt count bounds the work, and
                # time spent queueing for a concurrency slot must not count against the record.
                result = await self._deliverer.deliver(event, pipeline=PIPELINE)
                if result.ok:
                    outcomes["delivered"] += 1
                    return "delivered"
                reason = "rejected" if result.permanent else "exhausted"
                error, attempts = result.error, result.attempts
            if await dead_letter.write(record, reason, error, attempts):
                outcomes[f"dead_lettered_{reason}"] += 1
                return f"dead_lettered_{reason}"
            outcomes["dead_letter_failed"] += 1
            await asyncio.sleep(retry_in)
            retry_in = min(retry_in * 2, s.dead_letter_retry_max)

    def _update_lag(self, consumer: Any) -> None:
        # Cheap: highwater comes with every fetch response; the next offset is what we committed.
        lag = 0
        for tp in consumer.assignment():
            highwater, next_offset = consumer.highwater(tp), self._next_offset.get(tp)
            if highwater is not None and next_offset is not None:
                lag += max(0, highwater - next_offset)
        metrics.notification_consumer_lag.set(lag)

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        metrics.notification_consumer_connected.set(1 if connected else 0)


def _decode(record: Any) -> reaction_pb2.ReactionEvent | str:
    """The event, or why the record is not one (such records go straight to the dead letters)."""
    try:
        event = reaction_pb2.ReactionEvent.FromString(record.value or b"")
    except DecodeError as exc:
        return f"not a ReactionEvent: {exc}"
    return event if event.reaction_id else "ReactionEvent without reaction_id"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass


async def _stop_quietly(client: Any, what: str) -> None:
    # Stopping talks to the broker (leave group, flush); with the broker gone it must not hang.
    try:
        async with asyncio.timeout(5):
            await client.stop()
    except Exception as exc:
        log.debug("stopping the Kafka %s failed: %r", what, exc)
