"""The reaction API: validation (every bad input -> the right 4xx naming the field), the answer per
transport outcome, the OpenAPI document, and the request metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from protos import reaction_pb2
from targets import metrics
from targets.reaction.api import create_app
from targets.reaction.models import MAX_BODY_BYTES
from targets.reaction.openapi import REACTIONS_PATH
from targets.reaction.transport import Receipt, TransportError

URL = "/v1/posts/post-1/reactions"
JSON = {"Content-Type": "application/json"}


class FakeTransport:
    """Records what it is sent; answers with `receipt` or raises `error`."""

    def __init__(self, pipeline: str = "sync", receipt: Receipt | None = None, error: Exception | None = None):
        self._pipeline = pipeline
        self.receipt = receipt or Receipt(200, "delivered")
        self.error = error
        self.sent: list[reaction_pb2.ReactionEvent] = []

    @property
    def pipeline(self) -> str:
        return self._pipeline

    async def start(self) -> None:
        pass

    async def send(self, event: reaction_pb2.ReactionEvent) -> Receipt:
        self.sent.append(event)
        if self.error is not None:
            raise self.error
        return self.receipt

    async def close(self) -> None:
        pass

    def ready(self) -> bool:
        return True


Test = Callable[[TestClient[Any, Any]], Awaitable[None]]


def run(test: Test, transport: FakeTransport | None = None) -> None:
    transport = transport or FakeTransport()

    async def main() -> None:
        app = create_app(transport, server_url="http://test", health=lambda: {"pipeline": transport.pipeline})
        async with TestClient(TestServer(app)) as client:
            await test(client)

    asyncio.run(main())


def body(**fields: Any) -> bytes:
    return json.dumps({"user_id": "u1", "kind": "like", **fields}).encode()


def without(name: str) -> bytes:
    data = json.loads(body())
    del data[name]
    return json.dumps(data).encode()


BAD = [
    # (id, path, raw body, content type, status, field)
    ("malformed-json", URL, b"{not json", "application/json", 400, "body"),
    ("empty-body", URL, b"", "application/json", 400, "body"),
    ("not-utf8", URL, b'{"user_id": "\xff", "kind": "like"}', "application/json", 400, "body"),
    ("deep-nesting", URL, b"[" * 3000, "application/json", 400, "body"),
    ("not-an-object", URL, b"[1, 2]", "application/json", 422, "body"),
    ("json-string", URL, b'"hello"', "application/json", 422, "body"),
    ("missing-kind", URL, without("kind"), "application/json", 422, "kind"),
    ("missing-user", URL, without("user_id"), "application/json", 422, "user_id"),
    ("unknown-kind", URL, body(kind="meh"), "application/json", 422, "kind"),
    ("kind-wrong-case", URL, body(kind="LIKE"), "application/json", 422, "kind"),
    ("user-wrong-type", URL, body(user_id=42), "application/json", 422, "user_id"),
    ("kind-wrong-type", URL, body(kind=["like"]), "application/json", 422, "kind"),
    ("reaction-id-wrong-type", URL, body(reaction_id=7), "application/json", 422, "reaction_id"),
    ("extra-field", URL, body(x=1), "application/json", 422, "x"),
    ("empty-user", URL, body(user_id=""), "application/json", 422, "user_id"),
    ("long-user", URL, body(user_id="u" * 129), "application/json", 422, "user_id"),
    ("long-reaction-id", URL, body(reaction_id="r" * 129), "application/json", 422, "reaction_id"),
    ("bad-chars-user", URL, body(user_id="a b"), "application/json", 422, "user_id"),
    ("lone-surrogate", URL, b'{"user_id": "u\\ud800", "kind": "like"}', "application/json", 422, "user_id"),
    ("reaction-id-header-injection", URL, body(reaction_id="a\r\nb"), "application/json", 422, "reaction_id"),
    ("oversized-body", URL, body(user_id="u" * 20000), "application/json", 413, "body"),
    ("wrong-content-type", URL, body(), "text/plain", 415, "Content-Type"),
    ("bad-post-id", "/v1/posts/a%20b/reactions", body(), "application/json", 422, "post_id"),
    ("long-post-id", f"/v1/posts/{'p' * 129}/reactions", body(), "application/json", 422, "post_id"),
]


@pytest.mark.parametrize(
    ("path", "raw", "content_type", "status", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_gets_4xx_naming_the_field(path: str, raw: bytes, content_type: str, status: int, field: str) -> None:
    transport = FakeTransport()

    async def test(client: TestClient[Any, Any]) -> None:
        resp = await client.post(path, data=raw, headers={"Content-Type": content_type})
        assert resp.status == status, await resp.text()
        data = await resp.json()
        assert data["field"] == field
        assert isinstance(data["error"], str) and data["error"]

    run(test, transport)
    assert transport.sent == [], "a rejected request reached the transport"


def test_chunked_oversized_body_is_413() -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1000

    async def test(client: TestClient[Any, Any]) -> None:
        resp = await client.post(URL, data=chunks(), headers=JSON)
        assert resp.status == 413
        assert (await resp.json())["field"] == "body"

    run(test)


def test_body_at_the_limit_is_accepted() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        raw = body()
        raw = raw[:-1] + b" " * (MAX_BODY_BYTES - len(raw)) + b"}"
        assert len(raw) == MAX_BODY_BYTES
        resp = await client.post(URL, data=raw, headers=JSON)
        assert resp.status == 200

    run(test)


def test_accepted_reaction_builds_the_event() -> None:
    transport = FakeTransport()

    async def test(client: TestClient[Any, Any]) -> None:
        before = time.time_ns()
        resp = await client.post(URL, data=body(kind="angry", reaction_id="rid-1"), headers=JSON)
        assert resp.status == 200
        assert await resp.json() == {"reaction_id": "rid-1", "status": "delivered"}
        event = transport.sent[0]
        assert (event.reaction_id, event.post_id, event.user_id) == ("rid-1", "post-1", "u1")
        assert event.kind == reaction_pb2.ANGRY
        assert before <= event.created_unix_nanos <= time.time_ns()

        # No id (or null): a UUID4 is generated and returned.
        for raw in (body(), body(reaction_id=None)):
            resp = await client.post(URL, data=raw, headers={"Content-Type": "application/json; charset=utf-8"})
            generated = (await resp.json())["reaction_id"]
            assert len(generated) == 36 and generated == transport.sent[-1].reaction_id

    run(test, transport)


def test_async_receipt_is_202() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        resp = await client.post(URL, data=body(reaction_id="a1"), headers=JSON)
        assert resp.status == 202
        assert await resp.json() == {"reaction_id": "a1", "status": "accepted"}

    run(test, FakeTransport("async", Receipt(202, "accepted")))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TransportError(503, "unavailable", "UNAVAILABLE: down"), 503),
        (TransportError(504, "deadline_exceeded"), 504),
        (TransportError(502, "upstream_error", "INTERNAL: boom"), 502),
        (TransportError(503, "kafka_not_connected"), 503),
    ],
)
def test_transport_errors_map_to_their_status(error: TransportError, status: int) -> None:
    transport = FakeTransport(error=error)

    async def test(client: TestClient[Any, Any]) -> None:
        before = metrics.REACTION_REGISTRY.get_sample_value(
            "reaction_transport_errors_total", {"pipeline": "sync", "reason": error.reason}
        )
        resp = await client.post(URL, data=body(reaction_id="e1"), headers=JSON)
        assert resp.status == status
        data = await resp.json()
        assert data["reason"] == error.reason
        assert data["reaction_id"] == "e1"
        assert data["field"] is None
        assert "Retry-After" not in resp.headers
        after = metrics.REACTION_REGISTRY.get_sample_value(
            "reaction_transport_errors_total", {"pipeline": "sync", "reason": error.reason}
        )
        assert (after or 0) == (before or 0) + 1

    run(test, transport)


def test_open_breaker_sets_retry_after() -> None:
    transport = FakeTransport(error=TransportError(503, "breaker_open", "circuit breaker open", retry_after=2.2))

    async def test(client: TestClient[Any, Any]) -> None:
        resp = await client.post(URL, data=body(), headers=JSON)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "3"

    run(test, transport)


def test_unknown_routes_and_methods_answer_json() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        resp = await client.get(URL)
        assert resp.status == 405
        assert "POST" in resp.headers["Allow"]
        assert (await resp.json())["error"]
        resp = await client.post("/v1/posts/p1/other", data=body(), headers=JSON)
        assert resp.status == 404
        assert (await resp.json())["field"] is None

    run(test)


def test_request_metrics_count_by_code() -> None:
    def count(code: str) -> float:
        value = metrics.REACTION_REGISTRY.get_sample_value(
            "reaction_requests_total", {"pipeline": "sync-resilient", "code": code}
        )
        return value or 0.0

    async def test(client: TestClient[Any, Any]) -> None:
        ok, bad = count("200"), count("422")
        await client.post(URL, data=body(), headers=JSON)
        await client.post(URL, data=body(kind="nope"), headers=JSON)
        await client.get("/healthz")  # not an API request: not counted
        assert (count("200"), count("422")) == (ok + 1, bad + 1)
        in_flight = metrics.REACTION_REGISTRY.get_sample_value(
            "reaction_requests_in_flight", {"pipeline": "sync-resilient"}
        )
        assert in_flight == 0

    run(test, FakeTransport("sync-resilient"))


@pytest.mark.parametrize("pipeline", ["sync", "sync-resilient", "async"])
def test_openapi_document_matches_the_service(pipeline: str) -> None:
    receipt = Receipt(202, "accepted") if pipeline == "async" else Receipt(200, "delivered")

    async def test(client: TestClient[Any, Any]) -> None:
        doc = await (await client.get("/openapi.json")).json()
        assert doc["openapi"] == "3.1.0"
        operation = doc["paths"][REACTIONS_PATH]["post"]
        responses = operation["responses"]
        # Every status the validation tests observe, and the pipeline's success, is documented.
        for status in {str(b[4]) for b in BAD} | {str(receipt.http_status), "503", "504"}:
            assert status in responses, status
        assert str(202 if pipeline == "async" else 200) in responses
        assert str(200 if pipeline == "async" else 202) not in responses
        schema = doc["components"]["schemas"]["ReactionRequest"]
        assert set(schema["properties"]) == {"user_id", "kind", "reaction_id"}
        assert schema["required"] == ["user_id", "kind"]
        assert schema["additionalProperties"] is False
        assert schema["properties"]["kind"]["enum"] == ["like", "love", "haha", "wow", "sad", "angry"]
        assert operation["parameters"][0]["name"] == "post_id"
        assert {"/healthz", "/metrics", "/openapi.json"} <= set(doc["paths"])
        # Every $ref resolves.
        refs = [v for v in _walk(doc) if isinstance(v, str) and v.startswith("#/")]
        for ref in refs:
            node: Any = doc
            for part in ref[2:].split("/"):
                node = node[part]

    run(test, FakeTransport(pipeline, receipt))


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for value in node.values():
            yield value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
