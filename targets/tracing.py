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

Latency observations carry the current sampled span's trace id as an OpenMetrics exemplar
(`exemplar()`: None while tracing is off, so `observe(..., exemplar=None)` is the untraced path).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind

__all__ = ["SpanKind"]  # re-exported: the services name span kinds without importing OpenTelemetry

from facts import topology

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

# Our own attribute: the id a person debugging a reaction searches for (Jaeger: tags={"reaction.id": ...}).
REACTION_ID = "reaction.id"
PIPELINE = "reaction.pipeline"
PUSH_FIRST = "push.first"  # the push sink saw this reaction id for the first time
# The exemplar label holding a trace id (as Grafana's Prometheus data source links it to Jaeger).
EXEMPLAR_TRACE_ID = "trace_id"

# The instrumentations read these once, when instrumenting: the stable HTTP conventions
# (http.request.method, http.response.status_code, url.path) instead of the 1.20 ones, and no
# spans for scrapes, health probes and the harness' reads of the sink.
_ENVIRONMENT = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
    "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS": "/metrics,/healthz,/openapi.json,/stats,/ledger,/reset,/dump",
}

INSTRUMENTS = ("http-server", "http-client", "grpc-client", "grpc-server", "kafka")

_tracer: trace.Tracer | None = None  # set while tracing is on
_provider: TracerProvider | None = None


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
        help="share of new traces kept (parent-based: a service that continues a trace follows its caller)",
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


def enabled() -> bool:
    return _tracer is not None


def setup(service: str, settings: Settings, instruments: Sequence[str]) -> None:
    """Install the SDK and the given instrumentations (before any app, channel, server or client exists)."""
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
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create({"service.name": service, "service.instance.id": f"{service}-{os.getpid()}"})
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
    provider.add_span_processor(SemconvNames())
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces", timeout=5)
    # A surge is ~500 reactions/s x up to 4 spans per process; the default queue (2048, flushed every
    # 5 s) would drop spans, and a short delay lets the harness read a cell's traces soon after it.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=65_536, schedule_delay_millis=500, max_export_batch_size=1024)
    )
    trace.set_tracer_provider(provider)
    _provider = provider
    _instrument(instruments)
    _tracer = trace.get_tracer("targets", schema_url="https://opentelemetry.io/schemas/1.27.0")
    log.info(
        "tracing on: %s, sample ratio %g, OTLP/HTTP to %s",
        ", ".join(instruments),
        settings.sample_ratio,
        settings.otlp_endpoint,
    )


def _instrument(instruments: Sequence[str]) -> None:
    if "http-server" in instruments:
        from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

        AioHttpServerInstrumentor().instrument()
    if "http-client" in instruments:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

        AioHttpClientInstrumentor().instrument()
    if "grpc-client" in instruments:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient

        GrpcAioInstrumentorClient().instrument(request_hook=_grpc_request_hook)
    if "grpc-server" in instruments:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer

        GrpcAioInstrumentorServer().instrument()
    if "kafka" in instruments:
        from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

        AIOKafkaInstrumentor().instrument()


def _grpc_request_hook(span: Span, request: Any) -> None:
    reaction_id = getattr(request, "reaction_id", "")
    if reaction_id:
        span.set_attribute(REACTION_ID, reaction_id)


def shutdown() -> None:
    """Flush what is queued (bounded by the exporter's timeout) and stop exporting."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
    context: Context | None = None,
) -> Iterator[Span]:
    """A span of ours, current inside the block; a shared no-op span while tracing is off."""
    if _tracer is None:
        yield INVALID_SPAN
        return
    with _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes) as current:
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

_KAFKA_LEGACY_NAME = re.compile(r"^(?P<destination>.+) (?P<operation>send|receive)$")


def semconv_name(name: str, kind: SpanKind | None, attributes: dict[str, Any] | None) -> str | None:
    """The conventional name for an instrumentation's span, or None when it already has one.

    RPC: "{rpc.service}/{rpc.method}" (the grpc instrumentation prefixes a "/"). Messaging:
    "{operation} {destination}" (the aiokafka instrumentation writes "{destination} {operation}").
    """
    attributes = attributes or {}
    if attributes.get("rpc.system") == "grpc" and name.startswith("/"):
        return name[1:]
    if kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
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
