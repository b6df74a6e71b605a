"""The drain after (and before) a cell's load: Kafka's backlog empty and the sink quiet for `settle`
seconds by its own clock. Fakes for the broker, the sink and time."""

from __future__ import annotations

from typing import Any

import pytest

from harness import sampling
from harness.progress import Progress


class World:
    """A fake clock the drain sleeps on, a backlog read in turn, and a sink that received its
    deliveries at the given times."""

    def __init__(self, backlogs: list[int | None], deliveries: list[float], sink_started: float = 0.0) -> None:
        self.now = 100.0
        self.backlogs, self.deliveries, self.sink_started = backlogs, deliveries, sink_started
        self.sleeps: list[float] = []

    # time, as sampling reads it
    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a drain that sleeps 0 s spins"
        self.sleeps.append(seconds)
        self.now += seconds

    def backlog(self) -> int | None:
        return self.backlogs.pop(0) if len(self.backlogs) > 1 else self.backlogs[0]

    def stats(self) -> dict[str, Any]:
        came = [t for t in self.deliveries if t <= self.now]
        last = max(came, default=self.sink_started)
        return {"raw": len(came), "unique": len(came), "idle_seconds": self.now - last}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World([0], [])
    monkeypatch.setattr(sampling, "time", w)
    monkeypatch.setattr(sampling, "sample_backlog", w.backlog)
    monkeypatch.setattr(sampling.sink, "stats", w.stats)
    return w


def drain(timeout: float = 30.0, settle: float = 2.0, quiet_before: bool = False) -> int | None:
    return sampling.drain(timeout, Progress("test", timeout), settle=settle, quiet_before=quiet_before)


def test_before_a_reset_a_quiet_spell_that_began_before_the_drain_counts_whole(world: World) -> None:
    world.deliveries = [90.0]  # the last delivery 10 s ago: the previous cell's drain already waited
    assert drain(quiet_before=True) == 0
    assert world.sleeps == []


def test_after_a_load_the_sink_must_stay_quiet_settle_seconds_from_the_call(world: World) -> None:
    """Its faults just undone, a delivery retried with backoff may still land after a long quiet."""
    world.deliveries = [90.0, 101.5]  # quiet for 10 s, then a retry lands 1.5 s into the drain
    assert drain(settle=2.0) == 0
    assert world.now >= 101.5 + 2.0  # it saw the retry, and waited for the quiet after it


def test_the_drain_waits_for_the_backlog_then_for_the_sink_to_be_quiet(world: World) -> None:
    world.backlogs = [5, 3, 0]  # two reads with records left, then none
    world.deliveries = [100.2, 100.4, 101.2]  # the last one lands after the backlog emptied
    assert drain() == 0
    assert world.now >= 101.2 + 2.0  # quiet for `settle` seconds after the last delivery, not before
    assert world.now < 101.2 + 2.0 + sampling.POLL_SECONDS  # and no poll later than needed


def test_a_sink_that_just_started_is_not_yet_quiet(world: World) -> None:
    world.sink_started = 99.5  # restarted half a second ago, nothing since
    drain(settle=2.0, quiet_before=True)
    assert world.now == pytest.approx(101.5)


def test_a_backlog_that_never_empties_gives_up_at_the_timeout_with_what_is_left(world: World) -> None:
    world.backlogs = [7]
    world.deliveries = [50.0]
    assert drain(timeout=3.0) == 7
    assert world.now >= 100.0 + 3.0  # it tried until the timeout
