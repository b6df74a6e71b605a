"""What the HTTP handler needs from a pipeline: start, send one event, close.

The handler maps a `Receipt` or a `TransportError` to the HTTP answer and never looks at which
pipeline it runs; each implementation turns its own failures into an HTTP status and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protos import reaction_pb2


@dataclass(frozen=True)
class Receipt:
    http_status: int  # 200 delivered, 202 accepted
    status: str  # "delivered" | "duplicate" | "accepted"


class TransportError(Exception):
    """A send that did not succeed, already mapped to what the client should see."""

    def __init__(self, http_status: int, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{http_status} {reason}: {detail}" if detail else f"{http_status} {reason}")
        self.http_status = http_status
        self.reason = reason  # short and from a fixed set: it is a metric label
        self.detail = detail
        self.retry_after = retry_after  # seconds, when the transport knows (open breaker)


class Transport(Protocol):
    @property
    def pipeline(self) -> str: ...

    async def start(self) -> None:
        """Begin connecting; must not fail because the peer is down (sends fail meanwhile)."""

    async def send(self, event: reaction_pb2.ReactionEvent) -> Receipt:
        """Hand the event over; raises TransportError."""
        ...

    async def close(self) -> None: ...

    def ready(self) -> bool:
        """Whether a send could succeed now, as far as the transport knows (for /healthz, metrics)."""
        ...
