"""The reaction service's HTTP API. The handler knows the pipeline only as a metric label."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from facts import topology
from protos import reaction_pb2
from targets import metrics, tracing
from targets.exposition import add_observability_routes
from targets.reaction.models import (
    KIND_TO_PROTO,
    MAX_BODY_BYTES,
    POST_ID,
    InvalidRequest,
    ReactionRequest,
    invalid_from,
)
from targets.reaction.openapi import REACTIONS_PATH, build_openapi
from targets.reaction.transport import Transport, TransportError

log = logging.getLogger(__name__)

TRANSPORT = web.AppKey("transport", Transport)
OPENAPI = web.AppKey("openapi", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, field: str | None, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "field": field, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is JSON, including aiohttp's own 404/405 and anything unforeseen."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason, None)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error", None)


async def create_reaction(request: web.Request) -> web.Response:
    transport = request.app[TRANSPORT]
    pipeline = transport.pipeline
    in_flight = metrics.reaction_requests_in_flight.labels(pipeline)
    started = time.perf_counter()
    status = 500  # what the middleware answers if something below is a bug
    in_flight.inc()
    try:
        response = await _create_reaction(request, transport)
        status = response.status
        return response
    finally:
        in_flight.dec()
        code = str(status)
        metrics.reaction_requests.labels(pipeline, code).inc()
        # Still inside the HTTP server span (its middleware is outermost): the exemplar is this request's trace.
        metrics.reaction_request_duration.labels(pipeline, code).observe(
            time.perf_counter() - started, exemplar=tracing.exemplar()
        )


async def _create_reaction(request: web.Request, transport: Transport) -> web.Response:
    try:
        post_id, body = await _parse(request)
    except InvalidRequest as exc:
        return _error(exc.http_status, exc.message, exc.field)

    reaction_id = body.reaction_id or str(uuid.uuid4())
    tracing.annotate(reaction_id=reaction_id, reaction_pipeline=transport.pipeline)
    event = reaction_pb2.ReactionEvent(
        reaction_id=reaction_id,
        post_id=post_id,
        user_id=body.user_id,
        kind=KIND_TO_PROTO[body.kind],
        created_unix_nanos=time.time_ns(),  # accepted now: the end-to-end latency origin
    )
    pipeline = transport.pipeline
    sent = time.perf_counter()
    try:
        receipt = await transport.send(event)
    except TransportError as exc:
        metrics.reaction_transport_send_duration.labels(pipeline, "error").observe(
            time.perf_counter() - sent, exemplar=tracing.exemplar()
        )
        metrics.reaction_transport_errors.labels(pipeline, exc.reason).inc()
        response = _error(exc.http_status, exc.detail or exc.reason, None, reason=exc.reason, reaction_id=reaction_id)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    metrics.reaction_transport_send_duration.labels(pipeline, "ok").observe(
        time.perf_counter() - sent, exemplar=tracing.exemplar()
    )
    return web.json_response({"reaction_id": reaction_id, "status": receipt.status}, status=receipt.http_status)


async def _parse(request: web.Request) -> tuple[str, ReactionRequest]:
    """Validate in the order a client would fix things: size, media type, path, JSON, fields."""
    too_large = InvalidRequest(413, f"body larger than {MAX_BODY_BYTES} bytes", "body")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    if request.content_type != "application/json":
        raise InvalidRequest(415, "Content-Type must be application/json", "Content-Type")
    post_id = request.match_info["post_id"]
    try:
        POST_ID.validate_python(post_id)
    except ValidationError as exc:
        raise invalid_from(exc, field="post_id") from None
    try:
        raw = await request.read()  # the app's client_max_size bounds a chunked body too
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: 4 KiB of "[" nests deeper than the parser goes
        raise InvalidRequest(400, "body is not valid JSON", "body") from None
    try:
        return post_id, ReactionRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc) from None


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def create_app(transport: Transport, *, server_url: str, health: Callable[[], dict[str, Any]]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[*tracing.server_middlewares(), json_errors])
    app[TRANSPORT] = transport
    app[OPENAPI] = build_openapi(transport.pipeline, server_url)
    app.router.add_post(REACTIONS_PATH, create_reaction)
    app.router.add_get(topology.OPENAPI_PATH, openapi)
    add_observability_routes(app, metrics.REACTION_REGISTRY, health)
    return app
