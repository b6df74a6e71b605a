"""Per-process glue between Locust's runners and the open-loop driver.

Roles:
- local (one process): plans the run at test start, drives all of it, serves /metrics.
- master (`--processes N` or `--master`): plans the run once the workers' users have asked for it
  (one share per worker whose user started), serves /metrics from the snapshots workers attach to
  Locust's periodic report, ends the test when every worker with a share said it drained.
- worker: when its user starts, asks the master for the plan; drives its share once the plan
  arrives; reports stats, "started" and "done".

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

import dataclasses
import logging
import math
import signal
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer
from locust.env import Environment
from locust.runners import (
    STATE_CLEANUP,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    Runner,
    WorkerRunner,
)

from facts import topology
from loadtests.arrivals import Share, arrival_times
from loadtests.driver import Completion, Driver, DriverConfig, make_session
from loadtests.metrics import LoadgenCollector, RunInfo, registry_for, serve
from loadtests.outcome import Outcome, describe
from loadtests.plan import LOCAL_WORKER_ID, RunPlan, new_run_id
from loadtests.reaction import REQUEST_NAME, ReactionFactory
from loadtests.settings import Settings, SettingsError
from loadtests.stats import LoadStats

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


class RequestFailed(Exception):
    """A definite failure (HTTP error status or refused connection), as Locust's failure table shows it."""


class OutcomeUnknown(Exception):
    """No answer (timeout, reset, aborted): the reaction may or may not have been processed."""


class Coordinator:
    def __init__(self) -> None:
        self.env: Environment | None = None
        self.role = "local"
        self.settings: Settings | None = None
        self.error: str | None = None
        self.plan: RunPlan | None = None
        self.share: Share | None = None
        self.stats = LoadStats()  # this process' requests (local, worker)
        self.worker_stats: dict[str, LoadStats] = {}  # master: the last snapshot of each worker
        self.done: set[str] = set()  # workers whose share is drained and written
        self.reported: set[str] = set()  # master: done workers whose stats report arrived since
        self.driver: Driver | None = None
        self.host: str | None = None  # worker: the host its user was given
        self.info = RunInfo()
        # master: the run between test start and its plan
        self.run_id: str | None = None
        self.run_started = 0.0  # time.monotonic() at test start
        self.expected: set[str] = set()  # workers given a user at test start
        self.volunteers: set[str] = set()  # workers whose user asked for the plan
        self.started: set[str] = set()  # workers that said they drive their share
        self._late_start_logged = False
        # worker: the driver's greenlet (set once its share of the current run is being driven)
        self._driving: gevent.Greenlet | None = None
        self._plan_answered = Event()  # worker: the master answered READY (this run)
        self._initialized = Event()
        self._server: WSGIServer | None = None

    # ---- Locust events ----------------------------------------------------------------------

    def on_init(self, environment: Environment, runner: Runner, **_: Any) -> None:
        self.env = environment
        events = environment.events
        self.role = _role(runner)
        # Fail before anything starts: a bad profile or option is a usage error, not a failed run.
        # Workers check too: those forked by --processes share the master's argv and must exit with
        # it (a worker left waiting for a dead master only gives up after a 60 s heartbeat timeout).
        try:
            self.settings = Settings.from_options(environment.parsed_options)
        except SettingsError as exc:
            raise SystemExit(f"loadgen: {exc}") from None
        if isinstance(runner, WorkerRunner):
            events.report_to_master.add_listener(self._on_report_to_master)
            runner.register_message(PLAN_MESSAGE, self._on_plan_message)
        else:
            self._start_metrics(self.settings.metrics_port)
            if getattr(environment.parsed_options, "headless", False):
                # Locust installs its SIGTERM handler only once a headless shape run is over, so a
                # terminate() mid-run would kill the master outright: outcomes unflushed, workers
                # orphaned and still sending until their 60 s heartbeat timeout.
                gevent.signal_handler(signal.SIGTERM, self._on_sigterm)
        if isinstance(runner, MasterRunner):
            events.worker_report.add_listener(self._on_worker_report)
            runner.register_message(READY_MESSAGE, self._on_ready_message)
            runner.register_message(STARTED_MESSAGE, self._on_started_message)
            runner.register_message(DONE_MESSAGE, self._on_done_message)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        self._initialized.set()

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        # Options may have changed since init (web UI form, or the master's options on a worker).
        # On a worker this event can be missed (see the module docstring): nothing may depend on it.
        self.done.clear()
        self.reported.clear()
        self.driver = None
        self._driving = None
        self.plan = None
        self.share = None
        self.run_id = None
        try:
            self.settings = Settings.from_options(environment.parsed_options)
            self.error = None
        except SettingsError as exc:
            self.error = str(exc)
            log.error("loadgen: %s; this run will stop", exc)
            return
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            self._plan_answered = Event()
            return
        if isinstance(runner, MasterRunner):
            # The plan waits for the users: each worker's user asks for it once it runs (READY).
            self.run_id = new_run_id()
            self.run_started = time.monotonic()
            self.expected = _connected(runner)
            self.volunteers = set()
            self.started = set()
            self._late_start_logged = False
            log.info("loadgen: run %s: waiting for the user on each of %d worker(s)", self.run_id, len(self.expected))
        else:
            self.plan = RunPlan.new([LOCAL_WORKER_ID])
            self.run_id = self.plan.run_id
            self.share = self.plan.share_for(LOCAL_WORKER_ID)
            self._announce(self.settings, self.plan)
        self.info = RunInfo(
            self.run_id or "",
            self.settings.profile.name,
            str(self.settings.process),
            self.plan.epoch_unix_nanos / 1e9 if self.plan else 0.0,  # the master learns it when it plans
        )

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.driver is not None and not self.driver.closed:
            self.driver.abort()
        self.plan = None
        self.run_id = None
        self.error = None  # the next start re-reads the options

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    def _on_sigterm(self) -> None:
        log.warning("loadgen: SIGTERM: stopping; requests still in flight are recorded as unknown")
        if self.env is not None and self.env.runner is not None:
            self.env.runner.quit()

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = self.stats.to_wire()

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if REPORT_KEY in data:
            self.worker_stats[client_id] = LoadStats.from_wire(data[REPORT_KEY])
        if client_id in self.done:
            self.reported.add(client_id)

    # ---- master: planning --------------------------------------------------------------------

    def _on_ready_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        runner = environment.runner
        if not isinstance(runner, MasterRunner):
            return
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
        self._plan_if_ready(runner, waited_enough=False)

    def _plan_if_ready(self, runner: MasterRunner, *, waited_enough: bool) -> None:
        """Plan once every worker given a user (and still connected) asked; or, if waited enough, any did."""
        if self.plan is not None or self.run_id is None or self.settings is None or not self.volunteers:
            return
        connected = _connected(runner)
        missing = (self.expected & connected) - self.volunteers
        if missing and not waited_enough:
            return
        volunteers = sorted(self.volunteers & connected, key=runner.get_worker_index)
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
        self.plan = plan = RunPlan.new(volunteers, run_id=self.run_id)
        self.info = dataclasses.replace(self.info, epoch_unix_seconds=plan.epoch_unix_nanos / 1e9)
        self._announce(self.settings, plan)
        for worker in volunteers:
            runner.send_message(PLAN_MESSAGE, {"plan": plan.to_wire()}, client_id=worker)

    def _on_started_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self.plan is not None and msg.data.get("run_id") == self.plan.run_id:
            self.started.add(msg.node_id)

    def _on_done_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self.plan is not None and msg.data.get("run_id") == self.plan.run_id:
            self.done.add(msg.node_id)

    # ---- the shape ---------------------------------------------------------------------------

    def tick(self, runner: Runner | None) -> tuple[int, float] | None:
        """One user per worker process while the profile runs; None (stop) once all drained."""
        if self.error is not None or runner is None:
            return None
        users = max(1, runner.worker_count) if isinstance(runner, MasterRunner) else 1
        if self.settings is None or (self.plan is None and self.run_id is None):
            return users, float(users)  # before test_start: this tick starts the test
        if self.plan is None:  # master, waiting for the workers' users
            waited = time.monotonic() - self.run_started
            if isinstance(runner, MasterRunner) and waited >= PLAN_WAIT_SECONDS:
                self._plan_if_ready(runner, waited_enough=True)
            if self.plan is None:
                if waited > PLAN_GIVE_UP_SECONDS:
                    log.error("loadgen: no worker's user asked for the plan within %.0f s; stopping", waited)
                    return None
                return users, float(users)
        plan = self.plan
        elapsed = (time.time_ns() - plan.epoch_unix_nanos) / 1e9
        if isinstance(runner, MasterRunner) and not self._late_start_logged and elapsed > START_REPORT_GRACE_SECONDS:
            silent = set(plan.shares) - self.started - self.done
            if silent:
                self._late_start_logged = True
                log.error(
                    "loadgen: worker(s) %s have a share of run %s but did not say they started it",
                    ", ".join(f"{w} (share {plan.shares[w][0]} of {plan.workers})" for w in sorted(silent)),
                    plan.run_id,
                )
        profile_end = self.settings.profile.duration
        if elapsed < profile_end:
            return users, float(users)
        # Distributed: also wait for each worker's next stats report, so Locust's totals (and ours)
        # include its last requests; the final report sent on quit can miss the master's short wait.
        finished = self.reported if isinstance(runner, MasterRunner) else self.done
        if set(plan.shares) <= finished:
            return None
        if elapsed > profile_end + self.settings.request_timeout + DRAIN_MARGIN_SECONDS:
            log.warning("loadgen: not every worker reported drained; stopping anyway")
            return None
        return users, float(users)

    # ---- the user and the worker's share -----------------------------------------------------

    def volunteer(self, host: str) -> None:
        """A user started in this process (called from its task): drive this process' share.

        Local: start driving at once. Worker: ask the master for the plan; its answer starts the
        driver (`_on_plan_message`). Returns at once; the driver runs in its own greenlet.
        """
        if not self._initialized.wait(INIT_WAIT_SECONDS):
            log.error("loadgen: a user started but this locustfile never initialized; it sends nothing")
            return
        runner = self.env.runner if self.env else None
        if self.error is not None or runner is None:
            return
        if self._driving is not None:
            log.info("loadgen: one user per process drives the load; this extra user stays idle")
            return
        self.host = host
        if not isinstance(runner, WorkerRunner):
            if self.plan is not None and self.share is not None:
                self._start_driving(self.plan, self.share, host)
            return
        answered = self._plan_answered
        runner.send_message(READY_MESSAGE, {})
        gevent.spawn(self._expect_plan, answered)

    def _expect_plan(self, answered: Event) -> None:
        if answered.wait(PLAN_REPLY_TIMEOUT_SECONDS) or answered is not self._plan_answered or self._stopping():
            return
        log.error(
            "loadgen: this worker's user asked the master for the plan %.0f s ago and got no answer; it sends nothing",
            PLAN_REPLY_TIMEOUT_SECONDS,
        )

    def _on_plan_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            return
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
        self.plan = plan
        self.share = share = plan.share_for(runner.client_id)
        # Re-read the options here: the spawn message brought the master's, but test_start may have
        # been missed (module docstring).
        try:
            self.settings = Settings.from_options(environment.parsed_options)
        except SettingsError as exc:
            log.error("loadgen: %s; this worker sends nothing", exc)
            return
        self.info = RunInfo(
            plan.run_id, self.settings.profile.name, str(self.settings.process), plan.epoch_unix_nanos / 1e9
        )
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

    def _start_driving(self, plan: RunPlan, share: Share, host: str) -> None:
        if self.settings is None:
            return
        self.done.discard(LOCAL_WORKER_ID)
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
                request_timeout=settings.request_timeout,
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
                settings.post_count, settings.reacting_users, seed=settings.seed * 1_000_003 + share.index
            )
            self.driver = driver = Driver(
                make_session(host, settings.request_timeout, cap), factory, config, self.stats, self._report
            )
            log.info(
                "loadgen: worker %d of %d -> %s (in-flight cap %d)",
                share.index,
                share.count,
                config.outcomes_dir,
                cap,
            )
            self._send_to_master(STARTED_MESSAGE, plan)
            completed = driver.run(stopped=self._stopping)
            driver.close()  # already done if the stop aborted it; else (stopped before any abort) now
            if completed:
                self._announce_done(plan)
        except Exception:
            log.exception("loadgen: worker %d of %d failed while driving its share", share.index, share.count)

    def _stopping(self) -> bool:
        runner = self.env.runner if self.env else None
        return runner is None or runner.state in (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED)

    def _send_to_master(self, msg_type: str, plan: RunPlan) -> None:
        runner = self.env.runner if self.env else None
        if isinstance(runner, WorkerRunner):
            runner.send_message(msg_type, {"run_id": plan.run_id})

    def _announce_done(self, plan: RunPlan) -> None:
        runner = self.env.runner if self.env else None
        if isinstance(runner, WorkerRunner):
            self._send_to_master(DONE_MESSAGE, plan)
        else:
            self.done.add(LOCAL_WORKER_ID)

    def _report(self, c: Completion) -> None:
        if self.env is None:
            return
        exception: Exception | None = None
        if c.outcome is Outcome.FAILED:
            exception = RequestFailed(f"HTTP {c.status}" if c.status else _text(c.error))
        elif c.outcome is Outcome.UNKNOWN:
            exception = OutcomeUnknown(_text(c.error))
        self.env.events.request.fire(
            request_type="POST",
            name=REQUEST_NAME,
            response_time=c.latency * 1000.0,  # Locust's unit: ms, here from the intended start
            response_length=c.response_length,
            exception=exception,
            context={"reaction_id": c.reaction.reaction_id, "outcome": str(c.outcome)},
            url=c.url,
            start_time=c.started_unix,
            response=c.response,
        )

    # ---- metrics -----------------------------------------------------------------------------

    def current_stats(self) -> LoadStats:
        if self.role == "master":
            return LoadStats.merged(self.worker_stats.values())
        return self.stats

    def target_rate(self) -> float:
        if self.plan is None or self.settings is None:
            return 0.0
        return self.settings.profile.rate_at((time.time_ns() - self.plan.epoch_unix_nanos) / 1e9)

    def worker_count(self) -> int:
        runner = self.env.runner if self.env else None
        return runner.worker_count if isinstance(runner, MasterRunner) else 1

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
        log.info("loadgen: metrics on %s", topology.url(port, "/metrics"))

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


def _connected(runner: MasterRunner) -> set[str]:
    return {w.id for w in runner.clients.ready + runner.clients.spawning + runner.clients.running}


def _role(runner: Runner) -> str:
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "master" if isinstance(runner, MasterRunner) else "local"


def _text(error: BaseException | None) -> str:
    return describe(error) or "no response"
