"""Small helpers the stack tests share: post reactions, read the push sink, query Prometheus, and the
run limits of a cell whose traces are not what its test reads."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from facts import topology
from harness import sink
from harness.measured_tracing import ReadBack
from harness.run_limits import RunLimits

API = topology.url(topology.REACTION_HTTP_PORT)
PROM = topology.url(topology.PROMETHEUS_PORT)


@dataclass
class Answer:
    reaction_id: str
    status: int  # 0: no answer (timeout / connection error)
    elapsed: float
    body: dict[str, Any]


async def _post_many(n: int, concurrency: int, per_request_s: float) -> list[Answer]:
    sem = asyncio.Semaphore(concurrency)
    client_timeout = aiohttp.ClientTimeout(total=per_request_s)

    async with aiohttp.ClientSession(timeout=client_timeout) as session:

        async def one(i: int) -> Answer:
            rid = str(uuid.uuid4())
            body = {"user_id": f"user-{i}", "kind": "like", "reaction_id": rid}
            async with sem:
                t0 = time.monotonic()
                try:
                    async with session.post(f"{API}/v1/posts/post-{i % 97}/reactions", json=body) as r:
                        data = await r.json(content_type=None)
                        return Answer(rid, r.status, time.monotonic() - t0, data or {})
                except (TimeoutError, aiohttp.ClientError):
                    return Answer(rid, 0, time.monotonic() - t0, {})

        return await asyncio.gather(*(one(i) for i in range(n)))


def post_reactions(n: int, concurrency: int = 32, timeout: float = 30.0) -> list[Answer]:
    return asyncio.run(_post_many(n, concurrency, timeout))


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


sink_reset, sink_deliveries, sink_stats = sink.reset, sink.deliveries, sink.stats


def wait_for_unique(expected: int, timeout: float = 120.0) -> dict[str, Any]:
    """Poll the sink until it has `expected` unique deliveries or `timeout` passes; returns its stats."""
    deadline = time.monotonic() + timeout
    stats = sink_stats()
    while stats["unique"] < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        stats = sink_stats()
    return stats


def prom_query(expr: str) -> list[dict[str, Any]]:
    data = _get(f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def traces_in_windows() -> RunLimits:
    """The run's limits, its traces read back as a long cell's are (tracing.yaml's read_back): in
    two windows of 0.5 s, not every reaction's, a few seconds less a cell."""
    limits = RunLimits.load()
    windows = ReadBack(max_seconds=1.0, windows=2, settle_seconds=limits.tracing.read_back.settle_seconds)
    return dataclasses.replace(limits, tracing=limits.tracing.model_copy(update={"read_back": windows}))
