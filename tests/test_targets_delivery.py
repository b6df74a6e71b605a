"""The notification delivery module against a fake push sink: retries, backoff, deadline, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from protos import reaction_pb2
from targets import metrics
from targets.notification.delivery import Deliverer, DeliveryOutcome, RetryPolicy, push_payload


class FakeSink:
    """Answers each POST /push with the next scripted status (then 200), optionally after a delay."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay = delay
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.seen: set[str] = set()
        self.concurrent = 0
        self.max_concurrent = 0

    async def push(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.statuses.pop(0) if self.statuses else 200
            if status != 200:
                return web.json_response({"error": "scripted"}, status=status)
            key = request.headers["Idempotency-Key"]
            first = key not in self.seen
            self.seen.add(key)
            return web.json_response({"first": first})
        finally:
            self.concurrent -= 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push", self.push)
        return app


class Sleeps:
    """A fake sleep recording the backoff tenacity asks for (and not waiting)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def event(rid: str = "r-1") -> reaction_pb2.ReactionEvent:
    return reaction_pb2.ReactionEvent(
        reaction_id=rid, post_id="p", user_id="u", kind=reaction_pb2.LOVE, created_unix_nanos=123
    )


def run(
    sink: FakeSink,
    test: Callable[[Deliverer], Awaitable[None]],
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    max_concurrency: int = 8,
) -> None:
    async def main() -> None:
        async with TestServer(sink.app()) as server:
            kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
            deliverer = Deliverer(
                str(server.make_url("/push")), max_concurrency=max_concurrency, policy=policy, **kwargs
            )
            await deliverer.start()
            try:
                await test(deliverer)
            finally:
                await deliverer.close()

    asyncio.run(main())


def counter(name: str, labels: dict[str, str]) -> float:
    return metrics.NOTIFICATION_REGISTRY.get_sample_value(name, labels) or 0.0


def test_delivers_with_idempotency_key_and_payload() -> None:
    sink = FakeSink()

    async def test(deliverer: Deliverer) -> None:
        result = await deliverer.deliver(event(), pipeline="sync")
        assert (result.outcome, result.attempts, result.ok) == (DeliveryOutcome.DELIVERED, 1, True)
        again = await deliverer.deliver(event(), pipeline="sync")
        assert again.outcome is DeliveryOutcome.DUPLICATE and again.ok

    run(sink, test)
    headers, payload = sink.requests[0]
    assert headers["Idempotency-Key"] == "r-1"
    assert headers["X-Pipeline"] == "sync"
    assert (
        payload
        == push_payload(event())
        == {
            "reaction_id": "r-1",
            "post_id": "p",
            "user_id": "u",
            "kind": "love",
            "created_unix_nanos": 123,
        }
    )


def test_retries_5xx_with_growing_jittered_backoff() -> None:
    sink = FakeSink([503, 500, 502])
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=0.25)

    async def test(deliverer: Deliverer) -> None:
        retries = counter("notification_delivery_retries_total", {"pipeline": "async"})
        five_xx = counter("notification_delivery_attempts_total", {"pipeline": "async", "result": "http_5xx"})
        result = await deliverer.deliver(event(), pipeline="async")
        assert (result.outcome, result.attempts) == (DeliveryOutcome.DELIVERED, 4)
        assert counter("notification_delivery_retries_total", {"pipeline": "async"}) == retries + 3
        after = counter("notification_delivery_attempts_total", {"pipeline": "async", "result": "http_5xx"})
        assert after == five_xx + 3

    run(sink, test, policy, sleeps)
    assert len(sleeps.calls) == 3
    # Full jitter: uniform in [0, min(initial * 2^n, max)].
    for n, slept in enumerate(sleeps.calls):
        assert 0 <= slept <= min(0.1 * 2**n, 0.25)


def test_gives_up_after_max_attempts() -> None:
    sink = FakeSink([500] * 10)
    sleeps = Sleeps()

    async def test(deliverer: Deliverer) -> None:
        failed = counter("notification_deliveries_total", {"pipeline": "sync", "outcome": "failed"})
        result = await deliverer.deliver(event(), pipeline="sync")
        assert (result.outcome, result.attempts, result.permanent) == (DeliveryOutcome.FAILED, 3, False)
        assert result.error is not None and "500" in result.error
        assert counter("notification_deliveries_total", {"pipeline": "sync", "outcome": "failed"}) == failed + 1

    run(sink, test, RetryPolicy(max_attempts=3), sleeps)
    assert len(sink.requests) == 3


def test_4xx_is_permanent_and_not_retried() -> None:
    sink = FakeSink([400])

    async def test(deliverer: Deliverer) -> None:
        result = await deliverer.deliver(event(), pipeline="async")
        assert (result.outcome, result.attempts, result.permanent) == (DeliveryOutcome.FAILED, 1, True)

    run(sink, test, RetryPolicy(max_attempts=5), Sleeps())
    assert len(sink.requests) == 1


def test_429_is_retried() -> None:
    sink = FakeSink([429])

    async def test(deliverer: Deliverer) -> None:
        result = await deliverer.deliver(event(), pipeline="async")
        assert (result.outcome, result.attempts) == (DeliveryOutcome.DELIVERED, 2)

    run(sink, test, RetryPolicy(max_attempts=5), Sleeps())


def test_slow_sink_times_out_per_attempt_then_succeeds() -> None:
    sink = FakeSink(delay=0.0)
    sink_delays = [2.0]  # only the first request is slow

    original = sink.push

    async def push(request: web.Request) -> web.Response:
        sink.delay = sink_delays.pop(0) if sink_delays else 0.0
        return await original(request)

    sink.push = push  # type: ignore[method-assign]

    async def test(deliverer: Deliverer) -> None:
        result = await deliverer.deliver(event(), pipeline="sync")
        assert (result.outcome, result.attempts) == (DeliveryOutcome.DELIVERED, 2)

    # 1 s an attempt: the slow one times out, the fast one has room on a loaded machine
    run(sink, test, RetryPolicy(max_attempts=3, attempt_timeout=1.0, initial_backoff=0.01))


def test_deadline_bounds_the_whole_delivery() -> None:
    sink = FakeSink(delay=5.0)

    async def test(deliverer: Deliverer) -> None:
        loop = asyncio.get_running_loop()
        result = await deliverer.deliver(event(), pipeline="sync", deadline=loop.time() + 0.3)
        # cut by the deadline inside the first attempt, long before its own 2 s timeout would end it
        assert (result.outcome, result.attempts, result.error) == (DeliveryOutcome.FAILED, 1, "deadline exceeded")

    run(sink, test, RetryPolicy(max_attempts=5, attempt_timeout=2.0, initial_backoff=0.01))


def test_no_attempt_starts_when_backoff_would_pass_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("random.uniform", lambda low, high: high)  # jitter drawn at its maximum
    sink = FakeSink([500] * 10)
    sleeps = Sleeps()

    async def test(deliverer: Deliverer) -> None:
        loop = asyncio.get_running_loop()
        # A 1 s backoff against a 0.5 s deadline: one attempt, then no pointless sleep.
        result = await deliverer.deliver(event(), pipeline="sync", deadline=loop.time() + 0.5)
        assert (result.outcome, result.attempts) == (DeliveryOutcome.FAILED, 1)

    run(sink, test, RetryPolicy(max_attempts=5, initial_backoff=1.0, max_backoff=1.0), sleeps)
    assert sleeps.calls == []


def test_unreachable_sink_is_a_retryable_failure() -> None:
    async def main() -> None:
        deliverer = Deliverer("http://127.0.0.1:9/push", policy=RetryPolicy(max_attempts=2), sleep=Sleeps())
        await deliverer.start()
        try:
            result = await deliverer.deliver(event(), pipeline="async")
        finally:
            await deliverer.close()
        assert (result.outcome, result.attempts, result.permanent) == (DeliveryOutcome.FAILED, 2, False)

    asyncio.run(main())


def test_concurrency_is_bounded() -> None:
    sink = FakeSink(delay=0.05)

    async def test(deliverer: Deliverer) -> None:
        in_flight_seen: list[float] = []

        async def watch() -> None:
            for _ in range(5):
                await asyncio.sleep(0.02)
                value = counter("notification_deliveries_in_flight", {"pipeline": "async"})
                in_flight_seen.append(value)

        results, _ = await asyncio.gather(
            asyncio.gather(*(deliverer.deliver(event(f"r-{i}"), pipeline="async") for i in range(20))), watch()
        )
        assert all(r.outcome is DeliveryOutcome.DELIVERED for r in results)
        assert max(in_flight_seen) == 20  # all started, only 3 at the sink at once
        assert counter("notification_deliveries_in_flight", {"pipeline": "async"}) == 0

    run(sink, test, max_concurrency=3)
    assert sink.max_concurrent == 3
