"""The run plan the master (or single process) fixes once the run's users are up, and every worker follows.

Shares go only to workers whose user has started and asked for the plan (master_coordinator.py): a worker
that never got a user is never counted on, so its share of the arrivals cannot go missing. The plan
travels as an explicit message (master -> worker, in answer to the worker's request), never inside
Locust's spawn message: a worker can handle its first spawn message before this locustfile's
`init` listener has run, and then it misses that run's `test_start` event altogether.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtests.arrivals import Share

LOCAL_WORKER_ID = "local"

# t=0 of the schedule is this long after the plan is made, so every worker holds its share before
# the first arrival is due instead of starting with a burst of late ones.
START_LEAD_SECONDS = 0.5


def new_run_id(now_unix_nanos: int | None = None) -> str:
    now = time.time_ns() if now_unix_nanos is None else now_unix_nanos
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now / 1e9))}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    epoch_unix_nanos: int  # schedule t=0 on the (shared) host clock
    shares: dict[str, tuple[int, int]] = field(default_factory=dict)  # worker client id -> (index, count)

    @classmethod
    def new(cls, worker_ids: Sequence[str], now_unix_nanos: int | None = None, run_id: str | None = None) -> RunPlan:
        """Dense shares in the given order: index i of n for the i-th worker."""
        now = time.time_ns() if now_unix_nanos is None else now_unix_nanos
        n = len(worker_ids)
        return cls(
            run_id=run_id or new_run_id(now),
            epoch_unix_nanos=now + int(START_LEAD_SECONDS * 1e9),
            shares={wid: (i, n) for i, wid in enumerate(worker_ids)},
        )

    @property
    def workers(self) -> int:
        return len(self.shares)

    @property
    def epoch_unix_seconds(self) -> float:
        return self.epoch_unix_nanos / 1e9

    def share_for(self, worker_id: str) -> Share | None:
        pair = self.shares.get(worker_id)
        return Share(*pair) if pair else None

    def to_wire(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "epoch_unix_nanos": self.epoch_unix_nanos,
            "shares": {k: list(v) for k, v in self.shares.items()},
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RunPlan:
        return cls(
            run_id=str(data["run_id"]),
            epoch_unix_nanos=int(data["epoch_unix_nanos"]),
            shares={str(k): (int(v[0]), int(v[1])) for k, v in data["shares"].items()},
        )
