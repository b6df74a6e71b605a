"""Which requests are traced: drawn once at the edge, followed behind it, and nothing instrumented
for the others (targets/tracing.py). The HTTP gate runs in front of aiohttp's real server
instrumentation, on a local provider with the services' sampler, its spans kept in memory."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import wrapt
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from targets import tracing

# The server instrumentation subclasses web.Application when instrumenting, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class _InstrumentedApplication:DeprecationWarning")

LocalTracing = tuple[TracerProvider, InMemorySpanExporter]  # conftest's `local_tracing`: (provider, spans)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLED = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
UNSAMPLED = f"00-{TRACE_ID}-00f067aa0ba902b7-00"


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (SAMPLED, True),
        (UNSAMPLED, False),
        (f"00-{TRACE_ID}-00f067aa0ba902b7-03", True),  # another flag beside sampled
        (None, None),
        ("", None),
        ("garbage", None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # all-zero trace id: invalid
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID}-00f067aa0ba902b7-zz", None),
        (f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01", None),  # the format is lowercase hex
        (f"ff-{TRACE_ID}-00f067aa0ba902b7-01", None),  # version ff is invalid
        (f"00-{TRACE_ID}-00f067aa0ba902b7-01-more", None),  # version 00 has four fields
        (f"01-{TRACE_ID}-00f067aa0ba902b7-01-more", True),  # a later version may have more
        (f" {SAMPLED}\t", True),
    ],
)
def test_sampled_reads_the_traceparents_flag(header: str | None, want: bool | None) -> None:
    assert tracing.sampled(header) is want
    # as the W3C propagator the instrumentations use reads it
    carrier = {} if header is None else {"traceparent": header}
    extracted = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    assert (extracted.trace_flags.sampled if extracted.is_valid else None) is want


@dataclass
class Metadatum:
    key: str
    value: str | bytes

    def __iter__(self) -> Iterator[str | bytes]:  # grpc.aio's metadata items unpack as (key, value)
        return iter((self.key, self.value))


@dataclass
class CallDetails:
    invocation_metadata: tuple[Metadatum, ...] | None


@pytest.mark.parametrize(
    ("metadata", "want"),
    [
        ((Metadatum("traceparent", SAMPLED),), True),
        ((Metadatum("user-agent", "grpc"), Metadatum("traceparent", SAMPLED.encode())), True),
        ((Metadatum("traceparent", UNSAMPLED),), False),
        ((Metadatum("user-agent", "grpc"),), False),  # no caller's trace: the server is no edge
        (None, False),
    ],
)
def test_the_grpc_server_traces_only_calls_of_a_sampled_trace(metadata: Any, want: bool) -> None:
    assert tracing.sampled_call(CallDetails(metadata)) is want


@dataclass
class Seen:
    instrumented: bool  # inside the handler: instrumentation not suppressed
    sampled: bool  # inside the handler: the current span is sampled


def serve(provider: TracerProvider, edge_ratio: float | None, headers: list[dict[str, str]]) -> list[Seen]:
    """Requests with these headers to an app behind the gate; what each handler saw."""
    seen: list[Seen] = []

    async def handle(_: web.Request) -> web.Response:
        current = trace.get_current_span().get_span_context()
        seen.append(Seen(is_instrumentation_enabled(), bool(current.trace_flags.sampled)))
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application(middlewares=[tracing.gate_middleware(edge_ratio, provider)])
        app.router.add_get("/", handle)
        async with TestClient(TestServer(app)) as client:
            for h in headers:
                assert (await client.get("/", headers=h)).status == 200

    asyncio.run(main())
    return seen


def test_the_edge_draws_a_request_without_context(local_tracing: LocalTracing) -> None:
    provider, exporter = local_tracing
    assert serve(provider, 1.0, [{}]) == [Seen(instrumented=True, sampled=True)]
    (server,) = exporter.get_finished_spans()
    assert server.kind is trace.SpanKind.SERVER and server.parent is None and server.context.trace_flags.sampled


def test_a_request_not_drawn_enters_no_instrumentation(
    local_tracing: LocalTracing,
) -> None:
    provider, exporter = local_tracing
    assert serve(provider, 0.0, [{}]) == [Seen(instrumented=False, sampled=False)]
    assert serve(provider, None, [{}]) == [Seen(instrumented=False, sampled=False)]  # not an edge: never drawn
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("edge_ratio", [None, 0.0, 1.0])
def test_a_callers_context_is_followed_wherever_the_gate_is(
    local_tracing: LocalTracing, edge_ratio: float | None
) -> None:
    provider, exporter = local_tracing
    seen = serve(provider, edge_ratio, [{"traceparent": SAMPLED}, {"traceparent": UNSAMPLED}])
    assert seen == [Seen(instrumented=True, sampled=True), Seen(instrumented=False, sampled=False)]
    (server,) = exporter.get_finished_spans()  # the sampled caller's; none for the unsampled one
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and server.parent.span_id == 0x00F067AA0BA902B7


def test_the_share_is_drawn_once(local_tracing: LocalTracing) -> None:
    provider, exporter = local_tracing
    state = random.getstate()  # the gate draws from random's shared generator: seeded here, put back
    random.seed(20261201)
    try:
        seen = serve(provider, 0.5, [{}] * 400)
    finally:
        random.setstate(state)
    traced = sum(s.sampled for s in seen)
    # Binomial(400, 0.5): 200 +- 10; drawn by the gate and again by a ratio sampler it would be ~100.
    assert 160 <= traced <= 240
    assert len(exporter.get_finished_spans()) == traced
    assert all(s.instrumented == s.sampled for s in seen)


def test_a_root_started_outside_a_drawn_request_is_dropped(
    local_tracing: LocalTracing,
) -> None:
    provider, exporter = local_tracing
    with provider.get_tracer("test").start_as_current_span("stray") as stray:
        assert not stray.is_recording() and not stray.get_span_context().trace_flags.sampled
    assert exporter.get_finished_spans() == ()


def test_a_span_continues_a_sampled_record_and_suppresses_under_an_unsampled_one(
    local_tracing: LocalTracing,
) -> None:
    _, exporter = local_tracing
    for header, want in ((SAMPLED, True), (UNSAMPLED, False), (None, False)):
        headers = [] if header is None else [("traceparent", header.encode())]
        with tracing.span("process reactions", context=tracing.consume_context(headers)) as span:
            assert span.get_span_context().trace_flags.sampled is want
            assert is_instrumentation_enabled() is want  # what the span runs calls untraced
        assert is_instrumentation_enabled()  # given back after the block
    (process,) = exporter.get_finished_spans()
    assert format(process.context.trace_id, "032x") == TRACE_ID


def test_the_kafka_producers_instrumentation_is_skipped_when_suppressed() -> None:
    """`_send_unless_suppressed` wraps the instrumentation's wrapper as setup() does aiokafka's send."""
    instrumented: list[object] = []

    class Producer:
        async def send(self, topic: str, headers: list[tuple[str, bytes]] | None = None) -> str:
            return topic

    async def instrumentation(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        instrumented.append(instance)
        return await wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(Producer, "send", instrumentation)
    wrapt.wrap_function_wrapper(Producer, "send", tracing._send_unless_suppressed)
    producer = Producer()

    async def main() -> tuple[str, str]:
        traced = await producer.send("reactions")
        with suppress_instrumentation():
            untraced = await producer.send("reactions.dlq", headers=[])
        return traced, untraced

    assert asyncio.run(main()) == ("reactions", "reactions.dlq")
    assert instrumented == [producer]  # the traced send only
