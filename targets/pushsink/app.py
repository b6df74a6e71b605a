"""The push sink's HTTP API: POST /push records a delivery; the rest reads or clears the ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from facts import topology
from targets import metrics, tracing
from targets.exposition import add_observability_routes
from targets.pushsink.deliveries import DUMP_CONTENT_TYPE, DeliveryLog, write_snapshot
from targets.wire import IDEMPOTENCY_KEY_HEADER, PIPELINE_HEADER

log = logging.getLogger(__name__)

LEDGER = web.AppKey("ledger", DeliveryLog)


def _error(status: int, message: str, field: str | None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def push(request: web.Request) -> web.Response:
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER, "").strip()
    if not key:
        return _error(400, f"missing {IDEMPOTENCY_KEY_HEADER} header", IDEMPOTENCY_KEY_HEADER)
    body = await _json_object(request)
    if body is None:
        return _error(400, "body must be a JSON object", "body")
    created = body.get("created_unix_nanos")
    # bool is an int subclass; a True here would be a bug upstream, not a timestamp.
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        return _error(400, "created_unix_nanos must be a non-negative integer", "created_unix_nanos")

    now = time.time_ns()
    ledger = request.app[LEDGER]
    first = ledger.record(key, created, now)
    tracing.annotate(reaction_id=key, push_first=first)
    pipeline = metrics.pipeline_label(request.headers.get(PIPELINE_HEADER))
    metrics.pushsink_deliveries.labels(pipeline).inc()
    if first:
        metrics.pushsink_first_deliveries.labels(pipeline).inc()
        # In the push's server span, a child of the reaction's trace: the exemplar opens that trace.
        metrics.pushsink_end_to_end_latency.labels(pipeline).observe(
            max(0, now - created) / 1e9, exemplar=tracing.exemplar()
        )
        metrics.pushsink_ledger_keys.set(ledger.unique)
    return web.json_response({"first": first})


async def get_ledger(request: web.Request) -> web.Response:
    # Serialising a ledger of a whole run takes a while; keep the event loop serving pushes.
    body = await asyncio.to_thread(json.dumps, request.app[LEDGER].snapshot())
    return web.Response(text=body, content_type="application/json")


async def stream_dump(request: web.Request) -> web.StreamResponse:
    """GET /dump: every delivery as a stream of tab-separated lines (deliveries.py), chunk by chunk, so
    neither side ever holds the ledger as one body. /ledger stays for small ledgers and humans."""
    response = web.StreamResponse(headers={"Content-Type": f"{DUMP_CONTENT_TYPE}; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for chunk in request.app[LEDGER].dump_chunks():
        await response.write(chunk.encode())  # yields to the loop: pushes go on between chunks
    await response.write_eof()
    return response


async def get_stats(request: web.Request) -> web.Response:
    ledger = request.app[LEDGER]
    return web.json_response({**ledger.stats(), "idle_seconds": round(ledger.idle_seconds(), 3)})


async def reset(request: web.Request) -> web.Response:
    ledger = request.app[LEDGER]
    ledger.reset()
    metrics.pushsink_ledger_keys.set(0)
    log.info("ledger reset")
    return web.json_response(ledger.stats())


async def dump(request: web.Request) -> web.Response:
    body = await _json_object(request)
    path = body.get("path") if body is not None else None
    if not isinstance(path, str) or not path:
        return _error(400, 'body must be {"path": "<file>"}', "path")
    snapshot = request.app[LEDGER].snapshot()
    try:
        # Serialising a large ledger takes a while; keep the event loop serving pushes.
        await asyncio.to_thread(write_snapshot, snapshot, path)
    except OSError as exc:
        return _error(500, f"cannot write ledger: {exc}", "path")
    log.info("ledger dumped to %s (raw=%d unique=%d)", path, snapshot["raw"], snapshot["unique"])
    return web.json_response({"path": path, "raw": snapshot["raw"], "unique": snapshot["unique"]})


def create_app(ledger: DeliveryLog | None = None) -> web.Application:
    app = web.Application(middlewares=tracing.server_middlewares())
    app[LEDGER] = ledger if ledger is not None else DeliveryLog()
    app.router.add_post(topology.PUSH_PATH, push)
    app.router.add_get(topology.SINK_LEDGER_PATH, get_ledger)
    app.router.add_get(topology.SINK_STATS_PATH, get_stats)
    app.router.add_post(topology.SINK_RESET_PATH, reset)
    app.router.add_post(topology.SINK_DUMP_PATH, dump)
    app.router.add_get(topology.SINK_DUMP_PATH, stream_dump)
    add_observability_routes(app, metrics.PUSHSINK_REGISTRY, lambda: app[LEDGER].stats())
    return app
