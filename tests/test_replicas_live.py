"""The replicated topology on the real stack: two notification replicas, sync through HAProxy and
through client-side round robin, async in one consumer group; the balancer scenarios played by
`bench run`'s own code on short timelines, one stack for all of them (about three minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import scenario as scenarios
from harness import replicas as rep
from harness import result as result_model
from harness.plan import Plan, make_plan
from harness.replicas import Replicas
from harness.run import run
from tests.synthetic_run import CAPACITIES

pytestmark = [pytest.mark.stack, pytest.mark.own_stack]


@pytest.fixture(scope="module")
def replica_run(tmp_path_factory: pytest.TempPathFactory) -> result_model.Run:
    from harness.stack import Stack, Tracing

    topo = Replicas(2, "haproxy")
    procs = scenarios.PROCESSES + topo.processes()
    hop = make_plan(
        ["sync"], ["balancer-hop", "balancer-hop-client"], 10, processes=procs, replicas=2, capacities=CAPACITIES
    )
    # kill notification-2 at 8 s of 24, restarted 6 s later (the file's 20 s + 15 s of 60, scaled)
    down = make_plan(["sync", "async"], ["replica-down"], 24, processes=procs, replicas=2, capacities=CAPACITIES)
    root = tmp_path_factory.mktemp("runs")
    # Tracing off: what is asserted here is the topology, and reading each cell's traces back costs time.
    rc = run(
        Plan(hop.cells + down.cells),
        lambda work, pipeline: Stack(work, pipeline, replicas=topo, tracing=Tracing(enabled=False)),
        runs_root=root,
    )
    assert rc in (0, 1), rc  # 1: a hypothesis failed, asserted below with its figures
    return result_model.load(root / "latest")


def test_every_cell_ran_on_two_replicas_the_way_its_scenario_says(replica_run: result_model.Run) -> None:
    got = {(c.pipeline, c.scenario): c.topology for c in replica_run.cells}
    assert set(got) == {
        ("sync", "balancer-hop"), ("sync", "balancer-hop-client"), ("sync", "replica-down"), ("async", "replica-down"),
    }  # fmt: skip
    assert all(t is not None and t.replicas == 2 for t in got.values())
    assert got[("sync", "balancer-hop")].balancer == "haproxy"  # type: ignore[union-attr]
    assert got[("sync", "balancer-hop-client")].balancer == "client"  # type: ignore[union-attr]
    for c in replica_run.cells:
        m = c.metrics()
        assert m["replicas"] == 2.0
        assert c.ledger.lost == 0 and c.ledger.unexpected == 0, (c.folder, c.ledger)  # nothing acknowledged lost


def test_both_ways_of_balancing_carry_the_load(replica_run: result_model.Run) -> None:
    for scenario in ("balancer-hop", "balancer-hop-client"):
        cell = replica_run.cell("sync", scenario)
        assert cell is not None
        m = cell.metrics()
        assert m["error_ratio"] is not None and m["error_ratio"] < 0.01, (scenario, m["error_ratio"])
        assert m["e2e.p50"] is not None and m["delivered_ratio"] is not None and m["delivered_ratio"] > 0.99
        print(f"{scenario}: e2e p50 {m['e2e.p50']:.4f} s, p99 {m['e2e.p99']:.4f} s, api p50 {m['api.p50']:.4f} s")


def test_a_killed_replica_shows_errors_for_sync_and_held_deliveries_for_async(replica_run: result_model.Run) -> None:
    sync, async_ = replica_run.cell("sync", "replica-down"), replica_run.cell("async", "replica-down")
    assert sync is not None and async_ is not None
    (kill,) = sync.faults
    assert kill.target == "process:notification-2" and kill.applied_offset is not None and kill.error is None
    s, a = sync.metrics(), async_.metrics()
    print(f"sync: fault error ratio {s['fault.error_ratio']}, errors for {s['fault.error_seconds']} s")
    print(f"async: e2e p99 max after the kill {a['fault.e2e_p99_max']} s, fault error ratio {a['fault.error_ratio']}")
    # sync: the callers routed to the dead replica before HAProxy's check took it out see errors
    assert s["fault.error_seconds"] is not None and s["fault.error_seconds"] > 0
    assert a["fault.error_ratio"] == 0  # async callers only talk to Kafka
    # async: the dead member's partitions wait for the group's session (10 s) and the rebalance
    assert a["fault.e2e_p99_max"] is not None and a["fault.e2e_p99_max"] > 2.0
    assert a["e2e.p50"] is not None and a["e2e.p50"] < 1.0  # the other partitions kept flowing


def test_haproxy_is_stopped_with_the_stack(replica_run: result_model.Run) -> None:
    assert rep.haproxy_servers() == {}  # its stats port answers no more
    assert Path(replica_run.root / "stack" / "haproxy" / "haproxy.cfg").exists()
