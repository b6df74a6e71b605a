"""The coordinator per role (local, master, worker) over fake Locust runners: no sockets, no load sent."""

from __future__ import annotations

import argparse
import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
from locust.event import Events
from locust.runners import (
    STATE_RUNNING,
    STATE_STOPPING,
    LocalRunner,
    MasterRunner,
    WorkerNode,
    WorkerNodes,
    WorkerRunner,
)

from loadtests.coordination import Coordination, coordinator_for
from loadtests.coordinator import (
    DONE_MESSAGE,
    PLAN_GIVE_UP_SECONDS,
    PLAN_MESSAGE,
    PLAN_WAIT_SECONDS,
    READY_MESSAGE,
    REPORT_KEY,
    START_REPORT_GRACE_SECONDS,
    STARTED_MESSAGE,
)
from loadtests.counters import LoadStats
from loadtests.local_coordinator import LocalCoordinator
from loadtests.master_coordinator import MasterCoordinator
from loadtests.run_plan import LOCAL_WORKER_ID, RunPlan
from loadtests.settings import add_arguments
from loadtests.worker_coordinator import WorkerCoordinator

DURATION = 2.0
ANY_ENV: Any = None  # the master's message handlers do not look at it


class _Parser(argparse.ArgumentParser):
    def add_argument(self, *args, include_in_web_ui=True, **kwargs):  # Locust's extra keyword
        return super().add_argument(*args, **kwargs)


def options(*argv: str) -> argparse.Namespace:
    parser = _Parser()
    add_arguments(parser)
    return parser.parse_args(["--duration", str(DURATION), "--metrics-port", "0", "--request-timeout", "1", *argv])


class FakeMaster(MasterRunner):
    greenlet = None  # Runner.__del__ looks at it

    def __init__(self, *workers: str) -> None:  # no sockets: only what the coordinator uses
        self.clients = WorkerNodes()
        self.worker_indexes: dict[str, int] = {}
        self.worker_index_max = 0
        self.state = STATE_RUNNING
        self.sent: list[tuple[str, Any, str | None]] = []
        self.handlers: dict[str, Any] = {}
        for w in workers:
            self.connect(w)

    def connect(self, worker: str) -> None:
        self.clients[worker] = WorkerNode(worker)
        self.get_worker_index(worker)

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append((msg_type, data, client_id))

    def register_message(self, msg_type, listener, concurrent=False):
        self.handlers[msg_type] = listener


class FakeWorker(WorkerRunner):
    greenlet = None

    def __init__(self, client_id: str = "w1", worker_index: int = 0) -> None:
        self.client_id = client_id
        self.worker_index = worker_index
        self.state = STATE_RUNNING
        self.sent: list[tuple[str, Any]] = []
        self.handlers: dict[str, Any] = {}

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append((msg_type, data))

    def register_message(self, msg_type, listener, concurrent=False):
        self.handlers[msg_type] = listener


def local_runner() -> LocalRunner:
    runner = LocalRunner.__new__(LocalRunner)  # no __init__: isinstance is all the dispatch looks at
    runner.greenlet = None
    runner.state = STATE_RUNNING
    return runner


def environment(runner: Any, *argv: str) -> Any:
    return SimpleNamespace(parsed_options=options(*argv), events=Events(), runner=runner)


def message(node_id: str, **data: Any) -> Any:
    return SimpleNamespace(node_id=node_id, data=data)


def started(coordinator: Any, runner: Any, *argv: str) -> Any:
    env = environment(runner, *argv)
    coordinator.on_init(env)
    coordinator.on_test_start(env)
    return env


def past_profile(plan: RunPlan, seconds: float = DURATION + 0.1) -> RunPlan:
    """The same plan with its t=0 `seconds` ago."""
    return dataclasses.replace(plan, epoch_unix_nanos=time.time_ns() - int(seconds * 1e9))


def plans_sent(runner: FakeMaster) -> dict[str | None, Any]:
    return {client: data for kind, data, client in runner.sent if kind == PLAN_MESSAGE}


# ---- the one dispatch ------------------------------------------------------------------------


def test_the_role_follows_the_runner_type():
    assert type(coordinator_for(FakeMaster("w1"))) is MasterCoordinator
    assert type(coordinator_for(FakeWorker())) is WorkerCoordinator
    assert type(coordinator_for(local_runner())) is LocalCoordinator
    assert type(coordinator_for(None)) is LocalCoordinator  # run_single_user: no runner


def test_coordination_chooses_at_init_and_hands_over():
    coordination = Coordination()
    assert coordination.env is None and coordination.users() is None
    runner = FakeMaster("w1", "w2")
    env = environment(runner)
    coordination.on_init(env, runner)
    assert coordination.env is env
    assert isinstance(coordination.coordinator, MasterCoordinator)
    assert coordination.users() == 2  # before test_start: this tick starts the test, a user per worker
    assert set(runner.handlers) == {READY_MESSAGE, STARTED_MESSAGE, DONE_MESSAGE}


def test_init_serves_where_the_shape_runs_and_registers_each_roles_messages(monkeypatch):
    served: list[str] = []
    monkeypatch.setattr(
        "loadtests.coordinator.Coordinator._serve", lambda self, env, settings: served.append(self.role)
    )
    master, worker = FakeMaster("w1"), FakeWorker()
    for runner in (None, local_runner(), master, worker):
        coordinator_for(runner).on_init(environment(runner))
    assert served == ["local", "local", "master"]  # not the worker: Locust runs the shape on the master
    assert set(master.handlers) == {READY_MESSAGE, STARTED_MESSAGE, DONE_MESSAGE}
    assert set(worker.handlers) == {PLAN_MESSAGE}


def test_a_bad_option_stops_every_role_at_init():
    for runner in (None, FakeMaster("w1"), FakeWorker()):
        with pytest.raises(SystemExit, match="--max-in-flight"):
            coordinator_for(runner).on_init(environment(runner, "--max-in-flight", "0"))


# ---- local -----------------------------------------------------------------------------------


def test_local_plans_at_test_start_and_stops_once_its_share_drained():
    c = LocalCoordinator(local_runner())
    env = environment(c.runner)
    c.on_init(env)
    assert c.users() == 1
    c.on_test_start(env)
    assert c.plan is not None and c.plan.shares == {LOCAL_WORKER_ID: (0, 1)}
    assert c.share is not None and (c.share.index, c.share.count) == (0, 1)
    assert c.info.run_id == c.plan.run_id and c.info.epoch_unix_seconds == c.plan.epoch_unix_seconds
    assert c.users() == 1  # the profile runs
    c.plan = past_profile(c.plan)
    assert c.users() == 1  # over, but not drained yet
    c._share_drained(c.plan)
    assert c.users() is None


def test_local_drives_its_share_once_its_user_starts(monkeypatch):
    c = LocalCoordinator(local_runner())
    started(c, c.runner)
    driven: list[tuple[Any, ...]] = []
    monkeypatch.setattr(c, "_drive", lambda *args: driven.append(args))
    c.drained = True
    c.volunteer("http://127.0.0.1:1")
    gevent.sleep(0)
    assert not c.drained
    assert [(plan, share, host) for _, plan, share, host in driven] == [(c.plan, c.share, "http://127.0.0.1:1")]
    c.volunteer("http://127.0.0.1:1")  # a second user stays idle
    gevent.sleep(0)
    assert len(driven) == 1


def test_local_stops_anyway_once_the_drain_is_overdue():
    c = LocalCoordinator(local_runner())
    started(c, c.runner)
    assert c.plan is not None
    c.plan = past_profile(c.plan, DURATION + 1 + 5 + 0.5)  # request timeout + drain margin, and some
    assert c.users() is None


def test_an_invalid_run_stops_at_once():
    c = LocalCoordinator(local_runner())
    env = environment(c.runner)
    c.on_init(env)
    env.parsed_options.max_in_flight = 0  # changed in the web UI's form, say
    c.on_test_start(env)
    assert c.error and c.users() is None


# ---- master ----------------------------------------------------------------------------------


def test_master_plans_once_every_worker_given_a_user_asked():
    runner = FakeMaster("w1", "w2")
    c = MasterCoordinator(runner)
    started(c, runner)
    assert c.run_id and c.plan is None and c.expected == {"w1", "w2"} and c.info.epoch_unix_seconds == 0
    c._on_ready_message(ANY_ENV, message("w2"))
    assert c.plan is None and not runner.sent and c.users() == 2
    c._on_ready_message(ANY_ENV, message("w1"))
    assert c.plan is not None and c.plan.run_id == c.run_id
    assert c.plan.shares == {"w1": (0, 2), "w2": (1, 2)}  # in worker index order
    assert plans_sent(runner) == {"w1": {"plan": c.plan.to_wire()}, "w2": {"plan": c.plan.to_wire()}}
    assert c.info.epoch_unix_seconds == c.plan.epoch_unix_seconds


def test_master_gives_a_late_worker_the_plan_without_a_share(caplog):
    runner = FakeMaster("w1")
    c = MasterCoordinator(runner)
    started(c, runner)
    c._on_ready_message(ANY_ENV, message("w1"))
    runner.connect("w2")
    c._on_ready_message(ANY_ENV, message("w2"))
    assert c.plan is not None and set(c.plan.shares) == {"w1"}
    assert plans_sent(runner)["w2"] == {"plan": c.plan.to_wire()}
    assert "worker w2 (index 1) started a user after run" in caplog.text


def test_master_plans_with_the_workers_that_asked_once_it_waited_enough(caplog):
    runner = FakeMaster("w1", "w2")
    c = MasterCoordinator(runner)
    started(c, runner)
    c._on_ready_message(ANY_ENV, message("w2"))
    assert c.plan is None
    c.run_started = time.monotonic() - PLAN_WAIT_SECONDS
    assert c.users() == 2
    assert c.plan is not None and c.plan.shares == {"w2": (0, 1)}
    assert "no user started on worker(s) w1 (index 0)" in caplog.text


def test_master_gives_up_when_no_user_asked():
    runner = FakeMaster("w1")
    c = MasterCoordinator(runner)
    started(c, runner)
    c.run_started = time.monotonic() - PLAN_GIVE_UP_SECONDS - 1
    assert c.users() is None


def test_master_answers_a_user_outside_a_run_with_no_plan():
    runner = FakeMaster("w1")
    c = MasterCoordinator(runner)
    c.on_init(environment(runner))
    c._on_ready_message(ANY_ENV, message("w1"))
    assert runner.sent == [(PLAN_MESSAGE, {"plan": None, "reason": "no run in progress"}, "w1")]


def test_master_stops_when_every_worker_with_a_share_said_done_and_reported_since(caplog):
    runner = FakeMaster("w1", "w2", "w3")
    c = MasterCoordinator(runner)
    started(c, runner)
    for w in ("w1", "w2"):
        c._on_ready_message(ANY_ENV, message(w))
    c.run_started = time.monotonic() - PLAN_WAIT_SECONDS
    assert c.users() == 3  # planned without w3; one user per connected worker all the same
    assert c.plan is not None
    run_id = c.plan.run_id
    c._on_started_message(ANY_ENV, message("w1", run_id=run_id))
    c.plan = past_profile(c.plan, START_REPORT_GRACE_SECONDS + 0.5)  # the drain is not overdue yet
    assert c.users() == 3
    assert "worker(s) w2 (share 1 of 2) have a share of run" in caplog.text
    c._on_done_message(ANY_ENV, message("w1", run_id=run_id))
    c._on_done_message(ANY_ENV, message("w2", run_id="another run"))
    c._on_worker_report("w1", {REPORT_KEY: LoadStats(arrivals=3, started=2, missed=1).to_wire()})
    assert c.done == {"w1"} and c.reported == {"w1"} and c.users() == 3
    c._on_done_message(ANY_ENV, message("w2", run_id=run_id))
    assert c.users() == 3  # done, but its last report is not in yet
    c._on_worker_report("w2", {REPORT_KEY: LoadStats(arrivals=4, started=4).to_wire()})
    assert c.users() is None
    total = c.current_stats()
    assert (total.arrivals, total.started, total.missed) == (7, 6, 1)
    assert c.worker_count() == 3


# ---- worker ----------------------------------------------------------------------------------


def test_worker_asks_for_the_plan_and_drives_its_share_from_the_answer(monkeypatch):
    runner = FakeWorker("w2", worker_index=1)
    c = WorkerCoordinator(runner)
    env = environment(runner)
    c.on_init(env)  # no test_start: a worker may miss it
    assert set(runner.handlers) == {PLAN_MESSAGE}
    driven: list[tuple[Any, ...]] = []
    monkeypatch.setattr(c, "_drive", lambda *args: driven.append(args))
    c.volunteer("http://127.0.0.1:1")
    assert runner.sent == [(READY_MESSAGE, {})]
    plan = RunPlan.new(["w1", "w2"])
    c._on_plan_message(env, message("master", plan=plan.to_wire()))
    gevent.sleep(0)
    assert c.plan == plan and c.share is not None and (c.share.index, c.share.count) == (1, 2)
    assert [(p, host) for _, p, _, host in driven] == [(plan, "http://127.0.0.1:1")]
    assert c.info.run_id == plan.run_id and c.info.epoch_unix_seconds == plan.epoch_unix_seconds
    c._on_plan_message(env, message("master", plan=plan.to_wire()))  # the answer to an extra user
    gevent.sleep(0)
    assert len(driven) == 1
    c._share_started(plan)
    c._share_drained(plan)
    assert runner.sent[1:] == [(STARTED_MESSAGE, {"run_id": plan.run_id}), (DONE_MESSAGE, {"run_id": plan.run_id})]
    data: dict[str, Any] = {}
    c._on_report_to_master("w2", data)
    assert LoadStats.from_wire(data[REPORT_KEY]) == c.stats


def test_worker_without_a_share_sends_nothing_and_says_so(monkeypatch, caplog):
    runner = FakeWorker("w3", worker_index=2)
    c = WorkerCoordinator(runner)
    env = environment(runner)
    c.on_init(env)
    monkeypatch.setattr(c, "_drive", lambda *args: pytest.fail("a worker without a share drove load"))
    c.volunteer("http://127.0.0.1:1")
    c._on_plan_message(env, message("master", plan=RunPlan.new(["w1", "w2"]).to_wire()))
    gevent.sleep(0)
    assert c.share is None and c._driving is None
    assert "this worker (index 2) got a user but no share of run" in caplog.text
    c._on_plan_message(env, message("master", plan=None, reason="no run in progress"))
    assert "the master has no plan for it (no run in progress)" in caplog.text


def test_worker_ignores_a_plan_that_arrives_while_stopping(monkeypatch, caplog):
    runner = FakeWorker("w1")
    c = WorkerCoordinator(runner)
    env = environment(runner)
    c.on_init(env)
    monkeypatch.setattr(c, "_drive", lambda *args: pytest.fail("drove load while stopping"))
    c.volunteer("http://127.0.0.1:1")
    runner.state = STATE_STOPPING
    c._on_plan_message(env, message("master", plan=RunPlan.new(["w1"]).to_wire()))
    gevent.sleep(0)
    assert c._driving is None
    assert "arrived while the test was stopping; ignored" in caplog.text


# ---- Locust's stats, fed once a second --------------------------------------------------------


def test_locust_report_merges_a_second_of_requests_into_locusts_stats():
    from locust.env import Environment

    from loadtests.locust_stats import LocustReport
    from loadtests.outcome import Outcome
    from loadtests.reaction import REQUEST_NAME

    env = Environment(events=Events())
    report = LocustReport(env, "http://h/v1/posts/[post_id]/reactions")
    for i in range(10):
        report.add(Outcome.ACK, None, 0.002 * (i + 1), 40, f"id-{i}", time.time())
    report.add(Outcome.FAILED, "HTTP 503", 0.150, 10, "f-1", time.time())
    report.add(Outcome.FAILED, "HTTP 503", 0.160, 10, "f-2", time.time())
    report.add(Outcome.UNKNOWN, "Timeout: 10 seconds", 10.0, 0, "u-1", time.time())
    assert env.stats.total.num_requests == 0  # nothing until the flush
    report.flush()
    report.flush()  # an empty batch changes nothing
    entry = env.stats.get(REQUEST_NAME, "POST")
    for e in (entry, env.stats.total):
        assert (e.num_requests, e.num_failures) == (13, 3)
        assert e.total_content_length == 420
        assert e.min_response_time == pytest.approx(2.0) and e.max_response_time == pytest.approx(10_000.0)
        assert sum(e.response_times.values()) == 13 and e.response_times[150] == 1 and e.response_times[10_000] == 1
        assert sum(e.num_reqs_per_sec.values()) == 13 and sum(e.num_fail_per_sec.values()) == 3
    errors = {(repr(err.error), err.occurrences) for err in env.stats.errors.values()}
    assert errors == {("RequestFailed('HTTP 503')", 2), ("OutcomeUnknown('Timeout: 10 seconds')", 1)}
    report.add(Outcome.FAILED, "HTTP 503", 0.1, 0, "f-3", time.time())
    report.flush()
    assert entry.num_failures == 4 and len(env.stats.errors) == 2


def test_locust_report_fires_one_event_per_request_when_asked():
    from locust.env import Environment

    from loadtests.locust_stats import LocustReport, OutcomeUnknown
    from loadtests.outcome import Outcome

    events = Events()
    seen: list[dict[str, Any]] = []
    events.request.add_listener(lambda **kw: seen.append(kw))
    report = LocustReport(Environment(events=events), "http://h/x", per_request=True)
    report.add(Outcome.ACK, None, 0.004, 12, "id-1", 1.5)
    report.add(Outcome.UNKNOWN, "Timeout: 1 second", 1.0, 0, "id-2", 2.5)
    report.flush()
    assert [(s["response_time"], s["context"]["reaction_id"], s["start_time"]) for s in seen] == [
        (4.0, "id-1", 1.5),
        (1000.0, "id-2", 2.5),
    ]
    assert seen[0]["exception"] is None and isinstance(seen[1]["exception"], OutcomeUnknown)
