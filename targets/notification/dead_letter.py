"""Writing a record that cannot be delivered to the dead-letter topic, with why and from where."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from targets import metrics

log = logging.getLogger(__name__)


def dead_letter_headers(record: Any, reason: str, error: str | None, attempts: int) -> list[tuple[str, bytes]]:
    """Headers that let someone replay or inspect the record without the consumer's logs."""
    return [
        ("x-dlq-reason", reason.encode()),
        ("x-dlq-error", (error or "").encode()[:1000]),
        ("x-dlq-attempts", str(attempts).encode()),
        ("x-dlq-original-topic", str(record.topic).encode()),
        ("x-dlq-original-partition", str(record.partition).encode()),
        ("x-dlq-original-offset", str(record.offset).encode()),
        ("x-dlq-unix-nanos", str(time.time_ns()).encode()),
    ]


class DeadLetterWriter:
    """Produces to the dead-letter topic and reports whether Kafka acknowledged the write."""

    def __init__(self, producer: Any, topic: str, *, timeout: float) -> None:
        self._producer = producer  # an AIOKafkaProducer with acks="all"
        self._topic = topic
        self._timeout = timeout  # last resort over the producer's own request timeout

    async def write(self, record: Any, reason: str, error: str | None, attempts: int) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._producer.send_and_wait(
                    self._topic,
                    value=record.value,
                    key=record.key,
                    headers=dead_letter_headers(record, reason, error, attempts),
                )
        except Exception as exc:  # any failure means "not acked": the caller retries
            metrics.notification_dead_letter_errors.inc()
            log.debug("dead-letter write failed: %r", exc)
            return False
        metrics.notification_dead_lettered.labels(reason).inc()
        return True
