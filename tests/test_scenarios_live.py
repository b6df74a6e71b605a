"""Short versions of every shipped scenario on the real stack, asserting what the article predicts.

Each cell runs through the same code as `bench run` (harness.run.run_cell) on the session's stack,
with the load compressed to CELL_SECONDS (fault times scale with it). The assertions are on
measured values in result.json, never on wall-clock limits of the test itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from chaos.engine import ChaosMetrics
from harness import result as result_model
from harness import run
from harness.plan import make_plan
from harness.result import CellResult
from harness.run_limits import RunLimits
from tests import stackclient as sc
from tests.synthetic_run import CAPACITIES

pytestmark = pytest.mark.stack

CELL_SECONDS = 15.0
WHOLE_TRACES = "baseline"  # the scenario whose cells read every reaction's trace back
Result = CellResult


@pytest.fixture(scope="module")
def cell(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Result]:
    """Runs a (pipeline, scenario) cell once per module and returns its result.json."""
    out_root: Path = tmp_path_factory.mktemp("cells")
    metrics = ChaosMetrics(CollectorRegistry())
    cache: dict[tuple[str, str], Result] = {}
    whole, in_windows = RunLimits.load(), sc.traces_in_windows()  # only the baseline's are asserted whole

    def get(pipeline: str, scenario: str) -> Result:
        if (pipeline, scenario) not in cache:
            (the_cell,) = make_plan([pipeline], [scenario], CELL_SECONDS, False, capacities=CAPACITIES).cells
            limits = whole if scenario == WHOLE_TRACES else in_windows
            result = run.run_cell(stack, the_cell, out_root, metrics, processes=1, limits=limits)
            on_disk = result_model.read_cell(out_root / f"{pipeline}--{scenario}" / "result.json")
            assert on_disk == result, "result.json differs from the returned result"
            cache[(pipeline, scenario)] = result
        return cache[(pipeline, scenario)]

    return get


def m(result: Result, name: str) -> float:
    value = result.metrics()[name]
    assert value is not None, f"{result.pipeline} x {result.scenario}: {name} not measured"
    return float(value)


def assert_nothing_lost(r: Result) -> None:
    led = r.ledger
    assert led.lost == 0, f"{r.pipeline} x {r.scenario} lost {led.samples.get('lost')}"
    assert led.unexpected == 0
    assert r.timings.drained, "the backlog did not drain within the scenario's drain timeout"


@pytest.mark.parametrize("pipeline", ["sync", "async"])
def test_baseline_delivers_everything_without_errors(cell: Callable[[str, str], Result], pipeline: str) -> None:
    r = cell(pipeline, "baseline")
    assert_nothing_lost(r)
    assert m(r, "error_ratio") < 0.01  # a stray deadline miss on a loaded 2-core machine is not a failure
    assert m(r, "attempted") >= 0.9 * r.target_rate.mean * CELL_SECONDS
    assert r.ledger.delivered == r.ledger.acknowledged
    assert r.hypothesis is not None and r.hypothesis.passed, r.hypothesis
    assert [c.check for c in r.hypothesis.checks[:4]] == [
        "attempted > 0",
        "load generator exit code == 0",
        "load generator bound == no",
        "drained within drain_timeout",
    ]
    assert len(r.series.acknowledged) >= CELL_SECONDS
    assert sum(r.series.acknowledged) == r.ledger.acknowledged
    for q in ("p50", "p90", "p99", "p999", "max"):
        assert m(r, f"api.{q}") is not None and m(r, f"e2e.{q}") is not None
    # The shared stack traces every reaction: the cell read them back from Jaeger (run._read_traces).
    assert r.traces is not None and r.traces.pipeline == pipeline
    assert r.traces.reactions == r.ledger.attempted and r.traces.delivered == r.ledger.delivered
    assert r.traces.completeness is not None and r.traces.completeness > 0.9, r.traces.unconnected


def test_push_slow_blocks_sync_callers_but_not_async_ones(cell: Callable[[str, str], Result]) -> None:
    injected = 0.4  # 200 ms each way on the push link
    sync, async_ = cell("sync", "push-slow"), cell("async", "push-slow")
    assert m(sync, "api.p99") > injected, "sync callers wait for the slow push"
    assert m(async_, "api.p99") < injected, "async callers only wait for Kafka"
    assert m(async_, "e2e.p99") > injected / 2, "the delay moves to end-to-end latency"
    assert_nothing_lost(sync)
    assert_nothing_lost(async_)


def test_notification_down_fails_sync_while_async_accepts_and_delivers_later(
    cell: Callable[[str, str], Result],
) -> None:
    sync, async_ = cell("sync", "notification-down"), cell("async", "notification-down")
    assert m(sync, "failed") + m(sync, "unknown") > 0, "the failure cascades to sync callers"
    assert m(async_, "error_ratio") < 0.01, "async callers are not affected"
    assert m(async_, "peak_backlog") > 0, "events waited in Kafka"
    assert_nothing_lost(async_)
    assert async_.ledger.delivered == async_.ledger.acknowledged
    assert m(async_, "e2e.max") > m(async_, "api.max"), "eventual consistency: delivered after the answer"


def test_broker_down_fails_async_while_sync_is_untouched(cell: Callable[[str, str], Result]) -> None:
    sync, async_ = cell("sync", "broker-down"), cell("async", "broker-down")
    assert m(async_, "failed") > 0, "the broker is a single point of failure for async"
    assert m(sync, "error_ratio") < 0.01, "sync never touches Kafka"
    assert_nothing_lost(sync)
    assert_nothing_lost(async_)


def test_surge_is_absorbed_by_async_without_loss(cell: Callable[[str, str], Result]) -> None:
    sync, async_ = cell("sync", "surge"), cell("async", "surge")
    for r in (sync, async_):
        assert_nothing_lost(r)
        assert max(r.series.target_rate) >= 5 * min(r.series.target_rate[:3])
    assert m(async_, "error_ratio") < 0.01


def test_surge_over_capacity_fails_sync_while_async_falls_behind_and_catches_up(
    cell: Callable[[str, str], Result],
) -> None:
    sync, async_ = cell("sync", "surge-over-capacity"), cell("async", "surge-over-capacity")
    deadline = 1.0  # the reaction service's default --deadline
    assert m(sync, "failed") + m(sync, "unknown") > 0 or m(sync, "api.p99") > deadline / 2, (
        "sync callers queue behind deliveries the service cannot keep up with"
    )
    assert m(async_, "error_ratio") < 0.01, "async callers only wait for Kafka"
    assert m(async_, "peak_backlog") > m(async_, "achieved_rate"), "the consumer fell more than a second behind"
    assert m(async_, "e2e.p99") > m(async_, "api.p99"), "the surge moved to end-to-end latency"
    assert_nothing_lost(sync)
    assert_nothing_lost(async_)
    assert async_.ledger.delivered == async_.ledger.acknowledged


@pytest.mark.parametrize("pipeline", ["sync-resilient", "async"])
def test_flaky_network_loses_nothing(cell: Callable[[str, str], Result], pipeline: str) -> None:
    r = cell(pipeline, "flaky-network")
    assert_nothing_lost(r)
    assert any(f.applied_offset is not None for f in r.faults)


@pytest.mark.parametrize("pipeline", ["sync", "async"])
def test_consumer_crash_loses_nothing(cell: Callable[[str, str], Result], pipeline: str) -> None:
    r = cell(pipeline, "consumer-crash")
    assert_nothing_lost(r)
    (kill,) = r.faults
    assert kill.error is None and kill.applied_offset is not None and kill.undone_offset is not None


def test_broker_restart_loses_no_acknowledged_event(cell: Callable[[str, str], Result]) -> None:
    r = cell("async", "broker-restart")
    assert_nothing_lost(r)
    assert m(r, "failed") + m(r, "unknown") > 0, "clients saw the broker go away"
    assert m(r, "acknowledged") > 0


def test_a_rate_far_above_the_generator_s_ceiling_is_flagged_and_fails(stack: Any, tmp_path: Path) -> None:
    # 6,000/s with room for only 300 unanswered requests (the async service answers about 2,000/s):
    # the generator cannot send its schedule. Ahead of the stack (autogroup nice) and with its
    # in-flight cap as long as its timeout, it kept up with 6,000/s for 2 s, hence the small cap.
    limits = sc.traces_in_windows()  # its traces are read as a long cell's are, in two windows of 0.5 s
    small_cap = limits.generator.model_copy(update={"in_flight_seconds": 0.05, "min_in_flight": 100})
    profile = tmp_path / "flood.yaml"
    profile.write_text("name: flood\ndescription: far above one generator\nkind: steady\nrate: 6000\nduration: 2\n")
    scenario = tmp_path / "flood-scenario.yaml"
    scenario.write_text(
        f"name: flood\ndescription: the generator cannot keep up\nprofile: {profile}\ndrain_timeout: 120\n"
        'hypothesis:\n  "*": [{metric: lost, op: "==", value: 0}]\n'
    )
    (the_cell,) = make_plan(["async"], [str(scenario)], capacities=CAPACITIES).cells
    r = run.run_cell(
        stack, the_cell, tmp_path / "run", ChaosMetrics(CollectorRegistry()), processes=1,
        limits=dataclasses.replace(limits, generator=small_cap),
    )  # fmt: skip
    assert r.traces is not None and r.traces.windows == 2
    assert 0 < r.traces.traced <= r.traces.reactions < r.ledger.attempted  # those sent in the windows only
    assert r.loadgen.bound, r.loadgen
    assert r.loadgen.missed_arrivals > 0
    assert r.metrics()["loadgen.bound"] == 1.0
    assert r.hypothesis is not None and not r.hypothesis.passed
    (failed,) = [c for c in r.hypothesis.checks if c.precondition and not c.passed]
    assert failed.check.startswith("load generator bound == no (")
    assert_nothing_lost(r)  # falling behind is the generator's problem: what was acknowledged still arrives
