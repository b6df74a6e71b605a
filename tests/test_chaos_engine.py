"""The fault timeline with a fake clock, a fake Toxiproxy and fake processes."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from chaos.engine import ChaosMetrics, Timeline
from chaos.scenario import LinkDownFault, ProcessFault, ToxicFault
from chaos.toxiproxy import Toxic


class FakeToxiproxy:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def add_toxic(self, toxic: Toxic) -> str:
        self.calls.append(("add", toxic.link, toxic.type, toxic.toxic_name))
        return toxic.toxic_name

    def remove_toxic(self, link: str, name: str) -> None:
        self.calls.append(("remove", link, name))

    def set_enabled(self, link: str, enabled: bool) -> None:
        self.calls.append(("enable" if enabled else "disable", link))

    def reset(self) -> None:
        self.calls.append(("reset",))


class FakeProcesses:
    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def _do(self, what: str, name: str) -> None:
        if what == self.fail_on:
            raise RuntimeError(f"cannot {what} {name}")
        self.calls.append((what, name))

    def kill(self, name: str) -> None:
        self._do("kill", name)

    def restart(self, name: str) -> None:
        self._do("restart", name)

    def pause(self, name: str) -> None:
        self._do("pause", name)

    def resume(self, name: str) -> None:
        self._do("resume", name)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def faults() -> list[Any]:
    return [
        ToxicFault(kind="toxic", at=2, duration=3, link="push", toxic="latency", attributes={"latency": 100}),
        LinkDownFault(kind="link-down", at=4, duration=2, link="notification"),
        ProcessFault(kind="kill", at=5, process="kafka"),  # until the load ends
    ]


def make(procs: FakeProcesses | None = None) -> tuple[Timeline, FakeToxiproxy, FakeProcesses, Clock, Any]:
    tp, pr, clock = FakeToxiproxy(), procs or FakeProcesses(), Clock()
    metrics = ChaosMetrics(CollectorRegistry())
    tl = Timeline(faults(), 10.0, tp, pr, metrics=metrics, clock=clock)  # type: ignore[arg-type]
    tl.start()
    return tl, tp, pr, clock, metrics


def at(tl: Timeline, clock: Clock, t: float) -> list[str]:
    clock.now = 100.0 + t
    return tl.tick()


def test_faults_apply_and_undo_on_schedule() -> None:
    tl, tp, pr, clock, metrics = make()
    assert at(tl, clock, 1.9) == []
    assert at(tl, clock, 2.0) == ["start latency(downstream) on push"]
    assert metrics.fault_active.labels("toxic", "link:push", "latency(downstream) on push")._value.get() == 1
    assert at(tl, clock, 4.5) == ["start notification down"]
    assert at(tl, clock, 5.0) == ["end latency(downstream) on push", "start kill kafka"]
    assert at(tl, clock, 6.0) == ["end notification down"]
    assert at(tl, clock, 10.0) == ["end kill kafka"]
    assert tp.calls == [
        ("add", "push", "latency", "fault-0"),
        ("disable", "notification"),
        ("remove", "push", "fault-0"),
        ("enable", "notification"),
    ]
    assert pr.calls == [("kill", "kafka"), ("restart", "kafka")]
    assert metrics.fault_active.labels("toxic", "link:push", "latency(downstream) on push")._value.get() == 0
    w = tl.windows[0]
    assert (w.start, w.end, w.applied_at, w.undone_at, w.recovered_at) == (2, 5, 2.0, 5.0, 5.0)


def test_interrupted_run_undoes_every_active_fault() -> None:
    tl, tp, pr, clock, _ = make()
    at(tl, clock, 5.5)  # all three active
    tl.undo_all()
    assert ("enable", "notification") in tp.calls
    assert ("remove", "push", "fault-0") in tp.calls
    assert pr.calls[-1] == ("restart", "kafka")
    assert tp.calls[-1] == ("reset",), "Toxiproxy is reset as a safety net"
    assert tl.active() == []
    assert at(tl, clock, 10.0) == [], "nothing is applied after undo_all"


def test_a_fault_that_cannot_be_applied_is_recorded_not_fatal() -> None:
    tl, _tp, pr, clock, _ = make(FakeProcesses(fail_on="kill"))
    done = at(tl, clock, 5.0)
    assert any("FAILED: RuntimeError: cannot kill kafka" in d for d in done)
    assert tl.windows[2].error == "RuntimeError: cannot kill kafka"
    assert at(tl, clock, 10.0) == ["end notification down"]
    assert ("restart", "kafka") not in pr.calls, "a fault never applied is never undone"


def test_failed_undo_is_raised_after_trying_the_rest() -> None:
    tl, tp, _pr, clock, _ = make(FakeProcesses(fail_on="restart"))
    at(tl, clock, 5.5)
    with pytest.raises(RuntimeError, match=r"could not undo every fault: .*cannot restart kafka"):
        tl.undo_all()
    assert ("enable", "notification") in tp.calls
