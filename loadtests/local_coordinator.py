"""The single process (no `--processes`, no `--master`): plans, drives and serves /metrics itself.

It fixes the run plan at `test_start` (one share, t=0 START_LEAD_SECONDS ahead), drives that share
once its user starts, and keeps the shape's user until the share drained (coordinator.py).
"""

from __future__ import annotations

from locust.runners import Runner

from loadtests.arrivals import Share
from loadtests.coordinator import Coordinator, elapsed_since
from loadtests.run_plan import LOCAL_WORKER_ID, RunPlan
from loadtests.settings import Settings


class LocalCoordinator(Coordinator):
    role = "local"
    shapes_load = True

    def __init__(self, runner: Runner | None) -> None:
        super().__init__(runner)
        self.drained = False  # this run's share is drained and written

    def _forget_run(self) -> None:
        super()._forget_run()
        self.drained = False

    def _begin_run(self, settings: Settings) -> None:
        plan = RunPlan.new([LOCAL_WORKER_ID])
        self.run_id = plan.run_id
        self._adopt(plan, settings, LOCAL_WORKER_ID)
        self._announce(settings, plan)

    def _goes_on(self, settings: Settings) -> bool:
        if self.plan is None:  # cannot happen: the plan and the run id come and go together
            return True
        return self._until_drained(settings, elapsed_since(self.plan), self.drained)

    def _volunteered(self, host: str) -> None:
        if self.plan is not None and self.share is not None:
            self._start_driving(self.plan, self.share, host)

    def _start_driving(self, plan: RunPlan, share: Share, host: str) -> None:
        self.drained = False
        super()._start_driving(plan, share, host)

    def _share_drained(self, plan: RunPlan) -> None:
        self.drained = True
