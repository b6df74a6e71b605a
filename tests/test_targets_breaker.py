"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from targets.reaction.breaker import BreakerSettings, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(**settings: float) -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock = Clock()
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(BreakerSettings(**settings), clock=clock, on_transition=seen.append)  # type: ignore[arg-type]
    return breaker, clock, seen


def call(breaker: CircuitBreaker, success: bool) -> bool:
    """One call through the breaker; False when it failed fast."""
    ticket = breaker.try_acquire()
    if ticket is None:
        return False
    breaker.record(ticket, success)
    return True


def test_trips_on_consecutive_failures() -> None:
    breaker, _, seen = make(consecutive_failures=3, window=100, min_calls=100)
    for _ in range(2):
        assert call(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    assert call(breaker, True)  # a success resets the streak
    for _ in range(2):
        call(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, False)
    assert breaker.state is BreakerState.OPEN
    assert seen == [BreakerState.OPEN]


def test_trips_on_failure_ratio_once_enough_calls() -> None:
    breaker, _, _ = make(failure_ratio=0.5, window=10, min_calls=6, consecutive_failures=100)
    for success in (False, True, False, True, False):
        call(breaker, success)
    assert breaker.state is BreakerState.CLOSED  # 3/5 failing, but fewer than min_calls
    call(breaker, True)
    assert breaker.state is BreakerState.CLOSED  # 3/6 = 0.5 but the last call succeeded
    call(breaker, False)
    assert breaker.state is BreakerState.OPEN  # 4/7 >= 0.5


def test_ratio_is_over_a_sliding_window() -> None:
    breaker, _, _ = make(failure_ratio=0.5, window=4, min_calls=4, consecutive_failures=100)
    for success in (False, False, True, True, True, True):
        call(breaker, success)
    # The two early failures slid out of the window of 4.
    call(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, False)
    assert breaker.state is BreakerState.OPEN


def test_open_fails_fast_then_half_open_then_closes() -> None:
    breaker, clock, seen = make(consecutive_failures=1, open_seconds=5.0, half_open_max_calls=2)
    call(breaker, False)
    assert breaker.try_acquire() is None
    assert breaker.retry_after() == pytest.approx(5.0)
    clock.now += 4.9
    assert breaker.try_acquire() is None
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    first, second = breaker.try_acquire(), breaker.try_acquire()
    assert first is not None and second is not None
    assert breaker.try_acquire() is None  # only half_open_max_calls trials at once
    breaker.record(first, True)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(second, True)
    assert breaker.state is BreakerState.CLOSED
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert breaker.retry_after() == 0.0


def test_failed_trial_reopens_for_a_full_pause() -> None:
    breaker, clock, _ = make(consecutive_failures=1, open_seconds=2.0)
    call(breaker, False)
    clock.now += 2.0
    assert call(breaker, False)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(2.0)


def test_stale_outcomes_are_ignored() -> None:
    breaker, clock, _ = make(consecutive_failures=2, open_seconds=1.0)
    slow = breaker.try_acquire()  # started while closed, answers late
    assert slow is not None
    call(breaker, False)
    call(breaker, False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 1.0
    trial = breaker.try_acquire()
    assert trial is not None
    breaker.record(slow, True)  # must not count as the half-open trial
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(trial, True)
    assert breaker.state is BreakerState.CLOSED


def test_released_trial_frees_its_slot() -> None:
    breaker, clock, _ = make(consecutive_failures=1, open_seconds=1.0)
    call(breaker, False)
    clock.now += 1.0
    trial = breaker.try_acquire()
    assert trial is not None
    assert breaker.try_acquire() is None
    breaker.release(trial)  # e.g. the request was cancelled
    assert breaker.try_acquire() is not None


def test_closing_forgets_old_failures() -> None:
    breaker, clock, _ = make(consecutive_failures=3, open_seconds=1.0)
    for _ in range(3):
        call(breaker, False)
    clock.now += 1.0
    call(breaker, True)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, False)
    call(breaker, False)
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "settings",
    [
        {"failure_ratio": 0.0},
        {"failure_ratio": 1.5},
        {"window": 0},
        {"min_calls": 30, "window": 20},
        {"open_seconds": 0},
        {"half_open_max_calls": 0},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerSettings(**settings)  # type: ignore[arg-type]
