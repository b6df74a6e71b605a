"""Health checks for the app image's containers (python:3.11-slim has no curl), with the native probes.

python -m compose.healthcheck URL                         exit 0 when URL answers 2xx (the native
                                                    readiness probe, facts.probe.http_ok)
python -m compose.healthcheck --require-true KEY URL      ... with a JSON object whose KEY is true
                                                    (the reaction service: transport_ready)
python -m compose.healthcheck --locust-worker MASTER_URL  exit 0 when the Locust master lists a worker
                                                    of this container (its id is hostname_uuid)
"""

from __future__ import annotations

import argparse
import socket
import sys

from facts.probe import http_json, http_ok

TIMEOUT = 2.0


def json_true(url: str, key: str, timeout: float = TIMEOUT) -> bool:
    data = http_json(url, timeout)
    return data is not None and data.get(key) is True


def locust_worker_registered(master_url: str, hostname: str, timeout: float = TIMEOUT) -> bool:
    """True when the master's /stats/requests lists a live worker started in this container."""
    report = http_json(f"{master_url.rstrip('/')}/stats/requests", timeout)
    workers = (report.get("workers") or []) if report is not None else []
    return any(str(w.get("id", "")).startswith(f"{hostname}_") and w.get("state") != "missing" for w in workers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compose.healthcheck", description="container health check")
    p.add_argument("url", help="URL that must answer 2xx, or the Locust master's URL with --locust-worker")
    p.add_argument("--require-true", metavar="KEY", help="the answer must be a JSON object whose KEY is true")
    p.add_argument("--locust-worker", action="store_true", help="check that this container's worker is registered")
    args = p.parse_args(argv)
    if args.locust_worker:
        ok = locust_worker_registered(args.url, socket.gethostname())
    elif args.require_true:
        ok = json_true(args.url, args.require_true)
    else:
        ok = http_ok(args.url, TIMEOUT)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
