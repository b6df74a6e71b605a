"""The fault timeline on the real stack: a broker restart does not hold up the other faults."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chaos.engine import Timeline
from chaos.scenario import LinkDownFault, ProcessFault

pytestmark = pytest.mark.stack


def test_a_fault_due_while_the_broker_restarts_is_applied_before_it_is_ready(stack: Any) -> None:
    faults: list[Any] = [
        ProcessFault(kind="kill", at=0.5, duration=0.5, process="kafka"),
        LinkDownFault(kind="link-down", at=2, duration=1, link="push"),
    ]
    tl = Timeline(faults, 10.0, stack.toxiproxy, stack)
    kill, link = tl.windows
    tl.start()
    try:
        deadline = time.monotonic() + 120  # a guard against hanging, not an assertion
        while link.undone_at is None and time.monotonic() < deadline:
            tl.tick()
            time.sleep(0.1)
    finally:
        tl.undo_all()  # waits until Kafka is ready again: the next test gets a whole stack
    assert kill.error is None and link.error is None
    assert kill.undone_at is not None and link.applied_at is not None and kill.recovered_at is not None
    # A restarted broker takes seconds to be ready; a blocking restart applied the link fault only after that.
    assert kill.undone_at < link.applied_at < kill.recovered_at
    assert stack.ready("kafka")
