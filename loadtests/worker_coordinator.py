"""A Locust worker: asks the master for the plan when its user starts, then drives its share.

Its user's start sends READY; the master's PLAN answer starts the driver in its own greenlet (or
says why this worker has no share). It attaches a cumulative stats snapshot to Locust's periodic
report, and tells the master when its share started (STARTED) and drained (DONE). Nothing here
depends on this worker seeing `test_start` (coordinator.py says why).
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner

from loadtests.coordinator import (
    DONE_MESSAGE,
    PLAN_MESSAGE,
    PLAN_REPLY_TIMEOUT_SECONDS,
    READY_MESSAGE,
    REPORT_KEY,
    STARTED_MESSAGE,
    Coordinator,
    MessageHandler,
    run_message,
)
from loadtests.run_plan import RunPlan
from loadtests.settings import Settings, SettingsError

log = logging.getLogger(__name__)


class WorkerCoordinator(Coordinator):
    role = "worker"
    runner: WorkerRunner

    def __init__(self, runner: WorkerRunner) -> None:
        super().__init__(runner)
        self._plan_answered = Event()  # the master answered READY (this run)

    def _messages(self) -> dict[str, MessageHandler]:
        return {PLAN_MESSAGE: self._on_plan_message}

    def _listen(self, events: Events) -> None:
        events.report_to_master.add_listener(self._on_report_to_master)

    def _begin_run(self, settings: Settings) -> None:
        self._plan_answered = Event()

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = self.stats.to_wire()

    def _goes_on(self, settings: Settings) -> bool:
        """Never asked: Locust runs the shape on the master, which decides when the run ends."""
        return True

    # ---- the user and the plan ---------------------------------------------------------------

    def _volunteered(self, host: str) -> None:
        """Ask the master for the plan; its answer starts the driver (`_on_plan_message`)."""
        answered = self._plan_answered
        self.runner.send_message(READY_MESSAGE, {})
        gevent.spawn(self._expect_plan, answered)

    def _expect_plan(self, answered: Event) -> None:
        if answered.wait(PLAN_REPLY_TIMEOUT_SECONDS) or answered is not self._plan_answered or self._stopping():
            return
        log.error(
            "loadgen: this worker's user asked the master for the plan %.0f s ago and got no answer; it sends nothing",
            PLAN_REPLY_TIMEOUT_SECONDS,
        )

    def _on_plan_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        runner = self.runner
        self._plan_answered.set()
        wire = msg.data.get("plan")
        if wire is None:
            if self._stopping():
                return
            log.error("loadgen: this worker got a user but the master has no plan for it (%s)", msg.data.get("reason"))
            return
        plan = RunPlan.from_wire(wire)
        if self._driving is not None and self.plan is not None and self.plan.run_id == plan.run_id:
            return  # an answer to an extra user: this worker already drives its share
        # Re-read the options here: the spawn message brought the master's, but test_start may have
        # been missed (coordinator.py's docstring).
        try:
            self.settings = Settings.from_options(environment.parsed_options)
        except SettingsError as exc:
            log.error("loadgen: %s; this worker sends nothing", exc)
            return
        share = self._adopt(plan, self.settings, runner.client_id)
        if share is None:
            log.error(
                "loadgen: this worker (index %d) got a user but no share of run %s: its user started after "
                "the run was planned for %d worker(s); it sends nothing this run",
                runner.worker_index,
                plan.run_id,
                plan.workers,
            )
            return
        if self._stopping():
            log.warning("loadgen: the plan for run %s arrived while the test was stopping; ignored", plan.run_id)
            return
        if self.host is None:  # cannot happen: the master answers READY, which a user sent with its host
            log.error("loadgen: a share of run %s but no user's host; this worker sends nothing", plan.run_id)
            return
        self._start_driving(plan, share, self.host)

    def _share_started(self, plan: RunPlan) -> None:
        self.runner.send_message(STARTED_MESSAGE, run_message(plan))

    def _share_drained(self, plan: RunPlan) -> None:
        self.runner.send_message(DONE_MESSAGE, run_message(plan))
