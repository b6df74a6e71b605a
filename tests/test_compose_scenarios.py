"""compose/scenarios/broker-loss.yaml: valid, written for the three-broker profile, and every
process a scenario can fault is a compose service that compose.control can act on."""

from __future__ import annotations

import pytest

from chaos import scenario as scenarios
from compose import generate
from facts import topology
from facts.paths import REPO
from harness import cli
from harness.plan import PlanError, make_plan
from tests.synthetic_run import CAPACITIES
from tests.test_compose_file import CLUSTER, services

BROKER_LOSS = str(REPO / "compose" / "scenarios" / "broker-loss.yaml")


def test_broker_loss_is_valid_and_kills_broker_one() -> None:
    plan = make_plan(
        list(topology.PIPELINES), [BROKER_LOSS], None, False, capacities=CAPACITIES
    )  # what `bench validate` runs
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


QUORUM_LOSS = str(REPO / "compose" / "scenarios" / "quorum-loss.yaml")


def test_cluster_brokers_are_compose_services_of_the_cluster_profile_only() -> None:
    assert scenarios.CLUSTER_PROCESSES == ("kafka-2", "kafka-3")
    assert set(scenarios.CLUSTER_PROCESSES) <= set(services(CLUSTER))
    assert not set(scenarios.CLUSTER_PROCESSES) & set(services())


def test_quorum_loss_kills_two_brokers_on_a_cluster_and_is_refused_elsewhere() -> None:
    cluster = scenarios.PROCESSES + scenarios.CLUSTER_PROCESSES
    plan = make_plan(["async"], [QUORUM_LOSS], None, False, cluster, capacities=CAPACITIES)
    assert {f.process for f in plan.cells[0].scenario.faults if isinstance(f, scenarios.ProcessFault)} == {
        "kafka-2",
        "kafka-3",
    }
    with pytest.raises(PlanError) as e:
        make_plan(["async"], [QUORUM_LOSS], None, False, capacities=CAPACITIES)  # the native stack's processes
    assert f"{QUORUM_LOSS}: faults[0].process: 'kafka-2' is not a process of this stack" in str(e.value)
    assert "KAFKA=cluster" in str(e.value)


def test_compose_asks_docker_which_brokers_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    from compose import control

    present = {"kafka", "kafka-2", "reaction", "notification"}
    monkeypatch.setattr(control.ComposeStack, "has_service", lambda self, name: name in present)
    assert cli._stack_kind("compose")[0] == ("reaction", "notification", "kafka", "kafka-2")
    assert cli._stack_kind("native")[0] == scenarios.PROCESSES


def test_bench_validate_knows_the_cluster_profile() -> None:
    import subprocess
    import sys

    def validate(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "harness.cli", "validate", QUORUM_LOSS, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    single = validate()
    assert single.returncode == 2 and "faults[0].process: 'kafka-2' is not a process of this stack" in single.stderr
    cluster = validate("--kafka", "cluster")
    assert cluster.returncode == 0, cluster.stderr
    assert "ok: 1 scenario(s), 3 cell(s)" in cluster.stdout
    cmd = [sys.executable, "-m", "harness.cli", "validate", "--kafka", "cluster"]
    every = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    n = len(scenarios.shipped()) + len(list((REPO / "compose" / "scenarios").glob("*.yaml")))
    assert every.returncode == 0 and f"ok: {n} scenario(s)" in every.stdout, every.stderr
