"""The metrics table: every name is registered where it should be, the exposition parses, and the
names follow Prometheus conventions (promtool too, when it is installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from targets import metrics

REGISTRIES = {
    "reaction": metrics.REACTION_REGISTRY,
    "notification": metrics.NOTIFICATION_REGISTRY,
    "pushsink": metrics.PUSHSINK_REGISTRY,
}


def declared_names(prefix: str) -> set[str]:
    """The names in the table at the top of targets/metrics.py for one service."""
    return {
        value
        for key, value in vars(metrics).items()
        if key.isupper() and isinstance(value, str) and value.startswith(f"{prefix}_")
    }


def exposed(registry: CollectorRegistry) -> dict[str, str]:
    """Family name as queried -> type, from the text the service serves."""
    families = text_string_to_metric_families(generate_latest(registry).decode())
    out = {}
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = family.type
    return out


def exercise() -> None:
    """Give every labelled metric one child so it shows in the exposition."""
    m = metrics
    m.reaction_requests.labels("sync", "200").inc()
    m.reaction_request_duration.labels("sync", "200").observe(0.01)
    m.reaction_requests_in_flight.labels("sync").set(0)
    m.reaction_transport_send_duration.labels("sync", "ok").observe(0.01)
    m.reaction_transport_errors.labels("sync", "unavailable").inc()
    m.reaction_transport_ready.labels("sync").set(1)
    m.reaction_breaker_state.labels("sync-resilient", "closed").set(1)
    m.reaction_breaker_transitions.labels("sync-resilient", "open").inc()
    m.notification_grpc_requests.labels("sync", "OK").inc()
    m.notification_deliveries.labels("async", "delivered").inc()
    m.notification_delivery_attempts.labels("async", "ok").inc()
    m.notification_delivery_retries.labels("async").inc()
    m.notification_delivery_duration.labels("async", "delivered").observe(0.1)
    m.notification_deliveries_in_flight.labels("async").set(0)
    m.notification_dead_lettered.labels("exhausted").inc()
    m.notification_offset_commits.labels("ok").inc()
    m.pushsink_deliveries.labels("async").inc()
    m.pushsink_first_deliveries.labels("async").inc()
    m.pushsink_end_to_end_latency.labels("async").observe(1.0)


@pytest.mark.parametrize("service", REGISTRIES)
def test_every_declared_name_is_exposed_by_its_service(service: str) -> None:
    exercise()
    names = exposed(REGISTRIES[service])
    declared = declared_names(service)
    assert declared, service
    assert declared <= set(names), declared - set(names)
    # ...and nothing of another service leaks into this one.
    others = {n for s in REGISTRIES if s != service for n in declared_names(s)}
    assert not others & set(names)


@pytest.mark.parametrize("service", REGISTRIES)
def test_names_follow_prometheus_conventions(service: str) -> None:
    exercise()
    for name, kind in exposed(REGISTRIES[service]).items():
        if not name.startswith(service):
            continue
        if kind == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        assert "_milliseconds" not in name and "_ms" not in name, name


def test_no_created_series() -> None:
    exercise()
    assert "_created" not in generate_latest(metrics.REACTION_REGISTRY).decode()


def test_pipeline_label_is_bounded() -> None:
    assert metrics.pipeline_label("async") == "async"
    assert metrics.pipeline_label("sync-resilient") == "sync-resilient"
    assert metrics.pipeline_label("../../etc") == "unknown"
    assert metrics.pipeline_label(None) == "unknown"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
@pytest.mark.parametrize("service", REGISTRIES)
def test_promtool_accepts_the_exposition(service: str) -> None:
    exercise()
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(REGISTRIES[service]),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b"", "promtool lint findings"
