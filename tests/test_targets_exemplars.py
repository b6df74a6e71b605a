"""Exemplars: the services' latency histograms carry the trace id of the sampled span an observation
was made in, in the OpenMetrics exposition Prometheus scrapes; none while tracing is off, outside a
span, or in a span that is not sampled.

"Tracing on" here is what `tracing.setup` installs that matters for exemplars, without its exporter
and global provider: the module's tracer, the services' sampler, aiohttp's server instrumentation
behind the gate of an edge tracing every request (the HTTP server span a handler runs in) and its
client instrumentation, on a local provider whose spans are kept in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from dashboards.grafana import export
from protos import reaction_pb2
from targets import metrics, tracing
from targets.notification.delivery import Deliverer
from targets.pushsink.app import create_app as create_pushsink
from targets.reaction.api import create_app as create_reaction
from targets.reaction.transport import Receipt, TransportError
from targets.wire import IDEMPOTENCY_KEY_HEADER, PIPELINE_HEADER

# The server instrumentation subclasses web.Application when instrumenting, which aiohttp warns about (as it
# does in the services).
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class _InstrumentedApplication:DeprecationWarning")

REACTIONS_URL = "/v1/posts/post-1/reactions"
REACTION = {"user_id": "u1", "kind": "like"}


@pytest.fixture
def traced(
    local_tracing: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> InMemorySpanExporter:
    """And aiohttp's server instrumentation behind the gate of an edge tracing every request; yields
    the finished spans."""
    local, spans = local_tracing
    monkeypatch.setattr(tracing, "_http_gate", tracing.gate_middleware(1.0, local))
    return spans


@pytest.fixture
def client_traced(local_tracing: tuple[TracerProvider, InMemorySpanExporter]) -> Iterator[InMemorySpanExporter]:
    """And aiohttp's client instrumentation (the notification service's pushes). Not with `traced`: a
    test client's requests would then carry an unsampled context of its own, which the gate follows."""
    local, spans = local_tracing
    client = AioHttpClientInstrumentor()
    client.instrument(tracer_provider=local)
    try:
        yield spans
    finally:
        client.uninstrument()


def trace_id(span: trace.Span | ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x")


def sampled_caller() -> AbstractContextManager[trace.Span]:
    """A span of a caller's sampled trace (as one arriving over the wire), current inside the block."""
    return TracerProvider(sampler=ALWAYS_ON).get_tracer("caller").start_as_current_span("caller")


def server_span(spans: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    return span


def bucket_exemplars(registry: CollectorRegistry, histogram: str, labels: dict[str, str]) -> list[str | None]:
    """Each bucket of one child of `histogram`, as the OpenMetrics exposition writes it: its exemplar's
    trace id, or None."""
    out: list[str | None] = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == f"{histogram}_bucket" and labels.items() <= sample.labels.items():
                out.append(None if sample.exemplar is None else sample.exemplar.labels[tracing.EXEMPLAR_TRACE_ID])
    assert out, f"no {histogram} buckets with {labels}"
    return out


def traced_by(buckets: list[str | None]) -> list[str]:
    return [t for t in buckets if t is not None]


def forget(histogram: Histogram, *labels: str) -> None:
    """Drop a child and its exemplars (a bucket keeps its last exemplar until it gets a new one)."""
    histogram.remove(*labels)


# -- the helper ------------------------------------------------------------------------------------


def test_the_exemplar_is_the_current_sampled_spans_trace_id(traced: InMemorySpanExporter) -> None:
    assert tracing.exemplar() is None  # no current span
    with tracing.span("work") as untraced:  # no sampled trace to continue: no span
        assert not untraced.get_span_context().is_valid and tracing.exemplar() is None
    with sampled_caller() as caller, tracing.span("work") as current:
        exemplar = tracing.exemplar()
        assert exemplar == {"trace_id": trace_id(current)} and trace_id(current) == trace_id(caller)
        assert len(exemplar["trace_id"]) == 32 and int(exemplar["trace_id"], 16) != 0
    assert tracing.exemplar() is None  # the span ended
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with unsampled.start_as_current_span("dropped") as dropped:
        assert dropped.get_span_context().is_valid and not dropped.get_span_context().trace_flags.sampled
        assert tracing.exemplar() is None  # its trace is never exported: nothing to link to


def test_tracing_off_gives_no_exemplar_without_touching_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing.server_middlewares() == []
    sampled = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")

    def untouchable() -> trace.Span:
        raise AssertionError("tracing off read the current span")

    with sampled.start_as_current_span("someone else's span"):
        monkeypatch.setattr(trace, "get_current_span", untouchable)
        assert tracing.exemplar() is None


def test_the_exemplar_label_is_the_one_grafana_links_to_jaeger() -> None:
    assert tracing.EXEMPLAR_TRACE_ID == export.EXEMPLAR_TRACE_ID_LABEL


# -- the reaction service --------------------------------------------------------------------------


class FakeTransport:
    def __init__(self, error: TransportError | None = None) -> None:
        self.error = error

    @property
    def pipeline(self) -> str:
        return "sync"

    async def start(self) -> None:
        pass

    async def send(self, event: reaction_pb2.ReactionEvent) -> Receipt:
        if self.error is not None:
            raise self.error
        return Receipt(200, "delivered")

    async def close(self) -> None:
        pass

    def ready(self) -> bool:
        return True


def post_reaction(transport: FakeTransport) -> int:
    async def main() -> int:
        app = create_reaction(transport, server_url="http://test", health=dict)
        async with TestClient(TestServer(app)) as client:
            response = await client.post(REACTIONS_URL, json=REACTION)
            return response.status

    return asyncio.run(main())


def reaction_buckets(code: str, outcome: str) -> tuple[list[str | None], list[str | None]]:
    """(request duration, transport send duration) buckets of pipeline sync."""
    registry = metrics.REACTION_REGISTRY
    return (
        bucket_exemplars(registry, metrics.REACTION_REQUEST_DURATION_SECONDS, {"pipeline": "sync", "code": code}),
        bucket_exemplars(
            registry, metrics.REACTION_TRANSPORT_SEND_DURATION_SECONDS, {"pipeline": "sync", "outcome": outcome}
        ),
    )


@pytest.mark.parametrize(
    ("error", "code", "outcome"), [(None, "200", "ok"), (TransportError(503, "unavailable"), "503", "error")]
)
def test_reaction_latencies_carry_the_requests_trace(
    traced: InMemorySpanExporter, error: TransportError | None, code: str, outcome: str
) -> None:
    forget(metrics.reaction_request_duration, "sync", code)
    forget(metrics.reaction_transport_send_duration, "sync", outcome)
    assert post_reaction(FakeTransport(error)) == int(code)
    request, send = reaction_buckets(code, outcome)
    expected = trace_id(server_span(traced))
    assert traced_by(request) == [expected]  # one observation: one bucket's exemplar
    assert traced_by(send) == [expected]


def test_reaction_latencies_carry_no_exemplar_while_tracing_is_off() -> None:
    forget(metrics.reaction_request_duration, "sync", "200")
    forget(metrics.reaction_transport_send_duration, "sync", "ok")
    assert post_reaction(FakeTransport()) == 200
    request, send = reaction_buckets("200", "ok")
    assert request[-1] is None and send[-1] is None  # +Inf: observed, without an exemplar
    assert traced_by(request) == [] and traced_by(send) == []


# -- the notification service ----------------------------------------------------------------------


@dataclass
class Delivered:
    caller: str | None  # the trace id of the caller's span it was delivered in
    traceparent: str | None  # what the sink got


def deliver(*, in_caller_span: bool = False) -> Delivered:
    """One delivery to a sink that takes it; with `in_caller_span`, inside a sampled span of the
    caller's (the gRPC server's, the Kafka record's)."""
    got: list[str | None] = []

    async def push(request: web.Request) -> web.Response:
        got.append(request.headers.get("traceparent"))
        return web.json_response({"first": True})

    async def main() -> str | None:
        sink = web.Application()
        sink.router.add_post("/push", push)
        event = reaction_pb2.ReactionEvent(reaction_id="r-1", post_id="p", user_id="u", created_unix_nanos=1)
        async with TestServer(sink) as server:
            deliverer = Deliverer(str(server.make_url("/push")))
            await deliverer.start()
            try:
                if not in_caller_span:
                    assert (await deliverer.deliver(event, pipeline="async")).ok
                    return None
                with sampled_caller() as caller:
                    assert (await deliverer.deliver(event, pipeline="async")).ok
                return trace_id(caller)
            finally:
                await deliverer.close()

    caller = asyncio.run(main())
    (traceparent,) = got
    return Delivered(caller, traceparent)


def delivery_buckets() -> list[str | None]:
    labels = {"pipeline": "async", "outcome": "delivered"}
    return bucket_exemplars(metrics.NOTIFICATION_REGISTRY, metrics.NOTIFICATION_DELIVERY_DURATION_SECONDS, labels)


def test_the_delivery_duration_carries_its_spans_trace(client_traced: InMemorySpanExporter) -> None:
    # Observed after the delivery's span ended, with no other span around: the exemplar was taken inside.
    forget(metrics.notification_delivery_duration, "async", "delivered")
    delivered = deliver(in_caller_span=True)
    (span,) = [s for s in client_traced.get_finished_spans() if s.name == "deliver push"]
    (post,) = [s for s in client_traced.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert delivered.caller is not None and trace_id(span) == trace_id(post) == delivered.caller
    assert post.parent is not None and span.context is not None and post.parent.span_id == span.context.span_id
    assert tracing.sampled(delivered.traceparent) and delivered.caller in (delivered.traceparent or "")
    assert traced_by(delivery_buckets()) == [delivered.caller]

    # Outside a sampled trace the delivery is not traced: no span, and the client instrumentation is
    # not entered (it would send the sink an unsampled context).
    client_traced.clear()
    forget(metrics.notification_delivery_duration, "async", "delivered")
    assert deliver().traceparent is None
    assert client_traced.get_finished_spans() == ()
    assert traced_by(delivery_buckets()) == []


def test_the_delivery_duration_carries_no_exemplar_while_tracing_is_off() -> None:
    forget(metrics.notification_delivery_duration, "async", "delivered")
    deliver()
    buckets = delivery_buckets()
    assert buckets[-1] is None and traced_by(buckets) == []


# -- the push sink ---------------------------------------------------------------------------------


def push(headers: dict[str, str]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(create_pushsink())) as client:
            response = await client.post(
                "/push",
                json={"created_unix_nanos": 1},
                headers={IDEMPOTENCY_KEY_HEADER: "r-1", PIPELINE_HEADER: "async", **headers},
            )
            assert response.status == 200 and (await response.json()) == {"first": True}

    asyncio.run(main())


def e2e_buckets() -> list[str | None]:
    return bucket_exemplars(
        metrics.PUSHSINK_REGISTRY, metrics.PUSHSINK_END_TO_END_LATENCY_SECONDS, {"pipeline": "async"}
    )


def test_the_end_to_end_latency_carries_the_reactions_trace(traced: InMemorySpanExporter) -> None:
    # The push arrives with the reaction's trace context (the notification service's HTTP client).
    reaction_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    forget(metrics.pushsink_end_to_end_latency, "async")
    push({"traceparent": f"00-{reaction_trace}-00f067aa0ba902b7-01"})
    assert trace_id(server_span(traced)) == reaction_trace
    assert traced_by(e2e_buckets()) == [reaction_trace]


def test_the_end_to_end_latency_carries_no_exemplar_while_tracing_is_off() -> None:
    forget(metrics.pushsink_end_to_end_latency, "async")
    push({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    buckets = e2e_buckets()
    assert buckets[-1] is None and traced_by(buckets) == []
