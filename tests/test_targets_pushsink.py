"""The push sink: ledger counting (first vs redelivery), its HTTP API, its metrics."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from targets import metrics
from targets.pushsink.app import create_app
from targets.pushsink.deliveries import (
    DUMP_CONTENT_TYPE,
    DeliveryLog,
    DeliveryRow,
    DumpError,
    parse_dump,
    write_snapshot,
)


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.PUSHSINK_REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_the_ledger_says_how_long_it_has_been_quiet() -> None:
    now = [100.0]
    ledger = DeliveryLog(clock=lambda: now[0])
    now[0] = 103.0
    assert ledger.idle_seconds() == 3.0  # since the start: nothing came
    ledger.record("a", created_unix_nanos=1, now_unix_nanos=2)
    now[0] = 104.5
    assert ledger.idle_seconds() == 1.5  # since the last delivery
    ledger.record("a", created_unix_nanos=1, now_unix_nanos=3)  # a redelivery moves it too
    assert ledger.idle_seconds() == 0.0
    now[0] = 110.0
    ledger.reset()
    assert ledger.idle_seconds() == 0.0


def test_ledger_counts_first_and_redeliveries() -> None:
    ledger = DeliveryLog()
    assert ledger.record("a", created_unix_nanos=10, now_unix_nanos=100) is True
    assert ledger.record("a", created_unix_nanos=11, now_unix_nanos=200) is False
    assert ledger.record("b", created_unix_nanos=20, now_unix_nanos=300) is True
    assert ledger.stats() == {"raw": 3, "unique": 2}
    entry = ledger.get("a")
    assert entry is not None
    # The first delivery's times stay: later ones only count.
    assert (entry.count, entry.created_unix_nanos, entry.first_delivery_unix_nanos) == (2, 10, 100)
    snapshot = ledger.snapshot()
    assert snapshot["deliveries"]["a"] == {"count": 2, "created_unix_nanos": 10, "first_delivery_unix_nanos": 100}
    ledger.reset()
    assert ledger.stats() == {"raw": 0, "unique": 0}


def test_write_snapshot_is_atomic_json(tmp_path: Path) -> None:
    ledger = DeliveryLog()
    ledger.record("k", 1, 2)
    target = tmp_path / "sub" / "ledger.json"
    write_snapshot(ledger.snapshot(), target)
    assert json.loads(target.read_text())["unique"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["ledger.json"]  # no temp file left


async def _with_client(test: Any, ledger: DeliveryLog | None) -> None:
    async with TestClient(TestServer(create_app(ledger))) as client:
        await test(client)


def run(test: Any, ledger: DeliveryLog | None = None) -> None:
    asyncio.run(_with_client(test, ledger))


def test_push_requires_idempotency_key() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/push", json={"created_unix_nanos": 1})
        assert resp.status == 400
        assert (await resp.json())["field"] == "Idempotency-Key"

    run(test)


def test_push_rejects_bad_bodies() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        headers = {"Idempotency-Key": "k"}
        for body, field in [
            (b"{nope", "body"),
            (b"[1]", "body"),
            (b"{}", "created_unix_nanos"),
            (b'{"created_unix_nanos": "1"}', "created_unix_nanos"),
            (b'{"created_unix_nanos": true}', "created_unix_nanos"),
            (b'{"created_unix_nanos": -5}', "created_unix_nanos"),
        ]:
            resp = await client.post("/push", data=body, headers=headers)
            assert resp.status == 400, body
            assert (await resp.json())["field"] == field, body
        assert (await (await client.get("/stats")).json()) == {"raw": 0, "unique": 0, "idle_seconds": 0.0}

    run(test, DeliveryLog(clock=lambda: 7.0))


def test_push_counts_first_and_redelivery_and_ledger_endpoints(tmp_path: Path) -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        first_before = _sample("pushsink_first_deliveries_total", {"pipeline": "async"})
        raw_before = _sample("pushsink_deliveries_total", {"pipeline": "async"})
        latency_before = _sample("pushsink_end_to_end_latency_seconds_count", {"pipeline": "async"})
        created = time.time_ns()
        headers = {"Idempotency-Key": "r-1", "X-Pipeline": "async"}
        answers = []
        for _ in range(3):
            resp = await client.post("/push", json={"created_unix_nanos": created, "extra": "ignored"}, headers=headers)
            assert resp.status == 200
            answers.append((await resp.json())["first"])
        assert answers == [True, False, False]

        ledger = await (await client.get("/ledger")).json()
        assert (ledger["raw"], ledger["unique"]) == (3, 1)
        entry = ledger["deliveries"]["r-1"]
        assert entry["count"] == 3
        assert entry["created_unix_nanos"] == created
        assert created <= entry["first_delivery_unix_nanos"] <= time.time_ns()

        assert _sample("pushsink_first_deliveries_total", {"pipeline": "async"}) == first_before + 1
        assert _sample("pushsink_deliveries_total", {"pipeline": "async"}) == raw_before + 3
        assert _sample("pushsink_end_to_end_latency_seconds_count", {"pipeline": "async"}) == latency_before + 1
        assert _sample("pushsink_ledger_keys") == 1

        path = tmp_path / "dump.json"
        resp = await client.post("/dump", json={"path": str(path)})
        assert resp.status == 200
        assert json.loads(path.read_text()) == ledger
        assert (await client.post("/dump", json={})).status == 400

        now[0] += 2.5
        assert await (await client.get("/stats")).json() == {"raw": 3, "unique": 1, "idle_seconds": 2.5}
        resp = await client.post("/reset")
        assert await resp.json() == {"raw": 0, "unique": 0}
        assert await (await client.get("/stats")).json() == {"raw": 0, "unique": 0, "idle_seconds": 0.0}
        assert _sample("pushsink_ledger_keys") == 0

    now = [50.0]
    run(test, DeliveryLog(clock=lambda: now[0]))


def test_unknown_pipeline_header_is_labelled_unknown() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        before = _sample("pushsink_deliveries_total", {"pipeline": "unknown"})
        headers = {"Idempotency-Key": "x", "X-Pipeline": "made-up"}
        await client.post("/push", json={"created_unix_nanos": 0}, headers=headers)
        await client.post("/push", json={"created_unix_nanos": 0}, headers={"Idempotency-Key": "y"})
        assert _sample("pushsink_deliveries_total", {"pipeline": "unknown"}) == before + 2

    run(test)


def test_healthz_and_metrics() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "ok"
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert "pushsink_ledger_keys" in await resp.text()

    run(test)


def test_get_dump_streams_every_delivery_in_chunks() -> None:
    ids = [f"r-{i}" for i in range(12_003)] + ["tab\there", "#hash", 'quo"te']

    ledger = DeliveryLog()
    for i, rid in enumerate(ids):
        ledger.record(rid, created_unix_nanos=i, now_unix_nanos=i + 10)
    ledger.record("r-5", created_unix_nanos=5, now_unix_nanos=99)

    async def test() -> None:
        async with TestClient(TestServer(create_app(ledger))) as client:
            await check(client)

    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/dump")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith(DUMP_CONTENT_TYPE)
        assert resp.headers.get("Transfer-Encoding") == "chunked"  # a stream, not one body
        body = await resp.read()
        rows = list(parse_dump(io.BytesIO(body)))
        assert [r.reaction_id for r in rows] == ids
        assert rows[5] == DeliveryRow("r-5", 2, 5, 15)
        assert rows[-3] == DeliveryRow("tab\there", 1, 12_003, 12_013)
        # The old endpoints are still there.
        assert (await (await client.get("/ledger")).json())["unique"] == len(ids)

    asyncio.run(test())


def _dump(rows: int) -> bytes:
    log = DeliveryLog()
    for i in range(rows):
        log.record(f"id-{i}", i, i + 1)
    return "".join(log.dump_chunks(rows_per_chunk=2)).encode()


def test_parse_dump_refuses_a_stream_cut_short_or_garbled() -> None:
    whole = _dump(5)
    assert len(list(parse_dump(io.BytesIO(whole)))) == 5
    cases = {
        whole[: whole.rindex(b"#end")]: "line 7: the dump ends without its trailer after 5 rows",
        whole[:-3]: "line 7: cut short mid-line",
        whole.replace(b"id-2\t1\t2\t3", b"id-2\t1\tx\t3"): "line 4:",
        whole.replace(b"rows=5", b"rows=6"): "trailer says 6 rows, 5 came",
        b"{}\n" + whole: "line 1: not a push sink dump",
    }
    for data, message in cases.items():
        with pytest.raises(DumpError) as e:
            list(parse_dump(io.BytesIO(data), source="the-dump"))
        assert "the-dump: " in str(e.value) and message in str(e.value), str(e.value)
