"""Shared fixtures. Tests marked `stack` run against the real native stack (one per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import provision

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that start their own stack must run before the shared one exists (ports are fixed).
    items.sort(key=lambda item: 0 if item.get_closest_marker("own_stack") else 1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from harness.stack import Stack

    try:
        provision.locate()
    except provision.ProvisionError as e:
        pytest.fail(f"the real stack is not provisioned: {e}")
    work: Path = tmp_path_factory.mktemp("stack")
    s = Stack(work, "async")
    s.up()
    try:
        yield s
    finally:
        s.down()


@pytest.fixture
def local_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """Tracing on as the services set it up, without exporter or global provider: the module's tracer
    on a local provider with the services' sampler, its spans kept in memory. Yields (provider, spans)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased

    from targets import tracing

    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(tracing.DrawnAtTheEdge()))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    try:
        yield provider, spans
    finally:
        provider.shutdown()
