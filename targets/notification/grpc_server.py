"""The sync pipelines' entry: Notification.Notify delivers within the caller's deadline."""

from __future__ import annotations

import asyncio
import logging

import grpc

from protos import reaction_pb2, reaction_pb2_grpc
from targets import metrics, tracing
from targets.notification.delivery import Deliverer, DeliveryOutcome
from targets.wire import PIPELINE_METADATA_KEY

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[reaction_pb2.ReactionEvent, reaction_pb2.NotifyReply]

# Keep a little of the caller's deadline for the reply to travel back: an answer that arrives
# after the deadline is a DEADLINE_EXCEEDED for the caller, even if the push succeeded.
REPLY_MARGIN_SECONDS = 0.01

# Let clients send keepalive pings (they detect black-holed connections with them) without the
# server answering GOAWAY "too_many_pings".
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


def _pipeline(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == PIPELINE_METADATA_KEY:
            return metrics.pipeline_label(value if isinstance(value, str) else value.decode())
    return metrics.UNKNOWN_PIPELINE


class NotificationService(reaction_pb2_grpc.NotificationServicer):
    def __init__(self, deliverer: Deliverer, *, default_deadline: float) -> None:
        self._deliverer = deliverer
        self._default_deadline = default_deadline  # for callers that send no deadline

    async def Notify(self, request: reaction_pb2.ReactionEvent, context: Context) -> reaction_pb2.NotifyReply:
        pipeline = _pipeline(context)
        tracing.annotate(reaction_id=request.reaction_id, reaction_pipeline=pipeline)
        try:
            code, details, reply = await self._notify(request, context, pipeline)
        except asyncio.CancelledError:
            # The caller went away (its deadline passed or it cancelled); grpc cancels the handler.
            metrics.notification_grpc_requests.labels(pipeline, grpc.StatusCode.CANCELLED.name).inc()
            raise
        metrics.notification_grpc_requests.labels(pipeline, code.name).inc()
        if code is not grpc.StatusCode.OK:
            await context.abort(code, details)
        return reply

    async def _notify(
        self, request: reaction_pb2.ReactionEvent, context: Context, pipeline: str
    ) -> tuple[grpc.StatusCode, str, reaction_pb2.NotifyReply]:
        empty = reaction_pb2.NotifyReply()
        if not request.reaction_id:
            return grpc.StatusCode.INVALID_ARGUMENT, "reaction_id is required", empty
        now = asyncio.get_running_loop().time()
        remaining = context.time_remaining()
        budget = self._default_deadline if remaining is None else min(remaining, self._default_deadline)
        deadline = now + budget - REPLY_MARGIN_SECONDS
        if deadline <= now:
            return grpc.StatusCode.DEADLINE_EXCEEDED, "no time left to deliver", empty

        result = await self._deliverer.deliver(request, pipeline=pipeline, deadline=deadline)
        if result.ok:
            reply = reaction_pb2.NotifyReply(delivered=True, duplicate=result.outcome is DeliveryOutcome.DUPLICATE)
            return grpc.StatusCode.OK, "", reply
        details = f"push failed after {result.attempts} attempt(s): {result.error}"
        # A 4xx from the sink means our request is wrong: retrying (what UNAVAILABLE invites) is futile.
        code = grpc.StatusCode.INTERNAL if result.permanent else grpc.StatusCode.UNAVAILABLE
        return code, details, empty


async def start_grpc_server(
    service: NotificationService, host: str, port: int, *, max_concurrent_rpcs: int | None = None
) -> tuple[grpc.aio.Server, int]:
    """Start serving; returns the server and the bound port (useful with port 0 in tests)."""
    server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=max_concurrent_rpcs)
    reaction_pb2_grpc.add_NotificationServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    log.info("gRPC Notification listening on %s:%d", host, bound)
    return server, bound
