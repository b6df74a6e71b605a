"""Open-loop load on the reaction API: `locust -f loadtests/locustfile.py [--headless] [--processes N]`.

Load is a rate, not a number of users: the profile (--load-profile) says how many reactions per
second to offer at each moment, and each request starts on schedule whether or not earlier ones
have answered. Locust's users are only carriers: the shape below runs exactly one per process,
and that user drives its process' share of the arrivals (no greenlet per request: the client's
callbacks on gevent's loop).

Every request reaches Locust's stats (web UI, --csv) with its latency measured from the intended
start, and every reaction id is written to --outcomes-dir with its outcome. See coordinator.py
for how the master and workers split the work (one coordinator class per role, coordination.py
picks it at init).
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape, User, constant, events, task

from facts import topology
from loadtests.coordination import Coordination
from loadtests.settings import add_arguments

coordinator = Coordination()


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, runner: Any, **kwargs: Any) -> None:
    coordinator.on_init(environment, runner, **kwargs)


class ReactionUser(User):
    """Gets this process' share of the open-loop schedule going; the shape spawns one per process.

    Its start tells the coordinator that this process has a user (on a worker: asks the master for
    the plan, so only workers with a running user get a share); the share itself runs in the
    coordinator's own greenlet, so it goes on even if Locust moves this user elsewhere.
    """

    host = topology.url(topology.REACTION_HTTP_PORT)
    wait_time = constant(1)  # paces only the idle loop after the schedule is done

    @task
    def open_loop(self) -> None:
        coordinator.volunteer(self.host)
        while True:
            self.wait()  # interruptible: a stop ends the user at once


class ProfileShape(LoadTestShape):
    """One user per load-generating process, all spawned at once, until the coordinator says the run is over."""

    def tick(self) -> tuple[int, float] | None:
        users = coordinator.users()
        return None if users is None else (users, float(users))
