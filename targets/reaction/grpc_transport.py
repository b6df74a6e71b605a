"""The sync pipelines: await Notification.Notify over gRPC; a 200 means the push was delivered.

`sync` makes one call with one deadline. `sync-resilient` adds what gRPC offers natively (a
per-attempt timeout and a retry policy with retry throttling, via the service config) and a
circuit breaker around the whole call that fails fast while the notification service is down.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import grpc

from protos import reaction_pb2, reaction_pb2_grpc
from targets.reaction.breaker import CircuitBreaker
from targets.reaction.transport import Receipt, TransportError
from targets.wire import PIPELINE_METADATA_KEY

log = logging.getLogger(__name__)

SERVICE_NAME = reaction_pb2.DESCRIPTOR.services_by_name["Notification"].full_name

# Both pipelines: reconnect quickly after the link comes back (gRPC's default backoff grows to
# 120 s, which would measure gRPC's patience rather than the pipeline), and detect a black-holed
# connection with keepalive pings instead of waiting for TCP.
BASE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

# gRPC status -> (HTTP status, reason label). Anything else is the notification service
# misbehaving: 502.
STATUS_MAP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, "resource_exhausted"),
    grpc.StatusCode.CANCELLED: (503, "cancelled"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "deadline_exceeded"),
}


# Client-side load balancing over several targets (the replicated topology, harness/replicas.py).
GRPC_LB_POLICIES = ("pick_first", "round_robin")


def channel_target(addresses: list[str]) -> str:
    """One host:port as it is; several as a static `ipv4:` list (gRPC's naming: no resolver to ask)."""
    if len(addresses) == 1:
        return addresses[0]
    return "ipv4:" + ",".join(addresses)


@dataclass(frozen=True)
class RetrySettings:
    """gRPC's retry policy (gRFC A6). gRPC clamps max_attempts to 5."""

    max_attempts: int = 3
    attempt_timeout: float = 0.3  # seconds; perAttemptRecvTimeout
    initial_backoff: float = 0.05
    max_backoff: float = 0.2
    backoff_multiplier: float = 2.0
    throttle_max_tokens: int = 10  # retryThrottling: retries stop while tokens <= max_tokens / 2
    throttle_token_ratio: float = 0.1  # tokens regained per success


def _duration(seconds: float) -> str:
    """protobuf Duration in JSON: decimal seconds with an "s" suffix."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def service_config(retry: RetrySettings) -> dict[str, Any]:
    return {
        "methodConfig": [
            {
                "name": [{"service": SERVICE_NAME}],
                "retryPolicy": {
                    "maxAttempts": retry.max_attempts,
                    "initialBackoff": _duration(retry.initial_backoff),
                    "maxBackoff": _duration(retry.max_backoff),
                    "backoffMultiplier": retry.backoff_multiplier,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                    # An attempt without an answer by then is abandoned and retried (while the
                    # overall deadline lasts) instead of eating the whole deadline.
                    "perAttemptRecvTimeout": _duration(retry.attempt_timeout),
                },
            }
        ],
        "retryThrottling": {
            "maxTokens": retry.throttle_max_tokens,
            "tokenRatio": round(retry.throttle_token_ratio, 3),
        },
    }


def channel_options(retry: RetrySettings | None) -> list[tuple[str, Any]]:
    if retry is None:
        # Plain sync: one attempt per request, no transparent retries either.
        return [*BASE_OPTIONS, ("grpc.enable_retries", 0)]
    return [
        *BASE_OPTIONS,
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config(retry))),
        # perAttemptRecvTimeout is parsed only with this (gRPC's hedging work) enabled.
        ("grpc.experimental.enable_hedging", 1),
    ]


class GrpcTransport:
    def __init__(
        self,
        target: str,
        *,
        pipeline: str,
        deadline: float,
        retry: RetrySettings | None = None,
        breaker: CircuitBreaker | None = None,
        lb_policy: str = "pick_first",
    ) -> None:
        self._target = target
        self._lb_policy = lb_policy
        self._pipeline = pipeline
        self._deadline = deadline
        self._retry = retry
        self._breaker = breaker
        self._metadata = ((PIPELINE_METADATA_KEY, pipeline),)
        self._channel: grpc.aio.Channel | None = None
        self._stub: reaction_pb2_grpc.NotificationAsyncStub | None = None

    @property
    def pipeline(self) -> str:
        return self._pipeline

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    async def start(self) -> None:
        # Connecting is lazy: the first call (or a reconnect) dials, so a down peer is not fatal.
        options = [*channel_options(self._retry), ("grpc.lb_policy_name", self._lb_policy)]
        self._channel = grpc.aio.insecure_channel(self._target, options=options)
        self._stub = reaction_pb2_grpc.NotificationStub(self._channel)
        log.info(
            "gRPC transport to %s (%s, deadline %.3fs, retry %s)",
            self._target, self._lb_policy, self._deadline, self._retry,
        )  # fmt: skip

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=1.0)
            self._channel = None

    def ready(self) -> bool:
        if self._channel is None:
            return False
        # Only a connected channel can send now. gRPC dials lazily: asking with try_to_connect is what
        # makes an idle channel dial, so readiness turns true without a request having to fail first.
        return self._channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY

    async def send(self, event: reaction_pb2.ReactionEvent) -> Receipt:
        if self._breaker is None:
            return await self._call(event)
        ticket = self._breaker.try_acquire()
        if ticket is None:
            raise TransportError(503, "breaker_open", "circuit breaker open", retry_after=self._breaker.retry_after())
        try:
            receipt = await self._call(event)
        except TransportError as exc:
            self._breaker.record(ticket, success=exc.http_status < 500)
            raise
        except BaseException:
            self._breaker.release(ticket)
            raise
        self._breaker.record(ticket, success=True)
        return receipt

    async def _call(self, event: reaction_pb2.ReactionEvent) -> Receipt:
        if self._stub is None:
            raise TransportError(503, "not_started", "transport not started")
        try:
            reply = await self._stub.Notify(event, timeout=self._deadline, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            status, reason = STATUS_MAP.get(exc.code(), (502, "upstream_error"))
            raise TransportError(status, reason, f"{exc.code().name}: {exc.details()}") from None
        except grpc.aio.UsageError as exc:  # channel closed under us (shutdown)
            raise TransportError(503, "unavailable", str(exc)) from None
        return Receipt(200, "duplicate" if reply.duplicate else "delivered")
