"""Notification.Notify end to end in-process: reaction's gRPC transport -> notification gRPC server ->
the shared delivery module -> a fake push sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from protos import reaction_pb2
from targets import metrics
from targets.notification.delivery import Deliverer, RetryPolicy
from targets.notification.grpc_server import NotificationService, start_grpc_server
from targets.reaction.grpc_transport import GrpcTransport
from targets.reaction.transport import Receipt, TransportError


class Sink:
    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.seen: set[str] = set()

    async def push(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({}, status=self.status)
        key = request.headers["Idempotency-Key"]
        first = key not in self.seen
        self.seen.add(key)
        return web.json_response({"first": first})


def run(
    sink: Sink,
    test: Callable[[GrpcTransport], Awaitable[None]],
    *,
    deadline: float = 1.0,
    policy: RetryPolicy | None = None,
) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_post("/push", sink.push)
        async with TestServer(app) as http:
            deliverer = Deliverer(str(http.make_url("/push")), policy=policy or RetryPolicy(initial_backoff=0.01))
            await deliverer.start()
            server, port = await start_grpc_server(NotificationService(deliverer, default_deadline=5.0), "127.0.0.1", 0)
            transport = GrpcTransport(f"127.0.0.1:{port}", pipeline="sync", deadline=deadline)
            await transport.start()
            try:
                await test(transport)
            finally:
                await transport.close()
                await server.stop(None)
                await deliverer.close()

    asyncio.run(main())


def event(rid: str) -> reaction_pb2.ReactionEvent:
    return reaction_pb2.ReactionEvent(reaction_id=rid, post_id="p", user_id="u", kind=reaction_pb2.WOW)


def grpc_count(code: str) -> float:
    value = metrics.NOTIFICATION_REGISTRY.get_sample_value(
        "notification_grpc_requests_total", {"pipeline": "sync", "code": code}
    )
    return value or 0.0


def test_notify_delivers_then_reports_duplicate() -> None:
    async def test(transport: GrpcTransport) -> None:
        ok = grpc_count("OK")
        assert await transport.send(event("n-1")) == Receipt(200, "delivered")
        assert await transport.send(event("n-1")) == Receipt(200, "duplicate")
        assert grpc_count("OK") == ok + 2  # labelled by the caller's x-pipeline metadata

    run(Sink(), test)


def test_sink_failing_becomes_unavailable_503() -> None:
    async def test(transport: GrpcTransport) -> None:
        unavailable = grpc_count("UNAVAILABLE")
        try:
            await transport.send(event("n-2"))
        except TransportError as exc:
            assert (exc.http_status, exc.reason) == (503, "unavailable")
            assert "push failed after 3 attempt(s)" in exc.detail
        else:
            raise AssertionError("expected a TransportError")
        assert grpc_count("UNAVAILABLE") == unavailable + 1

    run(Sink(status=503), test, policy=RetryPolicy(max_attempts=3, initial_backoff=0.01))


def test_sink_rejecting_becomes_internal_502() -> None:
    async def test(transport: GrpcTransport) -> None:
        try:
            await transport.send(event("n-3"))
        except TransportError as exc:
            assert exc.http_status == 502
        else:
            raise AssertionError("expected a TransportError")

    run(Sink(status=400), test)


def test_slow_sink_answers_within_the_callers_deadline() -> None:
    async def test(transport: GrpcTransport) -> None:
        started = time.monotonic()
        try:
            await transport.send(event("n-4"))
        except TransportError as exc:
            # The server gives up just before the caller's deadline (UNAVAILABLE) or the caller's
            # deadline fires first: never a hang.
            assert exc.http_status in (503, 504)
        else:
            raise AssertionError("expected a TransportError")
        assert time.monotonic() - started < 3.0  # answered before the sink would have

    run(Sink(delay=3.0), test, deadline=0.4)


def test_empty_reaction_id_is_invalid_argument() -> None:
    async def test(transport: GrpcTransport) -> None:
        try:
            await transport.send(event(""))
        except TransportError as exc:
            assert exc.http_status == 502
            assert "INVALID_ARGUMENT" in exc.detail
        else:
            raise AssertionError("expected a TransportError")

    run(Sink(), test)
