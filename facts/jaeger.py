"""Jaeger's configuration, natively and in compose: one dict, only the listen host differs."""

from __future__ import annotations

from facts import topology

# Traces kept by the in-memory store (a ring: the oldest go first). A reaction is one trace, plus
# one per consumer batch; a surge cell sends ~20,000 reactions.
MAX_TRACES = 200_000


def config(host: str, max_traces: int = MAX_TRACES) -> dict[str, object]:
    """Jaeger v2 (an OpenTelemetry Collector distribution): OTLP/HTTP in, memory store, query API out,
    every listener on `host`.

    Keys as in Jaeger v1.76's cmd/jaeger/internal/all-in-one.yaml, cut to what we use; the
    collector's own metrics off (they would open :8888 on all interfaces) and Jaeger's self-tracing
    off (it would add traces of our own queries to the store).
    """
    t = topology
    store = "memstore"
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"]}
            },
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                "metrics": {"level": "none"},
                "logs": {"level": "info"},
            },
        },
        "extensions": {
            "jaeger_query": {
                "storage": {"traces": store},
                "enable_tracing": False,
                "http": {"endpoint": f"{host}:{t.JAEGER_QUERY_HTTP_PORT}"},
                "grpc": {"endpoint": f"{host}:{t.JAEGER_QUERY_GRPC_PORT}"},
            },
            "jaeger_storage": {"backends": {store: {"memory": {"max_traces": max_traces}}}},
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"{host}:{t.JAEGER_OTLP_HTTP_PORT}"}}}},
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": store}},
    }
