"""The push sink's HTTP API, as the harness reads it (the ground truth of every run).

The deliveries come as a stream (GET /dump, tab-separated lines: targets/pushsink/deliveries.py),
read line by line: `iter_deliveries()` holds one line at a time, `deliveries()` builds the
id -> delivery mapping the cell's result reads.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

from facts import topology
from targets.pushsink.deliveries import DeliveryRow, DumpError, parse_dump

SINK = topology.url(topology.PUSHSINK_HTTP_PORT)
DUMP_TIMEOUT_SECONDS = 60.0  # per socket read: a dump of millions of ids streams for seconds, not minutes

__all__ = ["DeliveryRow", "DumpError", "deliveries", "iter_deliveries", "reset", "stats"]


def _call(path: str, method: str = "GET") -> Any:
    req = urllib.request.Request(f"{SINK}{path}", method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def reset() -> None:
    _call(topology.SINK_RESET_PATH, "POST")


def stats() -> dict[str, Any]:
    data: dict[str, Any] = _call(topology.SINK_STATS_PATH)
    return data


def iter_deliveries() -> Iterator[DeliveryRow]:
    """Every delivery the phone got, streamed from GET /dump; a dump cut short raises DumpError."""
    url = f"{SINK}{topology.SINK_DUMP_PATH}"
    with urllib.request.urlopen(url, timeout=DUMP_TIMEOUT_SECONDS) as r:
        yield from parse_dump(r, source=url)


def deliveries() -> dict[str, Any]:
    """reaction id -> {count, first_delivery_unix_nanos, created_unix_nanos}: what the phone got."""
    return {
        row.reaction_id: {
            "count": row.raw_count,
            "created_unix_nanos": row.created_unix_nanos,
            "first_delivery_unix_nanos": row.first_delivery_unix_nanos,
        }
        for row in iter_deliveries()
    }
