"""Health checks for the app image's containers (python:3.11-slim has no curl).

python -m compose.probe URL                         exit 0 when URL answers 2xx (the native
                                                    supervisor's readiness probe, http_ok)
python -m compose.probe --require-true KEY URL      ... with a JSON object whose KEY is true
                                                    (the reaction service: transport_ready)
python -m compose.probe --locust-worker MASTER_URL  exit 0 when the Locust master lists a worker
                                                    of this container (its id is hostname_uuid)
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import urllib.request
from typing import Any

TIMEOUT = 2.0


def _get_json(url: str, timeout: float) -> Any:
    """The JSON of a 2xx answer (urlopen raises on an error status), or None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def http_ok(url: str, timeout: float = TIMEOUT) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def json_true(url: str, key: str, timeout: float = TIMEOUT) -> bool:
    data = _get_json(url, timeout)
    return isinstance(data, dict) and data.get(key) is True


def locust_worker_registered(master_url: str, hostname: str, timeout: float = TIMEOUT) -> bool:
    """True when the master's /stats/requests lists a live worker started in this container."""
    report = _get_json(f"{master_url.rstrip('/')}/stats/requests", timeout)
    workers = (report.get("workers") or []) if isinstance(report, dict) else []
    return any(str(w.get("id", "")).startswith(f"{hostname}_") and w.get("state") != "missing" for w in workers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compose.probe", description="container health check")
    p.add_argument("url", help="URL that must answer 2xx, or the Locust master's URL with --locust-worker")
    p.add_argument("--require-true", metavar="KEY", help="the answer must be a JSON object whose KEY is true")
    p.add_argument("--locust-worker", action="store_true", help="check that this container's worker is registered")
    args = p.parse_args(argv)
    if args.locust_worker:
        ok = locust_worker_registered(args.url, socket.gethostname())
    elif args.require_true:
        ok = json_true(args.url, args.require_true)
    else:
        ok = http_ok(args.url)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
