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
    """A restarted process is ready at its `warmup`-th probe (the first by default)."""

    def __init__(self, fail_on: str = "", warmup: int = 1) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_on = fail_on
        self.warmup = warmup
        self.probes: dict[str, int] = {}  # restarted process -> probes so far

    def _do(self, what: str, name: str) -> None:
        if what == self.fail_on:
            raise RuntimeError(f"cannot {what} {name}")
        self.calls.append((what, name))

    def kill(self, name: str) -> None:
        self._do("kill", name)

    def restart(self, name: str) -> None:
        self._do("restart", name)
        self.probes[name] = 0

    def ready(self, name: str) -> bool:
        self._do("ready", name)
        self.probes[name] += 1
        return self.probes[name] >= self.warmup

    def pause(self, name: str) -> None:
        self._do("pause", name)

    def resume(self, name: str) -> None:
        self._do("resume", name)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def faults() -> list[Any]:
    return [
        ToxicFault(kind="toxic", at=2, duration=3, link="push", toxic="latency", attributes={"latency": 100}),
        LinkDownFault(kind="link-down", at=4, duration=2, link="notification"),
        ProcessFault(kind="kill", at=5, process="kafka"),  # until the load ends
    ]


def make(
    procs: FakeProcesses | None = None, fault_list: list[Any] | None = None
) -> tuple[Timeline, FakeToxiproxy, FakeProcesses, Clock, Any]:
    tp, pr, clock = FakeToxiproxy(), procs or FakeProcesses(), Clock()
    metrics = ChaosMetrics(CollectorRegistry())
    tl = Timeline(
        faults() if fault_list is None else fault_list,
        10.0,
        tp,  # type: ignore[arg-type]
        pr,
        metrics=metrics,
        clock=clock,
        sleep=clock.sleep,
        poll=0.5,
    )
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
    assert at(tl, clock, 10.0) == ["end kill kafka", "recovered kill kafka"]  # ready at the first probe
    assert tp.calls == [
        ("add", "push", "latency", "fault-0"),
        ("disable", "notification"),
        ("remove", "push", "fault-0"),
        ("enable", "notification"),
    ]
    assert pr.calls == [("kill", "kafka"), ("restart", "kafka"), ("ready", "kafka")]
    assert metrics.fault_active.labels("toxic", "link:push", "latency(downstream) on push")._value.get() == 0
    w = tl.windows[0]
    assert (w.start, w.end, w.applied_at, w.undone_at, w.recovered_at) == (2, 5, 2.0, 5.0, 5.0)


def test_interrupted_run_undoes_every_active_fault() -> None:
    tl, tp, pr, clock, _ = make()
    at(tl, clock, 5.5)  # all three active
    tl.undo_all()
    assert ("enable", "notification") in tp.calls
    assert ("remove", "push", "fault-0") in tp.calls
    assert pr.calls[-2:] == [("restart", "kafka"), ("ready", "kafka")]
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


def kill_then_toxics() -> list[Any]:
    return [
        ProcessFault(kind="kill", at=2, duration=2, process="kafka"),
        ToxicFault(kind="toxic", at=5, duration=2, link="push", toxic="latency", attributes={"latency": 100}),
        LinkDownFault(kind="link-down", at=6, duration=1, link="notification"),
    ]


def test_other_faults_apply_on_time_while_a_killed_process_restarts() -> None:
    tl, tp, pr, clock, metrics = make(FakeProcesses(warmup=4), kill_then_toxics())
    assert at(tl, clock, 2.0) == ["start kill kafka"]
    assert at(tl, clock, 4.0) == ["end kill kafka"]  # restarted, not ready at the first probe
    kill = tl.windows[0]
    assert (kill.undone_at, kill.recovered_at, kill.recovered_unix) == (4.0, None, None)
    gauge = metrics.fault_active.labels("kill", "process:kafka", "kill kafka")
    assert gauge._value.get() == 1, "down until ready: the dashboards shade what the report shades"
    assert tl.active() == ["kill kafka (recovering)"]
    assert at(tl, clock, 5.0) == ["start latency(downstream) on push"]
    assert at(tl, clock, 6.0) == ["start notification down"]
    assert (tl.windows[1].applied_at, tl.windows[2].applied_at) == (5.0, 6.0), "applied on time"
    assert at(tl, clock, 6.5) == ["recovered kill kafka"]  # the fourth probe
    assert kill.recovered_at == 6.5 and kill.recovered_unix is not None and kill.error is None
    assert gauge._value.get() == 0
    assert at(tl, clock, 7.0) == ["end latency(downstream) on push", "end notification down"]
    assert pr.calls == [("kill", "kafka"), ("restart", "kafka")] + [("ready", "kafka")] * 4
    assert tp.calls[:2] == [("add", "push", "latency", "fault-1"), ("disable", "notification")]
    assert clock.sleeps == [], "the timeline never waited"


def test_undo_all_waits_until_restarted_processes_are_ready() -> None:
    tl, _tp, pr, clock, _ = make(FakeProcesses(warmup=5), kill_then_toxics())
    at(tl, clock, 2.0)
    at(tl, clock, 4.0)  # probe 1
    tl.undo_all()  # probes 2 to 5, waiting between them
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert pr.probes == {"kafka": 5}
    assert tl.windows[0].recovered_at == 5.5 and tl.active() == []
    assert at(tl, clock, 10.0) == []


def test_undo_all_of_an_active_kill_restarts_and_waits() -> None:
    tl, _tp, pr, clock, _ = make(FakeProcesses(warmup=3), kill_then_toxics())
    at(tl, clock, 3.0)  # interrupted while kafka is down
    tl.undo_all()
    assert pr.calls == [("kill", "kafka"), ("restart", "kafka")] + [("ready", "kafka")] * 3
    w = tl.windows[0]
    assert (w.undone_at, w.recovered_at) == (3.0, 4.0)


def test_settle_waits_for_recovery_without_undoing_the_rest() -> None:
    tl, tp, _pr, clock, _ = make(FakeProcesses(warmup=3), kill_then_toxics())
    at(tl, clock, 2.0)
    at(tl, clock, 4.0)  # probe 1
    tl.settle()  # probes 2 and 3
    assert tl.windows[0].recovered_at == 4.5 and clock.sleeps == [0.5]
    assert at(tl, clock, 5.0) == ["start latency(downstream) on push"], "the timeline goes on"
    assert ("reset",) not in tp.calls


def test_a_failed_restart_is_recorded_and_raised() -> None:
    tl, _tp, _pr, clock, _ = make(FakeProcesses(fail_on="ready"), kill_then_toxics())
    at(tl, clock, 2.0)
    with pytest.raises(RuntimeError, match="cannot ready kafka"):
        at(tl, clock, 4.0)
    w = tl.windows[0]
    assert w.error == "undo failed: RuntimeError: cannot ready kafka"
    assert w.undone_at == 4.0 and w.recovered_at is None, "it never recovered"
    tl.undo_all()  # the run's `finally`: nothing left to wait for


def test_undo_all_raises_a_restart_that_never_became_ready() -> None:
    tl, tp, _pr, clock, _ = make(FakeProcesses(fail_on="ready"))
    at(tl, clock, 5.5)  # all three active
    with pytest.raises(RuntimeError, match=r"could not undo every fault: cannot ready kafka"):
        tl.undo_all()
    assert tl.windows[2].error == "undo failed: RuntimeError: cannot ready kafka"
    assert ("enable", "notification") in tp.calls and tp.calls[-1] == ("reset",)
    assert tl.active() == []


def test_a_kill_right_after_the_last_one_waits_for_the_restart_without_stalling() -> None:
    # Back-to-back windows on one process do not overlap (chaos.scenario allows them).
    faults = [
        ProcessFault(kind="kill", at=2, duration=2, process="kafka"),
        ProcessFault(kind="kill", at=4, duration=2, process="kafka"),
        LinkDownFault(kind="link-down", at=4.5, duration=1, link="notification"),
    ]
    tl, _tp, pr, clock, _ = make(FakeProcesses(warmup=3), faults)
    at(tl, clock, 2.0)
    assert at(tl, clock, 4.0) == ["end kill kafka"]  # probe 1; the second kill waits
    first, second, _link = tl.windows
    assert tl.active() == ["kill kafka (recovering)", "kill kafka (waiting for its process)"]
    assert at(tl, clock, 4.5) == ["start notification down"], "the timeline did not stall"  # probe 2
    assert at(tl, clock, 5.0) == ["recovered kill kafka", "start kill kafka (late: its target was restarting)"]
    assert first.recovered_at == 5.0 and second.applied_at == 5.0, "killed once ready again"
    assert at(tl, clock, 5.5) == ["end notification down"]
    assert at(tl, clock, 6.0) == [], "its undo moved with it: it lasts the planned 2 s"
    assert at(tl, clock, 7.0) == ["end kill kafka"] and second.undone_at == 7.0
    assert pr.calls[:6] == [("kill", "kafka"), ("restart", "kafka")] + [("ready", "kafka")] * 3 + [("kill", "kafka")]
    assert clock.sleeps == []


def test_a_deferred_fault_never_applied_is_said_so() -> None:
    faults = [
        ProcessFault(kind="kill", at=2, duration=2, process="kafka"),
        ProcessFault(kind="pause", at=4, duration=2, process="kafka"),
    ]
    tl, _tp, pr, clock, _ = make(FakeProcesses(warmup=3), faults)
    at(tl, clock, 2.0)
    at(tl, clock, 4.0)
    tl.undo_all()  # the load ended while kafka was restarting
    assert tl.windows[1].applied_at is None
    assert tl.windows[1].error == "not applied: its process was still restarting when the load ended"
    assert ("pause", "kafka") not in pr.calls and tl.active() == []
