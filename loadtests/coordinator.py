"""Per-process glue between Locust's runners and the open-loop driver.

Roles:
- local (one process): plans the run, drives all of it, serves /metrics.
- master (`--processes N` or `--master`): plans the run (one share per connected worker), serves
  /metrics from the snapshots workers attach to Locust's periodic report, ends the test when
  every worker said it drained.
- worker: reads the plan from the spawn message, drives its share, reports stats and "done".

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
from typing import Any

import gevent
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

from harness import topology
from loadtests.arrivals import Share, arrival_times
from loadtests.driver import Completion, Driver, DriverConfig, make_session
from loadtests.metrics import LoadgenCollector, RunInfo, registry_for, serve
from loadtests.outcome import Outcome, describe
from loadtests.plan import LOCAL_WORKER_ID, PLAN_OPTION, RunPlan
from loadtests.reaction import REQUEST_NAME, ReactionFactory
from loadtests.settings import Settings, SettingsError
from loadtests.stats import LoadStats

log = logging.getLogger(__name__)

DONE_MESSAGE = "loadgen_done"
REPORT_KEY = "loadgen"
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
        self.info = RunInfo()
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
        if self.role == "worker":
            events.report_to_master.add_listener(self._on_report_to_master)
        else:
            self._start_metrics(self.settings.metrics_port)
            if getattr(environment.parsed_options, "headless", False):
                # Locust installs its SIGTERM handler only once a headless shape run is over, so a
                # terminate() mid-run would kill the master outright: outcomes unflushed, workers
                # orphaned and still sending until their 60 s heartbeat timeout.
                gevent.signal_handler(signal.SIGTERM, self._on_sigterm)
        if isinstance(runner, MasterRunner):
            events.worker_report.add_listener(self._on_worker_report)
            runner.register_message(DONE_MESSAGE, self._on_done_message)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        # Options may have changed since init (web UI form, or the master's options on a worker).
        self.done.clear()
        self.reported.clear()
        self.driver = None
        self.share = None
        try:
            self.settings = Settings.from_options(environment.parsed_options)
            self.error = None
        except SettingsError as exc:
            self.error = str(exc)
            self.plan = None
            log.error("loadgen: %s; this run will stop", exc)
            return
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            wire = getattr(environment.parsed_options, PLAN_OPTION, None)
            self.plan = RunPlan.from_wire(wire) if wire else None
            self.share = self.plan.share_for(runner.client_id) if self.plan else None
            if self.share is None:
                log.warning("loadgen: this worker joined after the run was planned; it sends nothing this run")
        else:
            if isinstance(runner, MasterRunner):
                workers = runner.clients.ready + runner.clients.spawning + runner.clients.running
                ids = sorted((w.id for w in workers), key=runner.get_worker_index)
            else:
                ids = [LOCAL_WORKER_ID]
            self.plan = RunPlan.new(ids)
            self.share = self.plan.share_for(LOCAL_WORKER_ID)
            # Travels to the workers inside the spawn message that follows this event.
            setattr(environment.parsed_options, PLAN_OPTION, self.plan.to_wire())
            self._announce(self.settings, self.plan)
        self.info = RunInfo(
            self.plan.run_id if self.plan else "", self.settings.profile.name, str(self.settings.process)
        )

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.driver is not None and not self.driver.closed:
            self.driver.abort()
        self.plan = None
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

    def _on_done_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self.plan is not None and msg.data.get("run_id") == self.plan.run_id:
            self.done.add(msg.node_id)

    # ---- the shape ---------------------------------------------------------------------------

    def tick(self, runner: Runner | None) -> tuple[int, float] | None:
        """One user per worker process while the profile runs; None (stop) once all drained."""
        if self.error is not None or runner is None:
            return None
        users = max(1, runner.worker_count) if isinstance(runner, MasterRunner) else 1
        if self.plan is None or self.settings is None:
            return users, float(users)  # before test_start: this tick starts the test
        elapsed = (time.time_ns() - self.plan.epoch_unix_nanos) / 1e9
        profile_end = self.settings.profile.duration
        if elapsed < profile_end:
            return users, float(users)
        # Distributed: also wait for each worker's next stats report, so Locust's totals (and ours)
        # include its last requests; the final report sent on quit can miss the master's short wait.
        finished = self.reported if isinstance(runner, MasterRunner) else self.done
        if set(self.plan.shares) <= finished:
            return None
        if elapsed > profile_end + self.settings.request_timeout + DRAIN_MARGIN_SECONDS:
            log.warning("loadgen: not every worker reported drained; stopping anyway")
            return None
        return users, float(users)

    # ---- the user ----------------------------------------------------------------------------

    def drive(self, host: str) -> None:
        """Run this process' share to completion (called from the one user's task)."""
        env, settings, plan, share = self.env, self.settings, self.plan, self.share
        if env is None or settings is None or plan is None or share is None:
            return
        if self.driver is not None:
            log.warning("loadgen: one user per process drives the load; extra users stay idle")
            return
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
            "loadgen: worker %d of %d -> %s (in-flight cap %d)", share.index, share.count, config.outcomes_dir, cap
        )
        if driver.run(stopped=self._stopping):
            driver.close()
            self._announce_done(plan)

    def _stopping(self) -> bool:
        runner = self.env.runner if self.env else None
        return runner is None or runner.state in (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED)

    def _announce_done(self, plan: RunPlan) -> None:
        runner = self.env.runner if self.env else None
        if isinstance(runner, WorkerRunner):
            runner.send_message(DONE_MESSAGE, {"run_id": plan.run_id})
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
            self._server = serve(registry_for(collector), topology.HOST, port)
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


def _role(runner: Runner) -> str:
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "master" if isinstance(runner, MasterRunner) else "local"


def _text(error: BaseException | None) -> str:
    return describe(error) or "no response"
