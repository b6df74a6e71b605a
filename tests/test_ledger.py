"""The ledger's Jepsen categories."""

from __future__ import annotations

import pytest

from harness.ledger import classify


def out(rid: str, outcome: str) -> dict[str, str]:
    return {"reaction_id": rid, "outcome": outcome}


def test_clean_run_is_all_delivered_once() -> None:
    led = classify([out("a", "ack"), out("b", "ack")], {"a": {"count": 1}, "b": {"count": 1}})
    assert led.model_dump(exclude={"samples"}) == dict(
        attempted=2, acknowledged=2, failed=0, unknown=0, delivered=2,
        redeliveries=0, lost=0, unexpected=0, recovered=0, dead_lettered=0,
    )  # fmt: skip
    assert led.no_loss


def test_acknowledged_but_never_delivered_is_lost() -> None:
    led = classify([out("a", "ack"), out("b", "ack")], {"a": {"count": 1}})
    assert (led.lost, led.delivered) == (1, 1)
    assert led.samples["lost"] == ["b"]
    assert not led.no_loss


def test_duplicates_are_counted_as_redeliveries_not_loss() -> None:
    led = classify([out("a", "ack")], {"a": {"count": 3}})
    assert (led.delivered, led.redeliveries, led.lost) == (1, 2, 0)
    assert led.no_loss


def test_delivered_but_never_attempted_is_unexpected() -> None:
    led = classify([out("a", "ack")], {"a": {"count": 1}, "ghost": {"count": 1}})
    assert led.unexpected == 1 and led.samples["unexpected"] == ["ghost"]
    assert led.delivered == 1
    assert not led.no_loss


def test_failed_or_unknown_yet_delivered_is_recovered() -> None:
    led = classify(
        [out("f", "failed"), out("u", "unknown"), out("g", "failed")],
        {"f": {"count": 1}, "u": {"count": 1}},
    )
    assert (led.failed, led.unknown, led.recovered, led.delivered, led.lost) == (2, 1, 2, 2, 0)
    assert led.no_loss  # a failed request that never arrives was not promised


def test_an_id_retried_keeps_its_acknowledgement() -> None:
    led = classify([out("a", "unknown"), out("a", "ack"), out("a", "failed")], {})
    assert (led.attempted, led.acknowledged, led.lost) == (1, 1, 1)


def test_bad_outcome_is_rejected_with_the_id() -> None:
    with pytest.raises(ValueError, match="reaction x: unknown outcome 'maybe'"):
        classify([out("x", "maybe")], {})


def test_dead_letters_count_unique_ids_and_name_the_undelivered() -> None:
    # "b" was written to the dead letters twice (a redelivery after a rebalance), "a" was delivered anyway.
    led = classify([out("a", "ack"), out("b", "ack")], {"a": {"count": 1}}, dead_lettered=["a", "b", "b"])
    assert led.dead_lettered == 2
    assert led.samples["dead_lettered_undelivered"] == ["b"]
    assert led.lost == 1  # dead-lettered is accounted for, yet the phone never got it


def test_no_dead_letters_no_sample() -> None:
    led = classify([out("a", "ack")], {"a": {"count": 1}})
    assert led.dead_lettered == 0 and "dead_lettered_undelivered" not in led.samples


def test_streamed_rows_and_partitions_give_the_same_ledger():
    outcomes = [out(f"id-{i:03d}", ("ack", "failed", "unknown")[i % 3]) for i in range(300)]
    outcomes += [out("id-001", "ack"), out("id-002", "failed")]  # sent twice: the most hopeful answer stays
    mapping = {f"id-{i:03d}": {"count": 1 + i % 2} for i in range(0, 300, 2)} | {"ghost": {"count": 1}}
    rows = [(rid, d["count"], 0, 0) for rid, d in mapping.items()]  # as harness.sink.iter_deliveries() yields
    dead = ["id-003", "id-004", "id-004"]
    whole = classify(outcomes, mapping, dead)
    assert whole.attempted == 300 and whole.acknowledged == 101 and whole.unexpected == 1
    assert classify(outcomes, rows, dead) == whole
    assert classify(outcomes, rows, dead, max_in_memory=7) == whole  # spilled to partitions on disk
    assert whole.samples["lost"][:2] == ["id-001", "id-003"]
    assert whole.samples["dead_lettered_undelivered"] == ["id-003"]
