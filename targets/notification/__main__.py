"""python -m targets.notification: the gRPC server and/or the Kafka consumer, plus /metrics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import Any

import grpc
from aiohttp import web

from facts import topology
from targets import metrics, tracing
from targets.exposition import add_observability_routes
from targets.notification.consumer import ConsumerSettings, ReactionConsumer
from targets.notification.delivery import MAX_CONCURRENCY, Deliverer, RetryPolicy
from targets.notification.grpc_server import NotificationService, start_grpc_server
from targets.runtime import (
    add_common_arguments,
    positive_float,
    positive_int,
    run,
    setup_logging,
    start_http,
    wait_for_stop_signal,
)

log = logging.getLogger("targets.notification")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m targets.notification", description=__doc__)
    p.add_argument("--host", default=topology.HOST, help="address for the gRPC and metrics listeners")
    p.add_argument("--grpc-port", type=int, default=topology.NOTIFICATION_GRPC_PORT)
    p.add_argument("--metrics-port", type=int, default=topology.NOTIFICATION_METRICS_PORT)
    p.add_argument("--grpc", action=argparse.BooleanOptionalAction, default=True, help="serve Notify")
    p.add_argument("--kafka", action=argparse.BooleanOptionalAction, default=True, help="run the consumer")
    p.add_argument("--push-url", default=topology.url(topology.PROXY_PUSH.listen_port, topology.PUSH_PATH))
    p.add_argument("--kafka-bootstrap", default=topology.PROXY_KAFKA_CONSUME.listen)
    p.add_argument("--topic", default=topology.TOPIC_REACTIONS)
    p.add_argument("--dead-letter-topic", default=topology.TOPIC_DEAD_LETTER)
    p.add_argument("--group", default=topology.CONSUMER_GROUP)
    # The defaults are the settings' own (RetryPolicy, ConsumerSettings, delivery's): one place for each.
    policy = RetryPolicy()
    g = p.add_argument_group("delivery (both entry paths)")
    g.add_argument("--max-concurrency", type=positive_int, default=MAX_CONCURRENCY, help="concurrent push requests")
    # Attempts back off up to --max-backoff: ten give a consumer several seconds of a failing push
    # before a record is dead-lettered (a gRPC call is bounded by its deadline first).
    g.add_argument(
        "--max-attempts", type=positive_int, default=policy.max_attempts, help="push attempts per notification"
    )
    g.add_argument(
        "--initial-backoff", type=positive_float, default=policy.initial_backoff, help="seconds, full jitter"
    )
    g.add_argument("--max-backoff", type=positive_float, default=policy.max_backoff, help="seconds")
    g.add_argument(
        "--attempt-timeout", type=positive_float, default=policy.attempt_timeout, help="seconds per push attempt"
    )
    g = p.add_argument_group("gRPC")
    g.add_argument("--grpc-default-deadline", type=positive_float, default=5.0, help="seconds, for callers without one")
    g.add_argument("--max-concurrent-rpcs", type=positive_int, default=None, help="beyond: RESOURCE_EXHAUSTED")
    g = p.add_argument_group("Kafka consumer")
    g.add_argument("--batch-size", type=positive_int, default=ConsumerSettings.batch_size, help="records per getmany")
    g.add_argument(
        "--kafka-request-timeout", type=positive_float, default=ConsumerSettings.request_timeout, help="seconds"
    )
    p.add_argument("--shutdown-grace", type=positive_float, default=5.0, help="seconds to finish work")
    tracing.add_arguments(p)
    add_common_arguments(p)
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    policy = RetryPolicy(
        max_attempts=args.max_attempts,
        initial_backoff=args.initial_backoff,
        max_backoff=args.max_backoff,
        attempt_timeout=args.attempt_timeout,
    )
    deliverer = Deliverer(args.push_url, max_concurrency=args.max_concurrency, policy=policy)
    await deliverer.start()
    log.info("delivering to %s (%s)", args.push_url, policy)

    stop = asyncio.Event()
    consumer: ReactionConsumer | None = None
    consumer_task: asyncio.Task[None] | None = None
    server: grpc.aio.Server | None = None

    def health() -> dict[str, Any]:
        return {
            "grpc": server is not None,
            "kafka": {"enabled": consumer is not None, "connected": bool(consumer and consumer.connected)},
        }

    app = web.Application()
    add_observability_routes(app, metrics.NOTIFICATION_REGISTRY, health)
    runner = await start_http(app, args.host, args.metrics_port)
    try:
        if args.grpc:
            service = NotificationService(deliverer, default_deadline=args.grpc_default_deadline)
            server, _ = await start_grpc_server(
                service, args.host, args.grpc_port, max_concurrent_rpcs=args.max_concurrent_rpcs
            )
        if args.kafka:
            settings = ConsumerSettings(
                bootstrap=args.kafka_bootstrap,
                topic=args.topic,
                group=args.group,
                dead_letter_topic=args.dead_letter_topic,
                batch_size=args.batch_size,
                request_timeout=args.kafka_request_timeout,
            )
            consumer = ReactionConsumer(settings, deliverer)
            consumer_task = asyncio.create_task(consumer.run(stop), name="kafka-consumer")
            consumer_task.add_done_callback(_log_unexpected_end)
        await wait_for_stop_signal()
    finally:
        stop.set()
        # Drain both entry paths at once so the whole stop fits the supervisor's SIGKILL grace.
        await asyncio.gather(
            _stop_grpc(server, args.shutdown_grace), _stop_consumer(consumer_task, args.shutdown_grace)
        )
        await runner.cleanup()
        await deliverer.close()
        tracing.shutdown()
        log.info("stopped")


async def _stop_grpc(server: grpc.aio.Server | None, grace: float) -> None:
    if server is not None:
        await server.stop(grace)


async def _stop_consumer(task: asyncio.Task[None] | None, grace: float) -> None:
    # A batch in progress gets the grace period to finish and commit; past it, the uncommitted
    # records are simply fetched again by the next consumer.
    if task is not None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, grace)


def _log_unexpected_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Kafka consumer crashed", exc_info=task.exception())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    # The entry paths it serves, and the push: an HTTP client span per attempt.
    instruments = ["http-client"]
    if args.grpc:
        instruments.append("grpc-server")
    if args.kafka:
        instruments.append("kafka")
    tracing.setup(topology.NOTIFICATION, tracing.Settings.from_args(args), instruments)
    return run(serve(args), args.event_loop)


if __name__ == "__main__":
    raise SystemExit(main())
