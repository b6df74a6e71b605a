"""The request under load: POST /v1/posts/{post_id}/reactions with a client-chosen reaction id.

Or, to measure the load generator itself against `wrk` on the service's cheapest answer, GET
/healthz (`--endpoint healthz`): the same open loop, ids and outcome records, another request.
"""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass
from typing import Any

from facts import topology

KINDS = ("like", "love", "haha", "wow", "sad", "angry")
PATH_TEMPLATE = topology.REACTIONS_PATH
_BEFORE_POST, _AFTER_POST = PATH_TEMPLATE.split("{post_id}")  # the hot path renders between them
REQUEST_NAME = PATH_TEMPLATE.replace("{post_id}", "[post_id]")  # one row in Locust's stats for all posts


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    stats_name: str  # its row in Locust's stats


# What an arrival may send: the reactions POST (what every run sends), or GET /healthz (the service's
# cheapest answer: the generator's own cost, measured beside wrk's).
REACTIONS, HEALTHZ = "reactions", "healthz"
ENDPOINTS = {REACTIONS: Endpoint("POST", REQUEST_NAME), HEALTHZ: Endpoint("GET", topology.HEALTHZ_PATH)}


@dataclass(frozen=True, slots=True)
class Reaction:
    reaction_id: str
    post_id: str
    user_id: str
    kind: str

    @property
    def path(self) -> str:
        return PATH_TEMPLATE.format(post_id=self.post_id)

    def body(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "kind": self.kind, "reaction_id": self.reaction_id}


# The variant nibble of a uuid4 (RFC 4122: 10xx) from any random hex digit.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


@dataclass(slots=True)  # not frozen: a frozen dataclass' __init__ costs 3x (one made per request)
class Rendered:
    """One request ready to send: its id (ASCII bytes, the outcome record's key), post index, wire bytes."""

    reaction_id: bytes
    post: int
    payload: bytes


class ReactionFactory:
    """Uniform posts, users and kinds from a seeded RNG; ids are random uuid4.

    The ids are deliberately not derived from the seed: a rerun against the same push sink must
    not collide with the ids of an earlier run. `render` draws the same sequence as `make` and
    returns whole HTTP/1.1 requests, ready for the wire (the load generator's hot path).
    """

    def __init__(self, post_count: int, user_count: int, seed: int, endpoint: str = REACTIONS) -> None:
        if post_count < 1 or user_count < 1:
            raise ValueError("post_count and user_count must be >= 1")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
        self.endpoint = endpoint
        self._posts = post_count
        self._users = user_count
        self._rng = random.Random(seed)

    def make(self) -> Reaction:
        rng = self._rng
        return Reaction(
            reaction_id=str(uuid.uuid4()),
            post_id=f"post-{rng.randrange(self._posts)}",
            user_id=f"user-{rng.randrange(self._users)}",
            kind=rng.choice(KINDS),
        )

    def render(self, n: int, host_header: str) -> list[Rendered]:
        """The next `n` reactions as complete POST requests (compact JSON body, keep-alive)."""
        if self.endpoint == HEALTHZ:
            return self._render_healthz(n, host_header)
        rng = self._rng
        posts, users = self._posts, self._users
        hexes = os.urandom(16 * n).hex()
        out = []
        for i in range(0, 32 * n, 32):
            rid = _uuid4(hexes[i : i + 32])
            post = rng.randrange(posts)
            body = f'{{"user_id":"user-{rng.randrange(users)}","kind":"{rng.choice(KINDS)}","reaction_id":"{rid}"}}'
            out.append(
                Rendered(
                    rid.encode(),
                    post,
                    (
                        f"POST {_BEFORE_POST}post-{post}{_AFTER_POST} HTTP/1.1\r\nHost: {host_header}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
                    ).encode(),
                )
            )
        return out

    @staticmethod
    def _render_healthz(n: int, host_header: str) -> list[Rendered]:
        payload = f"GET {topology.HEALTHZ_PATH} HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
        hexes = os.urandom(16 * n).hex()
        return [Rendered(_uuid4(hexes[i : i + 32]).encode(), 0, payload) for i in range(0, 32 * n, 32)]


def _uuid4(h: str) -> str:
    """A uuid4's text from 32 random hex digits (version and variant set)."""
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
