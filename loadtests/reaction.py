"""The request under load: POST /v1/posts/{post_id}/reactions with a client-chosen reaction id."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

KINDS = ("like", "love", "haha", "wow", "sad", "angry")
PATH_TEMPLATE = "/v1/posts/{post_id}/reactions"
REQUEST_NAME = "/v1/posts/[post_id]/reactions"  # one row in Locust's stats for all posts


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


class ReactionFactory:
    """Uniform posts, users and kinds from a seeded RNG; ids are random uuid4.

    The ids are deliberately not derived from the seed: a rerun against the same push sink must
    not collide with the ids of an earlier run.
    """

    def __init__(self, post_count: int, user_count: int, seed: int) -> None:
        if post_count < 1 or user_count < 1:
            raise ValueError("post_count and user_count must be >= 1")
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
