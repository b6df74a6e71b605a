"""facts.probe's deadline bookkeeping: Pending (a restart's readiness, probed one call at a time,
used by harness.supervisor and compose.control) and wait_until (the same, blocking)."""

from __future__ import annotations

import pytest

from facts.probe import Pending, wait_until


class Answers:
    """A readiness check that gives the listed answers in turn (an exception instance is raised)."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_false_while_not_reached_then_true_without_probing_again() -> None:
    check = Answers(False, False, True)
    pending = Pending(check, 60, "thing ready")
    assert [pending.poll(), pending.poll(), pending.poll()] == [False, False, True]
    assert pending.poll() is True and check.calls == 3, "reached: not probed again"


def test_a_tolerated_exception_is_one_failed_probe_and_others_propagate() -> None:
    check = Answers(OSError("refused"), True)
    pending = Pending(check, 60, "thing ready", tolerate=(OSError,))
    assert pending.poll() is False
    assert pending.poll() is True
    strict = Pending(Answers(ValueError("bad answer")), 60, "thing ready", tolerate=(OSError,))
    with pytest.raises(ValueError, match="bad answer"):
        strict.poll()


def test_the_deadline_raises_naming_what_but_a_last_success_still_counts() -> None:
    with pytest.raises(TimeoutError, match=r"^kafka healthy: not reached after 0s$"):
        Pending(Answers(False), 0, "kafka healthy").poll()
    with pytest.raises(TimeoutError, match="not reached"):
        Pending(Answers(OSError("refused")), 0, "kafka healthy", tolerate=(OSError,)).poll()
    assert Pending(Answers(True), 0, "kafka healthy").poll() is True, "probed before the deadline is judged"


def test_wait_until_polls_until_done_or_the_timeout() -> None:
    check = Answers(False, False, True)
    wait_until(check, 60, "thing ready", poll=0)
    assert check.calls == 3
    with pytest.raises(TimeoutError, match=r"^never: not reached after 0s$"):
        wait_until(Answers(False), 0, "never", poll=0)
