"""Jepsen-style classification of every reaction id: what the client was told vs what the phone got.

attempted     every id the load generator sent
acknowledged  the client got a 2xx
failed        a definite error (4xx/5xx)
unknown       no answer (timeout, connection error)
delivered     attempted ids that reached the push sink (unique)
redeliveries  raw deliveries minus unique ones (at-least-once at work)
lost          acknowledged but never delivered: the one thing a pipeline must never do
unexpected    delivered but never attempted
recovered     failed or unknown, yet delivered
dead_lettered ids the consumer wrote to the dead-letter topic (unique; the raw writes are counted
              apart): given up on, but accounted for. One never delivered is also lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ACK, FAILED, UNKNOWN = "ack", "failed", "unknown"
SAMPLE = 20  # ids listed per category in the result, enough to go and look


class Ledger(BaseModel):
    """The counts of facts/measures.LEDGER_COUNTS, and a few ids of each worrying kind to go and look at."""

    model_config = ConfigDict(extra="forbid")

    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0
    delivered: int = 0
    redeliveries: int = 0
    lost: int = 0
    unexpected: int = 0
    recovered: int = 0
    dead_lettered: int = 0
    samples: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def no_loss(self) -> bool:
        return self.lost == 0 and self.unexpected == 0


def classify(
    outcomes: Iterable[Mapping[str, Any]],
    deliveries: Mapping[str, Mapping[str, Any]],
    dead_lettered: Iterable[str] = (),
) -> Ledger:
    """`outcomes`: one record per id sent ({"reaction_id", "outcome": ack|failed|unknown}).
    `deliveries`: the push sink's ledger, id -> {"count", ...}. `dead_lettered`: the reaction id of
    every dead-letter record written during the run (repeats allowed)."""
    told: dict[str, str] = {}
    for rec in outcomes:
        rid, outcome = str(rec["reaction_id"]), str(rec["outcome"])
        if outcome not in (ACK, FAILED, UNKNOWN):
            raise ValueError(f"reaction {rid}: unknown outcome {outcome!r}")
        # An id sent twice keeps its most hopeful answer: one 2xx is a promise the pipeline must keep.
        prev = told.get(rid)
        if prev is None or outcome == ACK or (outcome == UNKNOWN and prev == FAILED):
            told[rid] = outcome
    led = Ledger(attempted=len(told))
    lost, unexpected, recovered = [], [], []
    for rid, outcome in told.items():
        if outcome == ACK:
            led.acknowledged += 1
        elif outcome == FAILED:
            led.failed += 1
        else:
            led.unknown += 1
        if rid in deliveries:
            led.delivered += 1
            if outcome != ACK:
                recovered.append(rid)
        elif outcome == ACK:
            lost.append(rid)
    for rid, d in deliveries.items():
        led.redeliveries += max(0, int(d.get("count", 1)) - 1)
        if rid not in told:
            unexpected.append(rid)
    dead = set(dead_lettered)
    led.lost, led.unexpected, led.recovered = len(lost), len(unexpected), len(recovered)
    led.dead_lettered = len(dead)
    undelivered_dead = [rid for rid in dead if rid not in deliveries]  # the ones someone has to replay
    led.samples = {
        k: sorted(v)[:SAMPLE]
        for k, v in (("lost", lost), ("unexpected", unexpected), ("recovered", recovered),
                     ("dead_lettered_undelivered", undelivered_dead))
        if v
    }  # fmt: skip
    return led
