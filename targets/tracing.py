"""OpenTelemetry for the three services: one `setup` per process, and spans only while it is on.

`--tracing off` installs nothing: no tracer provider, no exporter, no instrumentation (the
libraries' functions stay unpatched) and `span()` hands out a shared no-op span without touching
the OpenTelemetry context, so "off" measures the services as they were before tracing.

Export is OTLP over HTTP/protobuf (`requests` in the batch processor's thread), not OTLP/gRPC: the
gRPC exporter would share grpcio's core (its threads and polling) with the sync pipeline under
test, and its own channel would be one more thing the gRPC client instrumentation has to skip.

Trace context travels as W3C `traceparent`: in gRPC metadata (grpc instrumentation), in HTTP
headers (aiohttp client/server) and in Kafka record headers (aiokafka instrumentation on send;
`consume_context` reads them back so a record's "process" span is a child of its producer's span).

Which requests are traced is drawn once, where a request enters the system without a trace context
(the reaction API: `setup(..., edge=True)`), and a request not drawn runs with instrumentation
suppressed: no span is started, no attribute gathered, no context sent on. Entered for every request,
the instrumentations cost the services 1.2-1.7x their CPU on requests they did not keep (run
20261130-232712-capacity, PERFORMANCE.md). The services behind the edge trace a request only when its
caller's context says it was sampled (`gate_middleware`, `sampled_call`, `span`). What an untraced
request still passes through: the gRPC client interceptor, which returns at once but costs grpc.aio
an extra task per call (~20 us), and aiohttp's client trace hooks, which return at once.

Latency observations carry the current sampled span's trace id as an OpenMetrics exemplar
(`exemplar()`: None while tracing is off, so `observe(..., exemplar=None)` is the untraced path).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation, unwrap
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind

__all__ = ["SpanKind"]  # re-exported: the services name span kinds without importing OpenTelemetry

from facts import spans, topology

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Middleware
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

# Our own attributes and the exemplar label (facts/spans.py: the harness and Grafana read them too).
REACTION_ID, PUSH_FIRST, EXEMPLAR_TRACE_ID = spans.REACTION_ID, spans.PUSH_FIRST, spans.EXEMPLAR_TRACE_ID
PIPELINE = "reaction.pipeline"

# The instrumentations read these once, when instrumenting: the stable HTTP conventions
# (http.request.method, http.response.status_code, url.path) instead of the 1.20 ones, and no
# spans for scrapes, health probes and the harness' reads of the sink.
_UNTRACED_PATHS = (
    *(topology.METRICS_PATH, topology.HEALTHZ_PATH, topology.OPENAPI_PATH),
    *(topology.SINK_STATS_PATH, topology.SINK_LEDGER_PATH, topology.SINK_RESET_PATH, topology.SINK_DUMP_PATH),
)
_ENVIRONMENT = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
    "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS": ",".join(_UNTRACED_PATHS),
}

INSTRUMENTS = ("http-server", "http-client", "grpc-client", "grpc-server", "kafka")

TRACEPARENT = "traceparent"  # W3C trace context: "00-{trace id}-{parent id}-{flags}", flags 01 = sampled

_tracer: trace.Tracer | None = None  # set while tracing is on
_provider: TracerProvider | None = None
_http_gate: Middleware | None = None  # set while tracing is on and the aiohttp server is instrumented
# Set in the context of a request the edge drew for a trace: the only roots `DrawnAtTheEdge` samples.
_DRAWN = otel_context.create_key("sync-async-bench.drawn")


def ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("tracing (OpenTelemetry)")
    g.add_argument("--tracing", choices=("on", "off"), default="on", help="off: no exporter, no instrumentation")
    g.add_argument(
        "--trace-sample-ratio",
        type=ratio,
        default=1.0,
        help="share of reactions traced, drawn where a request enters without a trace context (the reaction "
        "API); behind it a service traces a request only when its caller did",
    )
    g.add_argument(
        "--otlp-endpoint",
        default=None,
        help="OTLP/HTTP base URL; spans go to <endpoint>/v1/traces (default: Jaeger's OTLP port on its topology host)",
    )


@dataclass(frozen=True)
class Settings:
    enabled: bool
    sample_ratio: float
    otlp_endpoint: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        # Resolved here, not as the flag's default: the host follows SYNC_ASYNC_BENCH_HOSTS (compose).
        endpoint = args.otlp_endpoint or topology.url(topology.JAEGER_OTLP_HTTP_PORT)
        return cls(args.tracing == "on", args.trace_sample_ratio, endpoint)


def setup(service: str, settings: Settings, instruments: Sequence[str], *, edge: bool = False) -> None:
    """Install the SDK and the given instrumentations (before any app, channel, server or client exists).

    `edge`: this service's HTTP server is where requests enter the system; one that comes without a
    trace context is traced with probability `settings.sample_ratio`. Elsewhere such a request is not.
    """
    global _tracer, _provider
    if not settings.enabled:
        log.info("tracing off")
        return
    unknown = set(instruments) - set(INSTRUMENTS)
    if unknown:
        raise ValueError(f"unknown instruments {sorted(unknown)}")
    for key, value in _ENVIRONMENT.items():
        os.environ.setdefault(key, value)

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    resource = Resource.create({"service.name": service, "service.instance.id": f"{service}-{os.getpid()}"})
    provider = TracerProvider(resource=resource, sampler=ParentBased(DrawnAtTheEdge()))
    provider.add_span_processor(SemconvNames())
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces", timeout=5)
    # A surge is ~500 reactions/s x up to 4 spans per process; the default queue (2048, flushed every
    # 5 s) would drop spans, and a short delay lets the harness read a cell's traces soon after it.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=65_536, schedule_delay_millis=500, max_export_batch_size=1024)
    )
    trace.set_tracer_provider(provider)
    _provider = provider
    _instrument(instruments, edge_ratio=settings.sample_ratio if edge else None)
    _tracer = trace.get_tracer("targets", schema_url="https://opentelemetry.io/schemas/1.27.0")
    log.info(
        "tracing on: %s, sample ratio %g, OTLP/HTTP to %s",
        ", ".join(instruments),
        settings.sample_ratio,
        settings.otlp_endpoint,
    )


def _instrument(instruments: Sequence[str], *, edge_ratio: float | None) -> None:
    global _http_gate
    if "http-server" in instruments:
        _http_gate = gate_middleware(edge_ratio)
    if "http-client" in instruments:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

        AioHttpClientInstrumentor().instrument()
    if "grpc-client" in instruments:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient

        GrpcAioInstrumentorClient().instrument(request_hook=_grpc_request_hook)
    if "grpc-server" in instruments:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer

        GrpcAioInstrumentorServer(filter_=sampled_call).instrument()
    if "kafka" in instruments:
        import aiokafka
        import wrapt
        from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

        AIOKafkaInstrumentor().instrument()
        # The consumer's span is ours ("process", a child of the record's producer span, `span`): the
        # instrumentation's would start a trace of every poll and a span per record, kept or not.
        unwrap(aiokafka.AIOKafkaConsumer, "getone")
        unwrap(aiokafka.AIOKafkaConsumer, "getmany")
        # Its PRODUCER span ignores suppression: unsampled records are sent as they would be untraced.
        wrapt.wrap_function_wrapper(aiokafka.AIOKafkaProducer, "send", _send_unless_suppressed)


def _send_unless_suppressed(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # `wrapped` is the instrumentation's wrapper; what it wraps is aiokafka's send (itself, should the
    # instrumentation have declined to instrument).
    send = wrapped if is_instrumentation_enabled() else getattr(wrapped, "__wrapped__", wrapped)
    return send(*args, **kwargs)


# As the W3C propagator reads it: version 00 has exactly these four fields, a later one may add more,
# ff is invalid, and so are all-zero ids.
_TRACEPARENT = re.compile(
    r"^\s*(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})"
    r"(?P<rest>-.*)?\s*$"
)


def sampled(traceparent: str | None) -> bool | None:
    """Whether a W3C `traceparent` says its trace is sampled; None without a valid one (what the
    propagator would not extract: the request is then one without a trace context)."""
    match = _TRACEPARENT.match(traceparent or "")
    if match is None or match["version"] == "ff" or (match["version"] == "00" and match["rest"]):
        return None
    if not int(match["trace"], 16) or not int(match["parent"], 16):
        return None
    return bool(int(match["flags"], 16) & 1)


def sampled_call(details: Any) -> bool:
    """The gRPC server instrumentation's filter: only calls whose caller's trace is sampled."""
    for key, value in details.invocation_metadata or ():
        if key == TRACEPARENT:
            return sampled(value if isinstance(value, str) else value.decode("latin-1")) is True
    return False


class DrawnAtTheEdge(Sampler):
    """Roots: sampled when the edge drew the request they start in (`_DRAWN` in the current context),
    dropped otherwise, so the share is drawn once, by the gate, and a stray root is never kept."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if otel_context.get_value(_DRAWN):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "DrawnAtTheEdge"


def gate_middleware(edge_ratio: float | None, tracer_provider: trace.TracerProvider | None = None) -> Middleware:
    """The aiohttp server instrumentation's middleware behind a gate: a request whose caller's trace is
    sampled, or one the edge draws (`edge_ratio`, None: not an edge), goes through it; any other runs
    with instrumentation suppressed."""
    import random

    from aiohttp import web
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor, create_aiohttp_middleware

    # instrument() sets the module's tracer, meters and excluded URLs its middleware reads;
    # uninstrument() only gives web.Application back, whose subclass would put that middleware first
    # in every app: the gate, first in the apps that ask for it (`server_middlewares`), enters it or not.
    instrumentor = AioHttpServerInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()
    traced = create_aiohttp_middleware(tracer_provider)
    draw = random.random

    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        followed = sampled(request.headers.get(TRACEPARENT))
        if followed:
            return await traced(request, handler)
        if followed is None and edge_ratio is not None and draw() < edge_ratio:
            token = otel_context.attach(otel_context.set_value(_DRAWN, True))
            try:
                return await traced(request, handler)
            finally:
                otel_context.detach(token)
        with suppress_instrumentation():
            return await handler(request)

    return gate


def server_middlewares() -> list[Middleware]:
    """What an aiohttp app puts first in its middlewares: the tracing gate, or nothing while off."""
    return [] if _http_gate is None else [_http_gate]


def _grpc_request_hook(span: Span, request: Any) -> None:
    reaction_id = getattr(request, "reaction_id", "")
    if reaction_id:
        span.set_attribute(REACTION_ID, reaction_id)


def shutdown() -> None:
    """Flush what is queued (bounded by the exporter's timeout) and stop exporting."""
    global _tracer, _provider, _http_gate
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = _http_gate = None


def traced(context: Context | None = None) -> bool:
    """Whether `span` records here: tracing on and its parent (`context`'s span, or the current one)
    sampled."""
    return _tracer is not None and bool(trace.get_current_span(context).get_span_context().trace_flags.sampled)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Callable[[], dict[str, Any]] | None = None,
    context: Context | None = None,
) -> Iterator[Span]:
    """A span of ours, current inside the block, child of `context`'s span or the current one; a shared
    no-op span while tracing is off or when that parent is not a sampled span: then nothing inside the
    block traces either (instrumentation suppressed: no span, no context sent on). `attributes` is
    called only for a span that records: an untraced request gathers none."""
    if _tracer is None:
        yield INVALID_SPAN
        return
    if not traced(context):
        with suppress_instrumentation():
            yield INVALID_SPAN
        return
    gathered = None if attributes is None else attributes()
    with _tracer.start_as_current_span(name, context=context, kind=kind, attributes=gathered) as current:
        yield current


def exemplar() -> dict[str, str] | None:
    """The current span's trace id as a histogram exemplar's labels, or None.

    None while tracing is off (no OpenTelemetry call at all), outside a span, and in a span that is
    not sampled (its trace is never exported: an exemplar would point at nothing). Pass it to
    `Histogram.observe(..., exemplar=...)` inside the span the observation belongs to; the OpenMetrics
    exposition (what Prometheus negotiates) carries it, the classic text format drops it.
    """
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return {EXEMPLAR_TRACE_ID: format(context.trace_id, "032x")}


def annotate(**attributes: str | bool | int) -> None:
    """Set attributes on the current span (an instrumentation's server span, typically).

    Keys use "_" for "." (reaction_id -> reaction.id).
    """
    if _tracer is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({key.replace("_", "."): value for key, value in attributes.items()})


class _KafkaHeaders(Getter[Sequence[tuple[str, bytes | None]]]):
    def get(self, carrier: Sequence[tuple[str, bytes | None]], key: str) -> list[str] | None:
        values = [value.decode("latin-1") for k, value in carrier if k == key and value is not None]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes | None]]) -> list[str]:
        return [k for k, _ in carrier]


_KAFKA_HEADERS = _KafkaHeaders()


def consume_context(headers: Sequence[tuple[str, bytes | None]] | None) -> Context | None:
    """The producer's context from a record's headers (None while tracing is off)."""
    if _tracer is None:
        return None
    return propagate.extract(headers or (), getter=_KAFKA_HEADERS)


# -- span names per the semantic conventions -------------------------------------------------------

# Only its producer span is left in (`_instrument`): the consumer's "process" span is ours.
_KAFKA_LEGACY_NAME = re.compile(r"^(?P<destination>.+) (?P<operation>send)$")


def semconv_name(name: str, kind: SpanKind | None, attributes: dict[str, Any] | None) -> str | None:
    """The conventional name for an instrumentation's span, or None when it already has one.

    RPC: "{rpc.service}/{rpc.method}" (the grpc instrumentation prefixes a "/"). Messaging:
    "{operation} {destination}" (the aiokafka instrumentation writes "{destination} {operation}").
    """
    attributes = attributes or {}
    if attributes.get("rpc.system") == "grpc" and name.startswith("/"):
        return name[1:]
    if kind is SpanKind.PRODUCER:
        match = _KAFKA_LEGACY_NAME.match(name)
        if match:
            return f"{match['operation']} {match['destination']}"
    return None


class SemconvNames(SpanProcessor):
    """Renames the instrumentations' spans at start (a span's name is still mutable then)."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        renamed = semconv_name(span.name, span.kind, dict(span.attributes or {}))
        if renamed is not None:
            span.update_name(renamed)
