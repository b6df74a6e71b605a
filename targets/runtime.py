"""Process plumbing shared by every service: logging, signals, the HTTP listener, CLI helpers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import uvloop
from aiohttp import web

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RateLimitFilter(logging.Filter):
    """Let each message template of the given loggers through once per `interval` seconds.

    aiokafka logs every failed reconnect (every retry backoff, ~100 ms) at ERROR: during a chaos
    run that would flood the log, yet the first occurrence is worth seeing.
    """

    def __init__(self, prefixes: tuple[str, ...], interval: float = 30.0) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._interval = interval
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last < self._interval:
            return False
        self._last[key] = record.created
        return True


def setup_logging(level: str) -> None:
    """Log to stdout: the supervisor captures stdout per process."""
    logging.basicConfig(stream=sys.stdout, level=level.upper(), format=LOG_FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RateLimitFilter(("aiokafka",)))


EVENT_LOOPS = ("uvloop", "asyncio")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default="uvloop",
        help="uvloop (libuv, the default: cheaper per request) or the standard library's loop",
    )


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def run(main: Coroutine[Any, Any, None], event_loop: str = "uvloop") -> int:
    """Run the service's main coroutine on the chosen event loop (grpc.aio runs on any loop)."""
    if event_loop == "uvloop":
        uvloop.run(main)
    else:
        asyncio.run(main)
    return 0


async def wait_for_stop_signal() -> None:
    """Return on the first SIGTERM or SIGINT, so callers can shut down in order."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    logging.getLogger(__name__).info("stop signal received, shutting down")


async def start_http(
    app: web.Application, host: str, port: int, *, access_log: bool = False, shutdown_timeout: float = 3.0
) -> web.AppRunner:
    # The access log is off by default: at benchmark rates it would cost more than the handler.
    # In-flight requests get `shutdown_timeout` at stop: well within the supervisor's SIGKILL grace.
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logging.getLogger(__name__).info("HTTP listening on http://%s:%d", host, port)
    return runner
