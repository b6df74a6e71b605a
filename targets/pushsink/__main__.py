"""python -m targets.pushsink: run the push sink."""

from __future__ import annotations

import argparse
import logging

from facts import topology
from targets import tracing
from targets.pushsink.app import LEDGER, create_app
from targets.pushsink.deliveries import write_snapshot
from targets.runtime import add_common_arguments, run, setup_logging, start_http, wait_for_stop_signal

log = logging.getLogger("targets.pushsink")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m targets.pushsink", description=__doc__)
    parser.add_argument("--host", default=topology.HOST)
    parser.add_argument("--port", type=int, default=topology.PUSHSINK_HTTP_PORT)
    parser.add_argument("--ledger-file", help="write the ledger JSON here at shutdown")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")
    tracing.add_arguments(parser)
    add_common_arguments(parser)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    app = create_app()
    runner = await start_http(app, args.host, args.port, access_log=args.access_log)
    try:
        await wait_for_stop_signal()
    finally:
        await runner.cleanup()
        tracing.shutdown()
        if args.ledger_file:
            ledger = app[LEDGER]
            write_snapshot(ledger.snapshot(), args.ledger_file)
            log.info("ledger written to %s (raw=%d unique=%d)", args.ledger_file, ledger.raw, ledger.unique)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    # The push is a server span, so a trace ends where the phone received the notification.
    tracing.setup(topology.PUSHSINK, tracing.Settings.from_args(args), ("http-server",))
    return run(serve(args), args.event_loop)


if __name__ == "__main__":
    raise SystemExit(main())
