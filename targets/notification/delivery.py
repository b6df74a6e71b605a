"""The one way a notification reaches the push sink, for both entry paths.

POST /push with the reaction id as Idempotency-Key; bounded concurrency; retries with full-jitter
exponential backoff, bounded by an attempt count and, when the caller has one, a deadline.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from protos import reaction_pb2
from targets import metrics, tracing
from targets.wire import IDEMPOTENCY_KEY_HEADER, PIPELINE_HEADER

# An attempt with less time than this left cannot complete a local HTTP round trip; skip it.
MIN_ATTEMPT_SECONDS = 0.005


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"  # the sink had already seen this reaction id
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    attempts: int
    error: str | None = None
    permanent: bool = False  # the sink rejected the request (4xx): retrying cannot help

    @property
    def ok(self) -> bool:
        return self.outcome is not DeliveryOutcome.FAILED


MAX_CONCURRENCY = 64  # push requests in flight at once, per service


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    initial_backoff: float = 0.05  # seconds; the first retry waits up to this (full jitter)
    max_backoff: float = 2.0
    attempt_timeout: float = 2.0


class RetryableError(Exception):
    """The attempt failed in a way another attempt may fix (5xx, 408, 429, timeout, connection)."""


class PermanentError(Exception):
    """The sink rejected the request itself (other 4xx)."""


class _StopAtDeadline(stop_base):
    """Stop when the next attempt would start after the deadline: sleeping then is pointless."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.too_late(retry_state.upcoming_sleep)

    def too_late(self, pause: float) -> bool:
        if self._deadline is None:
            return False
        return self._clock() + pause >= self._deadline - MIN_ATTEMPT_SECONDS


def push_payload(event: reaction_pb2.ReactionEvent) -> dict[str, Any]:
    return {
        "reaction_id": event.reaction_id,
        "post_id": event.post_id,
        "user_id": event.user_id,
        "kind": reaction_pb2.ReactionKind.Name(event.kind).lower(),
        "created_unix_nanos": event.created_unix_nanos,
    }


class Deliverer:
    def __init__(
        self,
        push_url: str,
        *,
        max_concurrency: int = MAX_CONCURRENCY,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._url = push_url
        self._max_concurrency = max_concurrency
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._semaphore = asyncio.Semaphore(max_concurrency)

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_concurrency)
        # Timeouts are applied per attempt below, from the policy and the caller's deadline.
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(
        self, event: reaction_pb2.ReactionEvent, *, pipeline: str, deadline: float | None = None
    ) -> DeliveryResult:
        """Deliver once (from the sink's point of view); `deadline` is in event-loop time."""
        pipeline = metrics.pipeline_label(pipeline)
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts = 0

        async def attempt() -> bool:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                metrics.notification_delivery_retries.labels(pipeline).inc()
            return await self._post(event, pipeline, deadline)

        in_flight = metrics.notification_deliveries_in_flight.labels(pipeline)
        in_flight.inc()
        # One span per delivery, current while it runs: each push attempt is an HTTP client span in it.
        span = tracing.span("deliver push", attributes=lambda: {tracing.REACTION_ID: event.reaction_id})
        # The span's trace id for the duration's exemplar, taken inside it: the duration is observed after it.
        exemplar: dict[str, str] | None = None
        try:
            # The outer timeout also bounds waiting for a concurrency slot and backoff sleeps.
            async with asyncio.timeout_at(deadline):
                with span as current:
                    exemplar = tracing.exemplar()
                    try:
                        first = await self._attempts(attempt, deadline, loop.time)
                    finally:
                        current.set_attribute("delivery.attempts", attempts)
                    current.set_attribute(tracing.PUSH_FIRST, first)
            result = DeliveryResult(
                DeliveryOutcome.DELIVERED if first else DeliveryOutcome.DUPLICATE, attempts=attempts
            )
        except RetryableError as exc:
            result = DeliveryResult(DeliveryOutcome.FAILED, attempts, str(exc))
        except PermanentError as exc:
            result = DeliveryResult(DeliveryOutcome.FAILED, attempts, str(exc), permanent=True)
        except TimeoutError:
            result = DeliveryResult(DeliveryOutcome.FAILED, attempts, "deadline exceeded")
        finally:
            in_flight.dec()
        metrics.notification_deliveries.labels(pipeline, result.outcome.value).inc()
        metrics.notification_delivery_duration.labels(pipeline, result.outcome.value).observe(
            loop.time() - started, exemplar=exemplar
        )
        return result

    async def _attempts(
        self, attempt: Callable[[], Awaitable[bool]], deadline: float | None, clock: Callable[[], float]
    ) -> bool:
        """The first attempt is made directly: tenacity's per-call machinery cost ~15 % of the
        consumer's CPU in a profile, for the rare delivery that needs a second attempt. Those go on
        through tenacity with the schedule they would have had: full jitter, initial x 2^(n-1)."""
        p = self._policy
        try:
            return await attempt()
        except RetryableError:
            if p.max_attempts <= 1:
                raise
            pause = random.uniform(0, min(p.initial_backoff, p.max_backoff))
            if _StopAtDeadline(deadline, clock).too_late(pause):
                raise
        await self._sleep(pause)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(p.max_attempts - 1) | _StopAtDeadline(deadline, clock),
            # attempt n of this loop is attempt n + 1 of the delivery: twice the multiplier
            wait=wait_random_exponential(multiplier=2 * p.initial_backoff, max=p.max_backoff),
            retry=retry_if_exception_type(RetryableError),
            sleep=self._sleep,
            reraise=True,
        )
        result: bool = await retrying(attempt)
        return result

    async def _post(self, event: reaction_pb2.ReactionEvent, pipeline: str, deadline: float | None) -> bool:
        """One HTTP attempt; True when the sink saw this key for the first time."""
        if self._session is None:
            raise RuntimeError("Deliverer.start() was not called")
        attempts_metric = metrics.notification_delivery_attempts
        headers = {IDEMPOTENCY_KEY_HEADER: event.reaction_id, PIPELINE_HEADER: pipeline}
        async with self._semaphore:
            timeout = self._policy.attempt_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - asyncio.get_running_loop().time())
            try:
                async with (
                    asyncio.timeout(timeout),
                    self._session.post(self._url, json=push_payload(event), headers=headers) as response,
                ):
                    status = response.status
                    body = await response.read()
            except TimeoutError:
                attempts_metric.labels(pipeline, "timeout").inc()
                raise RetryableError(f"push timed out after {timeout:.3f}s") from None
            except aiohttp.ClientError as exc:
                attempts_metric.labels(pipeline, "connection").inc()
                raise RetryableError(f"push failed: {type(exc).__name__}: {exc}") from None

        if 200 <= status < 300:
            attempts_metric.labels(pipeline, "ok").inc()
            return _first_flag(body)
        if status >= 500 or status in (408, 429):
            attempts_metric.labels(pipeline, "http_5xx" if status >= 500 else "http_4xx").inc()
            raise RetryableError(f"push answered HTTP {status}")
        attempts_metric.labels(pipeline, "http_4xx").inc()
        raise PermanentError(f"push rejected with HTTP {status}: {body[:200]!r}")


def _first_flag(body: bytes) -> bool:
    """The sink answers {"first": bool}; anything else is a delivery we cannot call a duplicate."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return True
    return not (isinstance(parsed, dict) and parsed.get("first") is False)
