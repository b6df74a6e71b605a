"""compose/scenarios/broker-loss.yaml: valid, written for the three-broker profile, and every
process a scenario can fault is a compose service that compose.control can act on."""

from __future__ import annotations

from chaos import scenario as scenarios
from compose import generate
from harness import run, topology
from harness.paths import REPO
from tests.test_compose_file import CLUSTER, services

BROKER_LOSS = str(REPO / "compose" / "scenarios" / "broker-loss.yaml")


def test_broker_loss_is_valid_and_kills_broker_one() -> None:
    plan = run.plan(list(topology.PIPELINES), [BROKER_LOSS], None, False)  # what `bench validate` runs
    assert [c.pipeline for c in plan.cells] == list(topology.PIPELINES)
    sc = scenarios.load(BROKER_LOSS)
    (fault,) = sc.faults
    assert isinstance(fault, scenarios.ProcessFault) and (fault.kind, fault.process) == ("kill", "kafka")
    assert fault.process == generate.broker_service(1) and fault.process in services(CLUSTER)
    assert {str(c) for c in sc.checks_for("async")} >= {"lost == 0", "unexpected == 0"}


def test_only_the_cluster_profile_runs_it() -> None:
    # `--scenario all` (the native and single-broker matrix) means the shipped ones only.
    assert scenarios.load(BROKER_LOSS).name not in scenarios.shipped()


def test_every_process_is_a_compose_service() -> None:
    assert set(scenarios.PROCESSES) <= set(services())
