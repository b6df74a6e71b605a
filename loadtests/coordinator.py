"""Per-process glue between Locust's runners and the open-loop driver: what every role shares.

Roles, one class each over the `Coordinator` below, chosen once at Locust's `init` from the type of
its runner (coordination.py), as Locust splits its own runners:
- local (LocalCoordinator, one process): plans the run at test start, drives all of it, serves /metrics.
- master (MasterCoordinator, `--processes N` or `--master`): plans the run once the workers' users
  have asked for it (one share per worker whose user started), serves /metrics from the snapshots
  workers attach to Locust's periodic report, ends the test when every worker with a share said it
  drained.
- worker (WorkerCoordinator): when its user starts, asks the master for the plan; drives its share
  once the plan arrives; reports stats, "started" and "done".
The shape (locustfile.py) only asks `users()`: one user per load-generating process while the run
goes on, None once it is over; whether it goes on (planning, draining) is each role's decision.

How the plan reaches a worker (and why not inside Locust's spawn message): Locust creates a
worker's runner, and so starts handling the master's messages, *before* it fires `init`, which is
where this locustfile registers its listeners. A worker that is slow to get the CPU finds the
master's "ack" and first "spawn" queued together and handles both back to back: `test_start`
fires with no listener of ours, and the user it spawns finds no plan. So nothing here depends on
`test_start` reaching a worker. Instead each worker's user, once running, sends READY; the master
answers with PLAN. The master makes the plan when every worker it dispatched a user to has sent
READY (or, after PLAN_WAIT_SECONDS, with those that have, loudly naming the others), so a share
only ever goes to a worker whose user is up, and a worker drives its share from the PLAN message
itself (its own greenlet, not the user's), so a worker with a share always starts. A worker whose
user starts after the plan was made gets the plan without a share and says so, as does the master.

Why report-to-master rather than a metrics port per worker: the stack has one scrape target for
the load generator (topology.LOADGEN_METRICS_PORT) whatever the process count, and the counters
stay consistent with Locust's own totals. The cost is freshness: workers report every 3 s
(Locust's WORKER_REPORT_INTERVAL), so in distributed mode the counters move in 3 s steps.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer
from locust.env import Environment
from locust.event import Events
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, Runner

from facts import topology
from loadtests.arrivals import Share, arrival_times
from loadtests.counters import LoadStats
from loadtests.driver import Driver, DriverConfig
from loadtests.http_client import KeepAliveClient
from loadtests.loadgen_metrics import LoadgenCollector, RunInfo, registry_for, serve
from loadtests.locust_stats import LocustReport, OutcomeUnknown, RequestFailed
from loadtests.reaction import ENDPOINTS, ReactionFactory
from loadtests.run_plan import RunPlan
from loadtests.settings import Settings, SettingsError

log = logging.getLogger(__name__)

READY_MESSAGE = "loadgen_ready"  # worker -> master: a user runs here; send the plan
PLAN_MESSAGE = "loadgen_plan"  # master -> worker: {"plan": wire or None, "reason": why None}
STARTED_MESSAGE = "loadgen_started"  # worker -> master: driving its share of run_id
DONE_MESSAGE = "loadgen_done"  # worker -> master: share of run_id drained and written
REPORT_KEY = "loadgen"
# Master: how long after test start to wait for the user on every worker before planning with the
# workers whose user did start (the others get no share; they would only have left a hole).
PLAN_WAIT_SECONDS = 5.0
# Master: stop the run if no worker's user has asked for the plan by then.
PLAN_GIVE_UP_SECONDS = 30.0
# Worker: complain if the master has not answered READY by then.
PLAN_REPLY_TIMEOUT_SECONDS = PLAN_WAIT_SECONDS + 10.0
# Master: complain if a worker with a share has not said it started this long after t=0.
START_REPORT_GRACE_SECONDS = 5.0
# A user started before this locustfile's init listener ran waits this long for it.
INIT_WAIT_SECONDS = 30.0
# After the profile ends, wait for the slowest request's deadline plus this (a worker report
# interval and some) before stopping anyway.
DRAIN_MARGIN_SECONDS = 5.0


__all__ = ["Coordinator", "MessageHandler", "OutcomeUnknown", "RequestFailed", "elapsed_since"]

# A handler of one of Locust's custom messages: Locust calls it as handler(environment=..., msg=...).
MessageHandler = Callable[..., None]


class Coordinator:
    """The part of every role: options, the run's plan and this process' share, driving it, /metrics."""

    role = ""
    # Where the shape runs (local, master): this process serves /metrics and stops cleanly on SIGTERM.
    shapes_load = False

    def __init__(self, runner: Runner | None) -> None:
        self.runner = runner
        self.env: Environment | None = None
        self.settings: Settings | None = None
        self.error: str | None = None
        self.run_id: str | None = None
        self.plan: RunPlan | None = None
        self.share: Share | None = None
        self.stats = LoadStats()  # this process' requests (local, worker)
        self.driver: Driver | None = None
        self.host: str | None = None  # the host this process' user was given
        self.info = RunInfo()
        # the driver's greenlet (set once this process' share of the current run is being driven)
        self._driving: gevent.Greenlet | None = None
        self._server: WSGIServer | None = None

    # ---- Locust events ----------------------------------------------------------------------

    def on_init(self, environment: Environment) -> None:
        self.env = environment
        # Fail before anything starts: a bad profile or option is a usage error, not a failed run.
        # Workers check too: those forked by --processes share the master's argv and must exit with
        # it (a worker left waiting for a dead master only gives up after a 60 s heartbeat timeout).
        try:
            self.settings = Settings.from_options(environment.parsed_options)
        except SettingsError as exc:
            raise SystemExit(f"loadgen: {exc}") from None
        if self.shapes_load:
            self._serve(environment, self.settings)
        if self.runner is not None:
            for kind, handler in self._messages().items():
                self.runner.register_message(kind, handler)
        events = environment.events
        self._listen(events)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    def _messages(self) -> dict[str, MessageHandler]:
        """The role's custom messages (between master and workers) and their handlers."""
        return {}

    def _listen(self, events: Events) -> None:
        """The role's own event listeners, besides test start, test stop and quitting."""

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        # Options may have changed since init (web UI form, or the master's options on a worker).
        # On a worker this event can be missed (see the module docstring): nothing may depend on it.
        self._forget_run()
        try:
            self.settings = Settings.from_options(environment.parsed_options)
            self.error = None
        except SettingsError as exc:
            self.error = str(exc)
            log.error("loadgen: %s; this run will stop", exc)
            return
        self._begin_run(self.settings)

    def _forget_run(self) -> None:
        """Before a test starts: nothing of the previous run is kept."""
        self.driver = None
        self._driving = None
        self.plan = None
        self.share = None
        self.run_id = None

    def _begin_run(self, settings: Settings) -> None:
        """The role's start of a run (test_start with valid options)."""
        raise NotImplementedError

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.driver is not None:
            self.driver.abort()  # or, if the driving greenlet is closing it, waits until it has
        self.plan = None
        self.run_id = None
        self.error = None  # the next start re-reads the options

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    def _serve(self, environment: Environment, settings: Settings) -> None:
        """Where the load is shaped (local, master): /metrics, and a clean stop on SIGTERM."""
        self._start_metrics(settings.metrics_port)
        if getattr(environment.parsed_options, "headless", False):
            # Locust installs its SIGTERM handler only once a headless shape run is over, so a
            # terminate() mid-run would kill the master outright: outcomes unflushed, workers
            # orphaned and still sending until their 60 s heartbeat timeout.
            gevent.signal_handler(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self) -> None:
        log.warning("loadgen: SIGTERM: stopping; requests still in flight are recorded as unknown")
        if self.env is not None and self.env.runner is not None:
            self.env.runner.quit()

    # ---- the shape ---------------------------------------------------------------------------

    def users(self) -> int | None:
        """Users the shape keeps now: one per load-generating process while the run goes on; None: stop."""
        if self.error is not None or self.runner is None:
            return None
        users = self.processes()
        if self.settings is None or (self.plan is None and self.run_id is None):
            return users  # before test_start: this tick starts the test
        return users if self._goes_on(self.settings) else None

    def processes(self) -> int:
        """Processes that generate load, each with one user."""
        return 1

    def _goes_on(self, settings: Settings) -> bool:
        """Whether the started run still needs its users (planning, load, drain: the role decides)."""
        raise NotImplementedError

    def _until_drained(self, settings: Settings, elapsed: float, drained: bool) -> bool:
        """After t=0: on while the profile runs, then until `drained`, or overdue (then stop anyway)."""
        profile_end = settings.profile.duration
        if elapsed < profile_end:
            return True
        if drained:
            return False
        if elapsed > profile_end + settings.request_timeout + DRAIN_MARGIN_SECONDS:
            log.warning("loadgen: not every worker reported drained; stopping anyway")
            return False
        return True

    # ---- the user and this process' share ----------------------------------------------------

    def volunteer(self, host: str) -> None:
        """A user started in this process (called from its task, after init): drive this process' share.

        Returns at once; the share runs in its own greenlet (the role says when it starts).
        """
        if self.error is not None or self.runner is None:
            return
        if self._driving is not None:
            log.info("loadgen: one user per process drives the load; this extra user stays idle")
            return
        self.host = host
        self._volunteered(host)

    def _volunteered(self, host: str) -> None:
        raise NotImplementedError

    def _start_driving(self, plan: RunPlan, share: Share, host: str) -> None:
        if self.settings is None:
            return
        self._driving = gevent.spawn(self._drive, self.settings, plan, share, host)

    def _drive(self, settings: Settings, plan: RunPlan, share: Share, host: str) -> None:
        """Run this process' share to completion (in its own greenlet, whatever happens to the user)."""
        if self._stopping():
            log.warning("loadgen: the test stopped before worker %d of %d started its share", share.index, share.count)
            return
        try:
            profile = settings.profile
            schedule = arrival_times(
                profile.rate_at,
                profile.duration,
                process=settings.process,
                seed=settings.seed,
                share=share,
                breakpoints=profile.breakpoints(),
            )
            cap = math.ceil(settings.max_in_flight / share.count)
            config = DriverConfig(
                schedule=schedule,
                epoch_unix_nanos=plan.epoch_unix_nanos,
                duration=profile.duration,
                share_rate=lambda t: profile.rate_at(t) / share.count,
                max_in_flight=cap,
                wake_interval=settings.wake_interval,
                worker=share.index,
                outcomes_dir=settings.outcomes_dir_for(plan.run_id),
                summary={
                    **settings.describe(),
                    "run_id": plan.run_id,
                    "workers": share.count,
                    "epoch_unix_nanos": plan.epoch_unix_nanos,
                    "host": host,
                },
            )
            # Distinct per worker, so two workers do not send the same post/user sequence.
            factory = ReactionFactory(
                settings.post_count, settings.reacting_users, seed=settings.seed * 1_000_003 + share.index,
                endpoint=settings.endpoint,
            )  # fmt: skip
            if self.env is None:  # cannot happen: init set it before any user could start
                raise RuntimeError("no Locust environment")
            client = KeepAliveClient(host, timeout=settings.request_timeout, batched=settings.wake_interval > 0)
            endpoint = ENDPOINTS[settings.endpoint]
            report = LocustReport(
                self.env, f"{client.base_url}{endpoint.stats_name}", settings.request_events, endpoint
            )
            self.driver = driver = Driver(client, factory, config, self.stats, report)
            log.info(
                "loadgen: worker %d of %d -> %s (in-flight cap %d)",
                share.index,
                share.count,
                config.outcomes_dir,
                cap,
            )
            self._share_started(plan)
            completed = driver.run(stopped=self._stopping)
            driver.close()  # already done if the stop aborted it; else (stopped before any abort) now
            if completed:
                self._share_drained(plan)
        except Exception:
            log.exception("loadgen: worker %d of %d failed while driving its share", share.index, share.count)

    def _share_started(self, plan: RunPlan) -> None:
        """This process drives its share of `plan` now."""

    def _share_drained(self, plan: RunPlan) -> None:
        """This process' share of `plan` completed: every request answered or timed out, files written."""

    def _stopping(self) -> bool:
        return self.runner is None or self.runner.state in (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED)

    # ---- metrics -----------------------------------------------------------------------------

    def current_stats(self) -> LoadStats:
        return self.stats

    def target_rate(self) -> float:
        if self.plan is None or self.settings is None:
            return 0.0
        return self.settings.profile.rate_at((time.time_ns() - self.plan.epoch_unix_nanos) / 1e9)

    def worker_count(self) -> int:
        return 1

    def _adopt(self, plan: RunPlan, settings: Settings, worker_id: str | None = None) -> Share | None:
        """This process follows `plan` from now on: its share is `worker_id`'s (if it has one) and
        /metrics shows the run with its t=0."""
        self.plan = plan
        self.share = plan.share_for(worker_id) if worker_id is not None else None
        self.info = self._run_info(plan.run_id, settings, plan.epoch_unix_nanos)
        return self.share

    def _about_the_plan(self, msg: Any) -> bool:
        """Whether a worker's STARTED or DONE message (`run_message`) is about the current plan."""
        return self.plan is not None and msg.data.get("run_id") == self.plan.run_id

    def _run_info(self, run_id: str, settings: Settings, epoch_unix_nanos: int | None) -> RunInfo:
        epoch = epoch_unix_nanos / 1e9 if epoch_unix_nanos is not None else 0.0  # 0 until planned
        return RunInfo(run_id, settings.profile.name, str(settings.process), epoch)

    def _start_metrics(self, port: int) -> None:
        if port <= 0:
            return
        collector = LoadgenCollector(self.current_stats, self.target_rate, self.worker_count, lambda: self.info)
        try:
            self._server = serve(registry_for(collector), topology.BIND_HOST, port)
        except OSError as exc:
            # Keep generating load: losing the live view must not lose the run.
            log.error("loadgen: cannot serve metrics on %s: %s", topology.addr(port), exc)
            return
        log.info("loadgen: metrics on %s", topology.url(port, topology.METRICS_PATH))

    def _announce(self, settings: Settings, plan: RunPlan) -> None:
        p = settings.profile
        log.info(
            "loadgen: run %s: profile %s (%s, %.0f s, peak %.0f req/s), %s arrivals, seed %d, %d worker(s), "
            "outcomes in %s",
            plan.run_id,
            p.name,
            p.kind,
            p.duration,
            p.max_rate(),
            settings.process,
            settings.seed,
            plan.workers,
            settings.outcomes_dir_for(plan.run_id),
        )


def run_message(plan: RunPlan) -> dict[str, Any]:
    """What a worker's STARTED and DONE messages carry: the run they are about."""
    return {"run_id": plan.run_id}


def elapsed_since(plan: RunPlan) -> float:
    """Seconds since the plan's t=0 (negative before it)."""
    return (time.time_ns() - plan.epoch_unix_nanos) / 1e9
