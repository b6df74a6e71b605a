"""The Locust master (`--processes N` or `--master`): plans the run for the workers whose user started.

At `test_start` it only names the run and notes the workers it gave a user. Each worker's user,
once running, asks for the plan (READY); the master plans once every such worker still connected
has asked, or after PLAN_WAIT_SECONDS with those that have (naming the others), and sends each the
plan (PLAN). A worker that asks later gets the plan without a share. It sums the stats snapshots
the workers attach to Locust's report for /metrics, and keeps the shape's users until every worker
with a share said it drained (DONE) and reported once more (coordinator.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner

from loadtests.coordinator import (
    DONE_MESSAGE,
    PLAN_GIVE_UP_SECONDS,
    PLAN_MESSAGE,
    PLAN_WAIT_SECONDS,
    READY_MESSAGE,
    REPORT_KEY,
    START_REPORT_GRACE_SECONDS,
    STARTED_MESSAGE,
    Coordinator,
    MessageHandler,
    elapsed_since,
)
from loadtests.counters import LoadStats
from loadtests.run_plan import RunPlan, new_run_id
from loadtests.settings import Settings

log = logging.getLogger(__name__)


class MasterCoordinator(Coordinator):
    role = "master"
    shapes_load = True
    runner: MasterRunner

    def __init__(self, runner: MasterRunner) -> None:
        super().__init__(runner)
        self.worker_stats: dict[str, LoadStats] = {}  # the last snapshot of each worker
        self.done: set[str] = set()  # workers whose share is drained and written
        self.reported: set[str] = set()  # done workers whose stats report arrived since
        # the run between test start and its plan
        self.run_started = 0.0  # time.monotonic() at test start
        self.expected: set[str] = set()  # workers given a user at test start
        self.volunteers: set[str] = set()  # workers whose user asked for the plan
        self.started: set[str] = set()  # workers that said they drive their share
        self._late_start_logged = False

    def _messages(self) -> dict[str, MessageHandler]:
        return {
            READY_MESSAGE: self._on_ready_message,
            STARTED_MESSAGE: self._on_started_message,
            DONE_MESSAGE: self._on_done_message,
        }

    def _listen(self, events: Events) -> None:
        events.worker_report.add_listener(self._on_worker_report)

    def _forget_run(self) -> None:
        super()._forget_run()
        self.done.clear()
        self.reported.clear()

    def _begin_run(self, settings: Settings) -> None:
        # The plan waits for the users: each worker's user asks for it once it runs (READY).
        self.run_id = new_run_id()
        self.run_started = time.monotonic()
        self.expected = connected(self.runner)
        self.volunteers = set()
        self.started = set()
        self._late_start_logged = False
        log.info("loadgen: run %s: waiting for the user on each of %d worker(s)", self.run_id, len(self.expected))
        self.info = self._run_info(self.run_id, settings, None)  # its epoch is known once planned

    def _volunteered(self, host: str) -> None:
        """The master runs no user (Locust spawns them on the workers)."""

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if REPORT_KEY in data:
            self.worker_stats[client_id] = LoadStats.from_wire(data[REPORT_KEY])
        if client_id in self.done:
            self.reported.add(client_id)

    # ---- planning ----------------------------------------------------------------------------

    def _on_ready_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        runner = self.runner
        worker = msg.node_id
        if self.run_id is None or self.error is not None:
            runner.send_message(PLAN_MESSAGE, {"plan": None, "reason": "no run in progress"}, client_id=worker)
            return
        if self.plan is not None:
            if worker not in self.plan.shares:
                log.warning(
                    "loadgen: worker %s (index %d) started a user after run %s was planned; it sends nothing this run",
                    worker,
                    runner.get_worker_index(worker),
                    self.plan.run_id,
                )
            runner.send_message(PLAN_MESSAGE, {"plan": self.plan.to_wire()}, client_id=worker)
            return
        self.volunteers.add(worker)
        self._plan_if_ready(waited_enough=False)

    def _plan_if_ready(self, *, waited_enough: bool) -> None:
        """Plan once every worker given a user (and still connected) asked; or, if waited enough, any did."""
        if self.plan is not None or self.run_id is None or self.settings is None or not self.volunteers:
            return
        runner = self.runner
        now_connected = connected(runner)
        missing = (self.expected & now_connected) - self.volunteers
        if missing and not waited_enough:
            return
        volunteers = sorted(self.volunteers & now_connected, key=runner.get_worker_index)
        if not volunteers:
            return
        if missing:
            log.warning(
                "loadgen: no user started on worker(s) %s within %.0f s; planning run %s with the %d that have one",
                ", ".join(f"{w} (index {runner.get_worker_index(w)})" for w in sorted(missing)),
                PLAN_WAIT_SECONDS,
                self.run_id,
                len(volunteers),
            )
        plan = RunPlan.new(volunteers, run_id=self.run_id)
        self._adopt(plan, self.settings)  # the master has no share
        self._announce(self.settings, plan)
        for worker in volunteers:
            runner.send_message(PLAN_MESSAGE, {"plan": plan.to_wire()}, client_id=worker)

    def _on_started_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self._about_the_plan(msg):
            self.started.add(msg.node_id)

    def _on_done_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self._about_the_plan(msg):
            self.done.add(msg.node_id)

    # ---- the shape: planning deadline, start check, drain ------------------------------------

    def processes(self) -> int:
        return max(1, self.runner.worker_count)

    def _goes_on(self, settings: Settings) -> bool:
        if self.plan is None:  # waiting for the workers' users
            waited = time.monotonic() - self.run_started
            if waited >= PLAN_WAIT_SECONDS:
                self._plan_if_ready(waited_enough=True)
            if self.plan is None:
                if waited > PLAN_GIVE_UP_SECONDS:
                    log.error("loadgen: no worker's user asked for the plan within %.0f s; stopping", waited)
                    return False
                return True
        plan = self.plan
        elapsed = elapsed_since(plan)
        if not self._late_start_logged and elapsed > START_REPORT_GRACE_SECONDS:
            self._check_started(plan)
        # Also wait for each worker's next stats report after its DONE, so Locust's totals (and ours)
        # include its last requests; the final report sent on quit can miss the master's short wait.
        return self._until_drained(settings, elapsed, set(plan.shares) <= self.reported)

    def _check_started(self, plan: RunPlan) -> None:
        silent = set(plan.shares) - self.started - self.done
        if silent:
            self._late_start_logged = True
            log.error(
                "loadgen: worker(s) %s have a share of run %s but did not say they started it",
                ", ".join(f"{w} (share {plan.shares[w][0]} of {plan.workers})" for w in sorted(silent)),
                plan.run_id,
            )

    # ---- metrics -----------------------------------------------------------------------------

    def current_stats(self) -> LoadStats:
        return LoadStats.merged(self.worker_stats.values())

    def worker_count(self) -> int:
        return self.runner.worker_count


def connected(runner: MasterRunner) -> set[str]:
    """Workers connected now, whatever their state."""
    return {w.id for w in runner.clients.ready + runner.clients.spawning + runner.clients.running}
