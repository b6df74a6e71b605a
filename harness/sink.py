"""The push sink's HTTP API, as the harness reads it (the ground truth of every run)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from facts import topology

SINK = topology.url(topology.PUSHSINK_HTTP_PORT)


def _call(path: str, method: str = "GET") -> Any:
    req = urllib.request.Request(f"{SINK}{path}", method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def reset() -> None:
    _call("/reset", "POST")


def stats() -> dict[str, Any]:
    data: dict[str, Any] = _call("/stats")
    return data


def deliveries() -> dict[str, Any]:
    """reaction id -> {count, first_delivery_unix_nanos, created_unix_nanos}: what the phone got."""
    data: dict[str, Any] = _call("/ledger")["deliveries"]
    return data
