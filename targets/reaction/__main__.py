"""python -m targets.reaction --pipeline sync|sync-resilient|async: run the reaction service."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from facts import topology
from targets import metrics, tracing
from targets.reaction.api import create_app
from targets.reaction.breaker import BreakerSettings, BreakerState, CircuitBreaker
from targets.reaction.grpc_transport import GRPC_LB_POLICIES, GrpcTransport, RetrySettings, channel_target
from targets.reaction.kafka_transport import RECREATE_AFTER_SECONDS, KafkaTransport
from targets.reaction.transport import Transport
from targets.runtime import (
    add_common_arguments,
    positive_float,
    positive_int,
    run,
    setup_logging,
    start_http,
    wait_for_stop_signal,
)

log = logging.getLogger("targets.reaction")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m targets.reaction", description=__doc__)
    p.add_argument("--pipeline", required=True, choices=topology.PIPELINES)
    p.add_argument("--host", default=topology.HOST)
    p.add_argument("--port", type=int, default=topology.REACTION_HTTP_PORT)
    p.add_argument("--deadline", type=positive_float, default=1.0, help="seconds a request may spend in the transport")
    p.add_argument(
        "--notification-target", nargs="+", default=[topology.PROXY_NOTIFICATION.listen], metavar="HOST:PORT",
        dest="notification_targets",
        help="gRPC host:port; several: the replicas, balanced by --grpc-lb (a static ipv4: list)",
    )  # fmt: skip
    p.add_argument(
        "--grpc-lb", choices=GRPC_LB_POLICIES, default="pick_first",
        help="gRPC load-balancing policy over the targets (round_robin: client-side balancing)",
    )  # fmt: skip
    p.add_argument("--kafka-bootstrap", default=topology.PROXY_KAFKA_PRODUCE.listen)
    p.add_argument("--topic", default=topology.TOPIC_REACTIONS)
    p.add_argument("--access-log", action="store_true", help="log every HTTP request")
    g = p.add_argument_group("async")
    g.add_argument(
        "--kafka-request-timeout", type=positive_float, help="seconds; must be below --deadline (default 0.8 x)"
    )
    g.add_argument(
        "--kafka-recreate-after",
        type=positive_float,
        default=RECREATE_AFTER_SECONDS,
        help="replace a producer failing this long",
    )
    g = p.add_argument_group("sync-resilient: gRPC retry policy")
    # The defaults are the settings' own (RetrySettings, BreakerSettings): one place for each.
    retry, breaker = RetrySettings(), BreakerSettings()
    g.add_argument("--attempt-timeout", type=positive_float, default=retry.attempt_timeout, help="seconds per attempt")
    g.add_argument("--max-attempts", type=int, choices=range(2, 6), default=retry.max_attempts, metavar="{2..5}")
    g.add_argument("--initial-backoff", type=positive_float, default=retry.initial_backoff, help="seconds")
    g.add_argument("--max-backoff", type=positive_float, default=retry.max_backoff, help="seconds")
    g.add_argument("--backoff-multiplier", type=positive_float, default=retry.backoff_multiplier)
    g.add_argument("--retry-throttle-max-tokens", type=positive_int, default=retry.throttle_max_tokens)
    g.add_argument("--retry-throttle-token-ratio", type=positive_float, default=retry.throttle_token_ratio)
    g = p.add_argument_group("sync-resilient: circuit breaker")
    g.add_argument("--breaker-failure-ratio", type=positive_float, default=breaker.failure_ratio)
    g.add_argument("--breaker-window", type=positive_int, default=breaker.window, help="calls")
    g.add_argument("--breaker-min-calls", type=positive_int, default=breaker.min_calls)
    g.add_argument("--breaker-consecutive-failures", type=positive_int, default=breaker.consecutive_failures)
    g.add_argument("--breaker-open-seconds", type=positive_float, default=breaker.open_seconds)
    g.add_argument("--breaker-half-open-calls", type=positive_int, default=breaker.half_open_max_calls)
    tracing.add_arguments(p)
    add_common_arguments(p)
    args = p.parse_args(argv)
    args.notification_target = channel_target(args.notification_targets)
    if args.kafka_request_timeout is None:
        args.kafka_request_timeout = 0.8 * args.deadline
    if args.kafka_request_timeout >= args.deadline:
        p.error("--kafka-request-timeout must be below --deadline (aiokafka must fail before the API gives up)")
    try:
        breaker_settings(args)
    except ValueError as exc:
        p.error(f"circuit breaker: {exc}")
    return args


def breaker_settings(args: argparse.Namespace) -> BreakerSettings:
    return BreakerSettings(
        failure_ratio=args.breaker_failure_ratio,
        window=args.breaker_window,
        min_calls=args.breaker_min_calls,
        consecutive_failures=args.breaker_consecutive_failures,
        open_seconds=args.breaker_open_seconds,
        half_open_max_calls=args.breaker_half_open_calls,
    )


def build_transport(args: argparse.Namespace) -> Transport:
    if args.pipeline == "async":
        return KafkaTransport(
            args.kafka_bootstrap,
            args.topic,
            deadline=args.deadline,
            request_timeout=args.kafka_request_timeout,
            recreate_after=args.kafka_recreate_after,
        )
    if args.pipeline == "sync":
        return GrpcTransport(args.notification_target, pipeline="sync", deadline=args.deadline, lb_policy=args.grpc_lb)
    retry = RetrySettings(
        max_attempts=args.max_attempts,
        attempt_timeout=args.attempt_timeout,
        initial_backoff=args.initial_backoff,
        max_backoff=args.max_backoff,
        backoff_multiplier=args.backoff_multiplier,
        throttle_max_tokens=args.retry_throttle_max_tokens,
        throttle_token_ratio=args.retry_throttle_token_ratio,
    )
    breaker = instrumented_breaker(breaker_settings(args), args.pipeline)
    return GrpcTransport(
        args.notification_target,
        pipeline=args.pipeline,
        deadline=args.deadline,
        retry=retry,
        breaker=breaker,
        lb_policy=args.grpc_lb,
    )


def instrumented_breaker(settings: BreakerSettings, pipeline: str) -> CircuitBreaker:
    def on_transition(state: BreakerState) -> None:
        metrics.reaction_breaker_transitions.labels(pipeline, state.value).inc()
        log.warning("circuit breaker -> %s", state.value)

    breaker = CircuitBreaker(settings, on_transition=on_transition)
    for state in BreakerState:
        # Read at scrape time, so an open breaker shows half-open once its pause is over.
        metrics.reaction_breaker_state.labels(pipeline, state.value).set_function(_is_state(breaker, state))
    return breaker


def _is_state(breaker: CircuitBreaker, state: BreakerState) -> Callable[[], float]:
    return lambda: 1.0 if breaker.state is state else 0.0


async def serve(args: argparse.Namespace) -> None:
    transport = build_transport(args)
    pipeline = transport.pipeline
    metrics.reaction_requests_in_flight.labels(pipeline).set(0)
    metrics.reaction_transport_ready.labels(pipeline).set_function(lambda: 1.0 if transport.ready() else 0.0)
    breaker = getattr(transport, "breaker", None)

    def health() -> dict[str, Any]:
        body: dict[str, Any] = {"pipeline": pipeline, "transport_ready": transport.ready()}
        if breaker is not None:
            body["breaker"] = breaker.state.value
        return body

    await transport.start()
    app = create_app(
        transport,
        server_url=f"http://{args.host}:{args.port}",
        health=health,
    )
    runner = await start_http(app, args.host, args.port, access_log=args.access_log)
    log.info("reaction service up, pipeline %s", pipeline)
    try:
        await wait_for_stop_signal()
    finally:
        await runner.cleanup()  # stop taking requests and let in-flight ones finish first
        await transport.close()
        tracing.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    # The HTTP server span, then the call to the notification service or the produce to Kafka; the
    # reaction API is where reactions enter: it draws which are traced (the edge).
    instruments = ("http-server", "kafka") if args.pipeline == "async" else ("http-server", "grpc-client")
    tracing.setup(topology.REACTION, tracing.Settings.from_args(args), instruments, edge=True)
    return run(serve(args), args.event_loop)


if __name__ == "__main__":
    raise SystemExit(main())
