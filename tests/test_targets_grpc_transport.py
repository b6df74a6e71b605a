"""The sync transports against an in-process gRPC server: status mapping, gRPC-native retries with a
per-attempt timeout, and the circuit breaker failing fast."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from protos import reaction_pb2, reaction_pb2_grpc
from targets.reaction.breaker import BreakerSettings, BreakerState, CircuitBreaker
from targets.reaction.grpc_transport import GrpcTransport, RetrySettings, channel_options, service_config
from targets.reaction.transport import TransportError

Context = grpc.aio.ServicerContext[reaction_pb2.ReactionEvent, reaction_pb2.NotifyReply]
# One scripted behaviour per call: a status code to abort with, a delay (seconds) before answering
# OK, or "dup" for a duplicate reply. Past the script: OK.
Step = grpc.StatusCode | float | str


class ScriptedNotification(reaction_pb2_grpc.NotificationServicer):
    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def Notify(self, request: reaction_pb2.ReactionEvent, context: Context) -> reaction_pb2.NotifyReply:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        self.calls.append((request.reaction_id, metadata))
        step = self.script.pop(0) if self.script else None
        if isinstance(step, grpc.StatusCode):
            await context.abort(step, "scripted")
        if isinstance(step, float):
            await asyncio.sleep(step)
        return reaction_pb2.NotifyReply(delivered=True, duplicate=step == "dup")


def event(rid: str = "r-1") -> reaction_pb2.ReactionEvent:
    return reaction_pb2.ReactionEvent(reaction_id=rid, post_id="p", user_id="u", kind=reaction_pb2.LIKE)


def run(script: list[Step], test: Callable[[str, ScriptedNotification], Awaitable[None]]) -> ScriptedNotification:
    servicer = ScriptedNotification(script)

    async def main() -> None:
        server = grpc.aio.server()
        reaction_pb2_grpc.add_NotificationServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            await test(f"127.0.0.1:{port}", servicer)
        finally:
            await server.stop(None)

    asyncio.run(main())
    return servicer


async def send(transport: GrpcTransport, rid: str = "r-1") -> Any:
    """The receipt, or the TransportError raised."""
    try:
        return await transport.send(event(rid))
    except TransportError as exc:
        return exc


def sync_transport(target: str, deadline: float = 1.0) -> GrpcTransport:
    return GrpcTransport(target, pipeline="sync", deadline=deadline)


def test_service_config_is_valid_retry_policy() -> None:
    config = service_config(RetrySettings(max_attempts=4, attempt_timeout=0.25, initial_backoff=0.05))
    policy = config["methodConfig"][0]["retryPolicy"]
    assert config["methodConfig"][0]["name"] == [{"service": "syncasync.v1.Notification"}]
    assert policy["maxAttempts"] == 4
    assert (policy["initialBackoff"], policy["perAttemptRecvTimeout"]) == ("0.05s", "0.25s")
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}
    options = dict(channel_options(RetrySettings()))
    assert options["grpc.enable_retries"] == 1
    assert json.loads(options["grpc.service_config"]) == service_config(RetrySettings())
    assert dict(channel_options(None))["grpc.enable_retries"] == 0


def test_sync_delivered_and_duplicate() -> None:
    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = sync_transport(target)
        await transport.start()
        try:
            first, second = await send(transport), await send(transport)
        finally:
            await transport.close()
        assert (first.http_status, first.status) == (200, "delivered")
        assert (second.http_status, second.status) == (200, "duplicate")

    servicer = run([0.0, "dup"], test)
    assert servicer.calls[0][1]["x-pipeline"] == "sync"


@pytest.mark.parametrize(
    ("step", "status", "reason"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503, "resource_exhausted"),
        (grpc.StatusCode.INTERNAL, 502, "upstream_error"),
        (grpc.StatusCode.INVALID_ARGUMENT, 502, "upstream_error"),
        (2.0, 504, "deadline_exceeded"),
    ],
)
def test_sync_maps_grpc_status_to_http(step: Step, status: int, reason: str) -> None:
    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = sync_transport(target, deadline=0.3)
        await transport.start()
        try:
            error = await send(transport)
        finally:
            await transport.close()
        assert isinstance(error, TransportError)
        assert (error.http_status, error.reason) == (status, reason)  # 504: before the 2 s step ended

    servicer = run([step], test)
    assert len(servicer.calls) == 1, "plain sync must not retry"


def test_sync_unreachable_fails_fast_with_503() -> None:
    async def main() -> None:
        transport = sync_transport("127.0.0.1:9")
        await transport.start()
        try:
            error = await send(transport)
        finally:
            await transport.close()
        # 503 (unavailable) rather than 504: it failed at once instead of waiting out its deadline
        assert isinstance(error, TransportError) and (error.http_status, error.reason) == (503, "unavailable")

    asyncio.run(main())


def resilient(target: str, breaker: CircuitBreaker | None = None, **retry: Any) -> GrpcTransport:
    settings = RetrySettings(**{"attempt_timeout": 0.2, "initial_backoff": 0.01, "max_backoff": 0.02, **retry})
    return GrpcTransport(target, pipeline="sync-resilient", deadline=1.0, retry=settings, breaker=breaker)


def test_resilient_retries_unavailable() -> None:
    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = resilient(target, max_attempts=3)
        await transport.start()
        try:
            receipt = await send(transport)
        finally:
            await transport.close()
        assert receipt.http_status == 200

    servicer = run([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE], test)
    assert len(servicer.calls) == 3
    assert servicer.calls[0][1]["x-pipeline"] == "sync-resilient"


def test_resilient_does_not_retry_other_codes() -> None:
    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = resilient(target)
        await transport.start()
        try:
            error = await send(transport)
        finally:
            await transport.close()
        assert isinstance(error, TransportError) and error.http_status == 502

    servicer = run([grpc.StatusCode.INTERNAL], test)
    assert len(servicer.calls) == 1


def test_resilient_abandons_a_slow_attempt_and_retries_within_the_deadline() -> None:
    async def test(target: str, servicer: ScriptedNotification) -> None:
        # the second attempt has the deadline's other half: room on a loaded machine
        transport = resilient(target, attempt_timeout=0.5)
        await transport.start()
        started = time.monotonic()
        try:
            receipt = await send(transport)
        finally:
            await transport.close()
        assert receipt.http_status == 200
        assert time.monotonic() - started >= 0.5  # the first attempt was waited for, then abandoned

    servicer = run([5.0], test)
    assert len(servicer.calls) == 2


def test_resilient_breaker_opens_and_fails_fast() -> None:
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=2, open_seconds=60))

    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = resilient(target, breaker=breaker, max_attempts=2)
        await transport.start()
        try:
            first, second = await send(transport), await send(transport)
            calls = len(servicer.calls)
            third = await send(transport)
        finally:
            await transport.close()
        assert (first.http_status, second.http_status) == (503, 503)
        assert breaker.state is BreakerState.OPEN
        assert (third.http_status, third.reason) == (503, "breaker_open")
        assert third.retry_after is not None and third.retry_after > 50
        assert len(servicer.calls) == calls, "an open breaker must not call"

    run([grpc.StatusCode.UNAVAILABLE] * 4, test)


def test_resilient_breaker_streak_is_reset_by_a_success() -> None:
    # A 502 (upstream misbehaving) counts as a failure; a success in between resets the streak.
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=2))

    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = resilient(target, breaker=breaker)
        await transport.start()
        try:
            for _ in range(3):
                await send(transport)
        finally:
            await transport.close()
        assert breaker.state is BreakerState.CLOSED

    run([grpc.StatusCode.INTERNAL, 0.0, grpc.StatusCode.INTERNAL], test)


async def _poll_state(until: Callable[[], bool], polls: int = 200) -> bool:
    for _ in range(polls):
        if until():
            return True
        await asyncio.sleep(0.05)
    return until()


def test_ready_only_once_connected_and_asking_dials() -> None:
    async def test(target: str, servicer: ScriptedNotification) -> None:
        transport = sync_transport(target)
        await transport.start()
        try:
            assert transport._channel is not None
            idle = transport._channel.get_state(try_to_connect=False)
            assert idle == grpc.ChannelConnectivity.IDLE and not transport.ready()  # not yet dialled
            assert await _poll_state(transport.ready), "never connected without a request"
            assert servicer.calls == []
        finally:
            await transport.close()
        assert not transport.ready()

    run([], test)


def test_not_ready_when_the_peer_is_unreachable() -> None:
    async def main() -> None:
        transport = sync_transport("127.0.0.1:9")
        await transport.start()
        try:
            assert transport._channel is not None
            channel = transport._channel
            transport.ready()  # dials
            failed = await _poll_state(lambda: channel.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE)
            assert failed and not transport.ready()
        finally:
            await transport.close()

    asyncio.run(main())
