"""A circuit breaker: closed -> open on too many failures, open -> half-open after a pause,
half-open -> closed after successful trial calls (or back to open on a failing one).

It trips on whichever comes first: `consecutive_failures` failures in a row, or a failure ratio of
at least `failure_ratio` over the last `window` calls (once `min_calls` have been seen).

Callers take a ticket with `try_acquire()` and report its outcome with `record()`. The ticket is
the breaker's generation (bumped at every transition), so an answer to a call started before a
transition cannot count as a half-open trial or re-trip a breaker that already moved on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    failure_ratio: float = 0.5
    window: int = 20
    min_calls: int = 10
    consecutive_failures: int = 5
    open_seconds: float = 5.0
    half_open_max_calls: int = 1  # trial calls let through at once; that many successes close it

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if min(self.window, self.min_calls, self.consecutive_failures, self.half_open_max_calls) < 1:
            raise ValueError("window, min_calls, consecutive_failures and half_open_max_calls must be >= 1")
        if self.min_calls > self.window:
            raise ValueError("min_calls cannot exceed window")
        if self.open_seconds <= 0:
            raise ValueError("open_seconds must be > 0")


class CircuitBreaker:
    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._outcomes: deque[bool] = deque(maxlen=self.settings.window)  # True = success
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._trials_in_flight = 0
        self._trial_successes = 0

    @property
    def state(self) -> BreakerState:
        self._maybe_half_open()
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 unless open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.settings.open_seconds - self._clock())

    def try_acquire(self) -> int | None:
        """A ticket for one call, or None: fail fast without calling."""
        state = self.state
        if state is BreakerState.OPEN:
            return None
        if state is BreakerState.HALF_OPEN:
            if self._trials_in_flight >= self.settings.half_open_max_calls:
                return None
            self._trials_in_flight += 1
        return self._generation

    def record(self, ticket: int, success: bool) -> None:
        if ticket != self._generation:
            return  # the call began under an earlier state: its outcome says nothing now
        if self._state is BreakerState.HALF_OPEN:
            self._trials_in_flight -= 1
            if not success:
                self._transition(BreakerState.OPEN)
                return
            self._trial_successes += 1
            if self._trial_successes >= self.settings.half_open_max_calls:
                self._transition(BreakerState.CLOSED)
            return
        self._outcomes.append(success)
        self._consecutive_failures = 0 if success else self._consecutive_failures + 1
        if not success and self._should_trip():
            self._transition(BreakerState.OPEN)

    def release(self, ticket: int) -> None:
        """Give a ticket back without an outcome (the call was cancelled)."""
        if ticket == self._generation and self._state is BreakerState.HALF_OPEN:
            self._trials_in_flight -= 1

    def _should_trip(self) -> bool:
        s = self.settings
        if self._consecutive_failures >= s.consecutive_failures:
            return True
        calls = len(self._outcomes)
        return calls >= s.min_calls and self._outcomes.count(False) / calls >= s.failure_ratio

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self.settings.open_seconds:
            self._transition(BreakerState.HALF_OPEN)

    def _transition(self, state: BreakerState) -> None:
        self._state = state
        self._generation += 1
        self._trials_in_flight = 0
        self._trial_successes = 0
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        elif state is BreakerState.CLOSED:
            self._outcomes.clear()
            self._consecutive_failures = 0
        if self._on_transition is not None:
            self._on_transition(state)
