"""The async pipeline: produce the event to Kafka and answer 202 once the broker acknowledged it.

acks="all" with the idempotent producer, so a retried produce cannot duplicate the record. That
choice shapes the failure answers. An idempotent aiokafka producer never expires a batch it has
put on the wire: it retries until the broker takes it. So once a record is sent, "Kafka did not
take it" cannot be known for sure, only "not yet" (504 at the deadline: unknown outcome, it may
still land). The definite failures (503: the record was not and will not be written) are caught
before anything is sent:

- no producer yet (Kafka was unreachable since start): 503;
- no live connection to the partition leader, and none can be opened in time: 503;
- metadata or leader unknown: aiokafka expires such unsent batches after `request_timeout`,
  which is below the API deadline: 503.

Kafka being down never stops the service: the producer connects in the background and requests
get 503 until it has. A producer whose sends keep failing while Kafka is reachable (e.g. its
sender died on a fatal error after a broker lost state) is replaced by a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from protos import reaction_pb2
from targets import tracing
from targets.reaction.transport import Receipt, TransportError

log = logging.getLogger(__name__)

_partitioner = DefaultPartitioner()
RECREATE_AFTER_SECONDS = 10.0  # a producer whose sends fail this long is replaced (its sender may be dead)


class KafkaTransport:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        deadline: float,
        request_timeout: float,
        recreate_after: float = RECREATE_AFTER_SECONDS,
        connect_backoff_max: float = 1.0,
        producer_factory: Callable[[], Any] | None = None,
    ) -> None:
        if request_timeout >= deadline:
            raise ValueError("the Kafka request timeout must be below the API deadline")
        self._bootstrap = bootstrap
        self._topic = topic
        self._deadline = deadline
        self._request_timeout = request_timeout
        self._recreate_after = recreate_after
        self._connect_backoff_max = connect_backoff_max
        self._producer_factory = producer_factory or self._make_producer
        self._producer: Any = None
        self._connector: asyncio.Task[None] | None = None
        self._failing_since: float | None = None  # loop time of the first failed send in a streak
        self._retiring: set[asyncio.Task[None]] = set()  # replaced producers, flushing

    @property
    def pipeline(self) -> str:
        return "async"

    def _make_producer(self) -> Any:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id="reaction",
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(self._request_timeout * 1000),
        )

    async def start(self) -> None:
        self._connect_in_background()

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        producer, self._producer = self._producer, None
        await _stop(producer, grace=5.0)
        if self._retiring:
            _done, pending = await asyncio.wait(self._retiring, timeout=2.0)
            for task in pending:
                task.cancel()

    def ready(self) -> bool:
        return self._producer is not None

    async def send(self, event: reaction_pb2.ReactionEvent) -> Receipt:
        producer = self._producer
        if producer is None:
            raise TransportError(503, "kafka_not_connected", f"no connection to Kafka at {self._bootstrap} yet")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline
        # The aiokafka instrumentation's PRODUCER span ends when the record is queued, before the
        # broker acknowledged it: this span covers the whole produce hop (leader check to ack).
        with tracing.span(f"produce {self._topic}", attributes=lambda: self._span_attributes(event)):
            return await self._send(producer, event, deadline)

    def _span_attributes(self, event: reaction_pb2.ReactionEvent) -> dict[str, str]:
        return {
            tracing.REACTION_ID: event.reaction_id,
            "messaging.system": "kafka",
            "messaging.destination.name": self._topic,
            "messaging.operation.name": "send_and_wait",
        }

    async def _send(self, producer: Any, event: reaction_pb2.ReactionEvent, deadline: float) -> Receipt:
        key = event.post_id.encode()
        partition = await self._check_leader(producer, key, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                await producer.send_and_wait(self._topic, value=event.SerializeToString(), key=key, partition=partition)
        except TimeoutError:
            self._note_failure()
            raise TransportError(504, "deadline_exceeded", "no acknowledgement from Kafka in time") from None
        except Exception as exc:  # KafkaError and anything a broken producer raises: not written
            self._note_failure()
            raise TransportError(503, "kafka_unavailable", f"{type(exc).__name__}: {exc}") from None
        self._failing_since = None
        return Receipt(202, "accepted")

    async def _check_leader(self, producer: Any, key: bytes, deadline: float) -> int | None:
        """Fail definitively (nothing sent) when the partition leader cannot be reached.

        Returns the partition the key maps to (the producer's own partitioner, so passing it on
        changes nothing), or None when metadata is not known yet and send() has to find out.
        """
        cluster = producer.client.cluster
        partitions = cluster.partitions_for_topic(self._topic)
        if not partitions:
            return None
        available = list(cluster.available_partitions_for_topic(self._topic) or ())
        partition: int = _partitioner(key, sorted(partitions), available)
        leader = cluster.leader_for_partition(TopicPartition(self._topic, partition))
        if leader is None or leader < 0:
            return partition
        # Free when the connection is up; otherwise one connect attempt, refused at once when the
        # broker or the link is down.
        budget = min(self._request_timeout, deadline - asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout(budget):
                reachable = await producer.client.ready(leader)
        except TimeoutError:
            reachable = False
        if not reachable:
            raise TransportError(503, "kafka_unreachable", f"cannot connect to the leader of partition {partition}")
        return partition

    def _note_failure(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since >= self._recreate_after and not self._connecting():
            log.warning("Kafka sends failing for %.0fs; replacing the producer", now - self._failing_since)
            old, self._producer = self._producer, None
            self._failing_since = None
            # No timeout: a stop() cut short leaves aiokafka's sender running. It returns once the
            # old producer's pending records are flushed (they may still land: 504 meant unknown).
            task = asyncio.get_running_loop().create_task(_stop(old, grace=None), context=contextvars.Context())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            self._connect_in_background()

    def _connecting(self) -> bool:
        return self._connector is not None and not self._connector.done()

    def _connect_in_background(self) -> None:
        # Started from a failing request, the task (and the producer's own tasks) would carry its trace,
        # or its suppression, for life: it gets a context of its own, as at start-up.
        self._connector = asyncio.get_running_loop().create_task(
            self._connect(), name="kafka-producer-connect", context=contextvars.Context()
        )

    async def _connect(self) -> None:
        backoff = 0.1
        attempt = 0
        while True:
            attempt += 1
            producer = self._producer_factory()
            try:
                # start() bootstraps and fetches a producer id; bound it so a half-dead broker
                # cannot keep us waiting forever.
                async with asyncio.timeout(max(5.0, 3 * self._request_timeout)):
                    await producer.start()
            except asyncio.CancelledError:
                await _stop(producer, grace=1.0)
                raise
            except Exception as exc:
                await _stop(producer, grace=1.0)
                if attempt == 1 or attempt % 30 == 0:
                    log.warning(
                        "Kafka at %s not reachable (attempt %d: %s: %s); retrying",
                        self._bootstrap,
                        attempt,
                        type(exc).__name__,
                        exc,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._connect_backoff_max)
                continue
            self._producer = producer
            log.info("Kafka producer connected to %s (topic %r)", self._bootstrap, self._topic)
            return


async def _stop(producer: Any, *, grace: float | None) -> None:
    if producer is None:
        return
    try:
        async with asyncio.timeout(grace):
            await producer.stop()
    except Exception as exc:
        log.debug("stopping the Kafka producer failed: %r", exc)
