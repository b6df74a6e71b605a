"""`make ... RUNTIME=compose` drives docker compose; without it, the native targets are unchanged.

Dry runs (`make -n`) only: nothing is started, no container engine needed.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from chaos import scenario as scenarios
from facts import topology
from facts.paths import REPO

COMPOSE = "docker compose --env-file compose/generated/compose.env -f compose/docker-compose.yml"
CLUSTER = "-f compose/docker-compose.cluster.yml --profile cluster"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def dry_run(*args: str) -> str:
    out = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_up_and_down() -> None:
    up = dry_run("up", "RUNTIME=compose")
    # compose.mk says the default pipeline again (make cannot import it), and the compose file too
    assert f"PIPELINE={topology.DEFAULT_PIPELINE} {COMPOSE} up" in up
    compose_file = (REPO / "compose" / "docker-compose.yml").read_text()
    assert f"PIPELINE: ${{PIPELINE:-{topology.DEFAULT_PIPELINE}}}" in compose_file
    assert f"PIPELINE=async {COMPOSE} up --build --detach --wait --scale locust-worker=2" in up
    assert ".venv/bin/bench" not in up
    up = dry_run("up", "RUNTIME=compose", "KAFKA=cluster", "PIPELINE=sync", "LOCUST_WORKERS=4")
    assert f"PIPELINE=sync {COMPOSE} {CLUSTER} up --build --detach --wait --scale locust-worker=4" in up
    down = dry_run("down", "RUNTIME=compose")
    assert f"{COMPOSE} {CLUSTER} --profile bench down --volumes --remove-orphans" in down


def test_bench_runs_the_matrix_in_the_bench_container() -> None:
    bench = dry_run("bench", "RUNTIME=compose")
    assert f"{COMPOSE} up --build --detach --wait reaction grafana" in bench
    assert f"{COMPOSE} --profile bench run --rm --use-aliases bench sh -c" in bench
    assert "bench run --pipeline all --scenario all" in bench and "bench report runs/latest" in bench
    assert "--quick" in dry_run("bench-quick", "RUNTIME=compose")
    cluster = dry_run("bench", "RUNTIME=compose", "KAFKA=cluster")
    every = " ".join(sorted(scenarios.shipped()))
    cluster_only = "compose/scenarios/broker-loss.yaml compose/scenarios/quorum-loss.yaml"
    assert f"bench run --pipeline all --scenario {every} {cluster_only}" in cluster


def test_native_is_the_default_and_unchanged() -> None:
    assert "docker" not in dry_run("down") and ".venv/bin/bench down" in dry_run("down")
    bench = dry_run("bench")
    assert ".venv/bin/bench run --pipeline all --scenario all" in bench and "docker" not in bench
    assert ".venv/bin/bench up --pipeline sync" in dry_run("up", "PIPELINE=sync")
    assert "--pipeline" not in dry_run("up")  # bench up's own default (topology.DEFAULT_PIPELINE)


def test_profile_brings_its_own_stack_traced_as_the_runs_unless_told() -> None:
    profile = dry_run("profile")
    assert ".venv/bin/bench up --pipeline sync" in profile
    assert (
        "--tracing $(.venv/bin/python -c 'from harness.measured_tracing import load; print(load().sample)')" in profile
    )
    assert "trap '.venv/bin/bench down' EXIT; .venv/bin/python -m harness.capacity.service_profile" in profile
    told = dry_run("profile", "PIPELINE=async", "TRACING=off")
    assert ".venv/bin/bench up --pipeline async" in told and "--tracing off" in told
    assert "--out runs/profile-async" in told


def test_unknown_switch_values_fail() -> None:
    for args in (["RUNTIME=podman"], ["RUNTIME=compose", "KAFKA=two"]):
        out = subprocess.run(["make", "-n", "up", *args], cwd=REPO, capture_output=True, text=True)
        assert out.returncode != 0 and "must be" in out.stderr
