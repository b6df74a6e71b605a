"""bench capacity on the real stack: a short search and every ceiling; asserts the structure, not a number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import measured_tracing
from harness.capacity import command as capacity_command
from harness.capacity import config as capacity_config
from harness.capacity import generator_cost
from harness.capacity import report as capacity_report

pytestmark = pytest.mark.stack


def test_a_short_capacity_search_has_a_rate_a_reason_and_the_ceilings(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = capacity_config.load_config()
    # What tracing costs, with one other setting than the search's: each setting is one restart and a
    # step per pipeline through the same code; tracing.yaml's three would add four steps (~30 s).
    measured = measured_tracing.load()
    monkeypatch.setattr(measured_tracing, "load", lambda *_: measured.model_copy(update={"overhead": ["off"]}))
    short = shipped.search.quick.model_copy(
        update={"start_rate": 50, "max_rate": 100, "warmup_seconds": 1, "measure_seconds": 2, "resolution": 0.5,
                "min_step": 20, "drain_seconds": 15, "ceiling_seconds": 1, "generator_seconds": 3}
    )  # fmt: skip
    # Each step played once: a disturbed step played again (unit-tested in test_capacity_search.py) has
    # the same structure, and on a host whose neighbours steal CPU it would triple the test's time.
    config = shipped.model_copy(update={
        "search": shipped.search.model_copy(update={"quick": short}),
        "disturbed": shipped.disturbed.model_copy(update={"retries": 0}),
    })  # fmt: skip
    before, before_tracing = stack.pipeline, stack.tracing
    try:
        report = capacity_command.run_capacity(
            ["sync", "async"], quick=True, stack=stack, config=config, runs_root=tmp_path, remember=False
        )
    finally:
        if stack.pipeline != before:
            stack.use_pipeline(before)

    written = capacity_report.load_report(tmp_path / report.run_id / "capacity.json")
    assert written == report
    for name in ("sync", "async"):
        pc = report.pipelines[name]
        result = pc.capacity
        assert result.rate is not None or result.broke_at is not None
        assert result.reasons, f"{name}: no reason given"
        assert result.bound in ("pipeline", "generator", "search-limit")
        assert pc.steps and all(st.sent > 0 for st in pc.steps)
        if result.rate is not None:  # the rate found was played again (capacity.yaml's `confirm`) and held
            assert result.confirmed == shipped.search.quick.confirm >= 1
            assert any(st.replay and st.rate == result.rate for st in pc.steps)
        components = set(pc.steps[0].cpu_cores)
        # and what no component used: the harness alone, other processes, the hypervisor's steal
        assert {"reaction", "notification", "kafka", "pushsink", "loadgen", "harness", "other", "steal"} <= components
        assert set(pc.cpu_seconds_per_1000) >= {"reaction", "notification"}
        assert "harness" in pc.cpu_seconds_per_1000 and "steal" not in pc.cpu_seconds_per_1000  # no process had it
        # the CPU step under the search's tracing, then with tracing off (the `overhead` set above)
        costs = {c.setting: c for c in pc.tracing_costs}
        assert list(costs) == [measured.sample, "off"]
        assert all(c.services() is not None and c.cpu_seconds_per_1000["reaction"] > 0 for c in costs.values())
    assert stack.tracing == before_tracing, "the stack keeps the tracing it came with"
    assert report.tracing == measured.sample
    assert report.pipelines["async"].acceptance is not None
    assert report.pipelines["async"].steps[0].backlog_growth_per_second is not None

    ceilings = {c.name: c for c in report.ceilings}
    expected = {
        "http.wrk.healthz", "http.wrk.post.sync", "http.wrk.post.async", "grpc.notify", "grpc.bare",
        "kafka.produce.aiokafka", "kafka.produce.java", "kafka.consume.java", "kafka.consume.aiokafka",
    }  # fmt: skip
    assert expected <= set(ceilings)
    failed = {n: c.error for n, c in ceilings.items() if c.per_second is None}
    assert not failed, failed
    assert {r.name for r in report.ratios} >= {
        "sync.grpc",
        "sync.grpc_bare",
        "async.acceptance.aiokafka",
        "async.delivery.java",
    }
    # each capacity that held has its CPU bound, read from the services at that rate, beside its ratios
    bounds = {b.name: b for b in report.cpu_bounds}
    for name, rate in report.capacities().items():
        assert bounds[name].rate == rate and bounds[name].per_second > 0, (name, bounds)
    bare = next(r for r in report.ratios if r.name == "sync.grpc_bare")
    assert ("sync" in bounds) == (bare.most is not None)
    assert report.generator is not None
    healthz = report.generator.healthz  # the generator alone on GET /healthz, beside wrk there
    assert isinstance(healthz, capacity_report.GeneratorOnHealthz), healthz
    assert healthz.rate == short.start_rate
    assert healthz.cpu_seconds_per_1000 is not None and healthz.cpu_seconds_per_1000 > 0
    assert healthz.wrk_cpu_seconds_per_1000 is not None and healthz.times_wrk() is not None
    assert healthz.lag_p99_seconds is not None
    # the wakeups' share, priced by the probe beside it, and what is left of the CPU per request
    assert healthz.wakeups_per_request is not None and healthz.wakeups_per_request > 0
    assert healthz.wakeup_cpu_seconds is not None and healthz.wakeup_cpu_seconds > 0
    assert healthz.wrk_wakeups_per_request is not None
    assert healthz.at_wrk_wakeups_seconds_per_1000() is not None
    # the open loop wakes for each arrival and each answer; wrk's 64 connections wait on the server together
    assert healthz.wakeups_per_request > healthz.wrk_wakeups_per_request
    # wrk paced to the generator's rate, the control at that rate: measured, and paced (far below its max)
    paced = healthz.paced_wrk
    assert paced is not None and paced.error is None and paced.cpu_seconds_per_1000 is not None, paced
    assert healthz.achieved_per_second is not None and healthz.achieved_per_second > 0
    # paced: within 10 % of the rate the generator achieved, where wrk at its max is far above it
    assert healthz.times_paced_wrk() is not None, (paced.per_second, healthz.achieved_per_second)
    assert ceilings["http.wrk.healthz"].per_second is not None
    assert ceilings["http.wrk.healthz"].per_second > 4 * healthz.rate
    # measured again at the highest capacity the searches found (here the search's max, 100/s, as a rule)
    top, at_top = capacity_report.top_rate(report, short.start_rate), report.generator.at_top
    if top is not None:
        assert at_top is not None and at_top.rate == top
        assert at_top.cpu_seconds_per_1000 is not None and at_top.cpu_seconds_per_1000 > 0
        assert at_top.times_wrk() is not None and at_top.lag_p99_seconds is not None
    else:
        assert at_top is None, top
    # and at its max beside wrk at its max, both saturating the server: offered more than wrk achieved,
    # with no more in flight than wrk's connections, and no paced control (wrk at its max is the control)
    at_max = report.generator.at_max
    assert at_max is not None and at_max.in_flight_cap == generator_cost.WRK_CONNECTIONS
    # far above a fixed rate of the CPU steps: wrk's 64 connections on GET /healthz answer thousands a second
    assert at_max.achieved_per_second is not None and healthz.achieved_per_second is not None
    assert at_max.achieved_per_second > 4 * healthz.achieved_per_second
    assert at_max.wrk_per_second == ceilings["http.wrk.healthz"].per_second  # both rates, side by side
    assert at_max.lag_p99_seconds is None  # the arrivals beyond its cap are missed: no schedule kept
    assert at_max.times_wrk() is not None and at_max.paced_wrk is None
