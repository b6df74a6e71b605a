"""GET /metrics and GET /healthz, the same on every service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from facts.topology import HEALTHZ_PATH, METRICS_PATH

HealthProbe = Callable[[], dict[str, Any]]


def add_observability_routes(app: web.Application, registry: CollectorRegistry, health: HealthProbe) -> None:
    """/healthz is liveness: 200 while the process serves HTTP; the body says what is connected."""

    async def metrics(request: web.Request) -> web.Response:
        # Honour the scraper's Accept header (Prometheus may ask for OpenMetrics).
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **health()})

    app.router.add_get(METRICS_PATH, metrics)
    app.router.add_get(HEALTHZ_PATH, healthz)
