"""This process' coordinator: chosen once, at Locust's `init`, from the type of its runner.

The locustfile holds one `Coordination` from import on, because Locust can start a worker's user
before it fires `init` (coordinator.py): that user waits here until init has chosen the role
(LocalCoordinator, MasterCoordinator or WorkerCoordinator), then hands over to it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gevent.event import Event
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner

from facts.lifetime import die_with_parent
from loadtests.coordinator import INIT_WAIT_SECONDS, Coordinator
from loadtests.local_coordinator import LocalCoordinator
from loadtests.master_coordinator import MasterCoordinator
from loadtests.worker_coordinator import WorkerCoordinator

log = logging.getLogger(__name__)
# The process that read the locustfile: with --processes, the master, which forks its workers after.
LOADED_IN = os.getpid()


def coordinator_for(runner: Runner | None) -> Coordinator:
    """The role of this process, as Locust's runner says (None: `run_single_user`, one process)."""
    if isinstance(runner, MasterRunner):
        return MasterCoordinator(runner)
    if isinstance(runner, WorkerRunner):
        return WorkerCoordinator(runner)
    return LocalCoordinator(runner)


class Coordination:
    """What the locustfile's user and shape talk to: the role's coordinator, once init has chosen it."""

    def __init__(self) -> None:
        self.coordinator: Coordinator | None = None  # set at init
        self._initialized = Event()

    @property
    def env(self) -> Environment | None:
        return self.coordinator.env if self.coordinator is not None else None

    def on_init(self, environment: Environment, runner: Runner | None, **_: Any) -> None:
        if os.getpid() != LOADED_IN:
            # A worker forked by the master: a fork does not inherit the parent-death signal, and a
            # master killed outright never stops its workers, which would go on sending load.
            die_with_parent(LOADED_IN)
        self.coordinator = coordinator_for(runner)
        self.coordinator.on_init(environment)
        self._initialized.set()

    def users(self) -> int | None:
        """For the shape: users to keep now (one per load-generating process), or None to stop."""
        if self.coordinator is None:  # Locust fires init before the shape's first tick
            return None
        return self.coordinator.users()

    def volunteer(self, host: str) -> None:
        """A user started in this process (called from its task): see Coordinator.volunteer."""
        if not self._initialized.wait(INIT_WAIT_SECONDS) or self.coordinator is None:
            log.error("loadgen: a user started but this locustfile never initialized; it sends nothing")
            return
        self.coordinator.volunteer(host)
