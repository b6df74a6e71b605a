"""Scenario validation: every mistake names the file and the field; nothing starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos import scenario as scenarios
from harness import cli
from harness.plan import PlanError, make_plan
from harness.replicas import Replicas
from tests.synthetic_run import CAPACITIES

GOOD = """
name: t
description: a test
profile: steady
faults:
  - {kind: toxic, at: 1, duration: 5, link: push, toxic: latency, attributes: {latency: 100}}
hypothesis:
  "*": [{metric: lost, op: "==", value: 0}]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_every_shipped_scenario_is_valid() -> None:
    names = scenarios.shipped()
    for required in ("baseline", "surge", "push-slow", "notification-down", "broker-down", "flaky-network",
                     "consumer-crash", "broker-restart", "surge-over-capacity"):  # fmt: skip
        assert required in names
    plan = make_plan(["sync", "async"], names, None, False, capacities=CAPACITIES)
    assert len(plan.cells) == 2 * len(names)


def test_group_names_stand_for_their_scenarios_and_the_replicas_group_plans_on_two_replicas() -> None:
    assert scenarios.expand(["all"]) == scenarios.shipped()
    assert scenarios.expand(["baseline", "all"]) == scenarios.shipped()  # each scenario once
    group = scenarios.expand(["replicas"])
    assert set(group) == {"balancer-hop", "balancer-hop-client", "replica-down", "replica-down-client"}
    assert scenarios.expand(["soak", "x.yaml"]) == ["soak", "x.yaml"]  # not groups: left as given
    processes = scenarios.PROCESSES + Replicas(2, "haproxy").processes()
    plan = make_plan(["sync", "async"], group, None, False, processes, capacities=CAPACITIES, replicas=2)
    assert len(plan.cells) == 2 * len(group)
    with pytest.raises(PlanError, match="replicas"):  # what `make bench-replicas` needs: 2 replicas
        make_plan(["sync"], group, None, False, capacities=CAPACITIES)


def test_a_good_scenario_loads(tmp_path: Path) -> None:
    sc = scenarios.load(str(write(tmp_path, GOOD)))
    assert sc.faults[0].label == "latency(downstream) on push"
    assert [str(c) for c in sc.checks_for("async")] == ["lost == 0"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("link: push", "link: pushh", "faults[0].link: unknown link 'pushh'"),
        ("toxic: latency", "toxic: latencyy", "faults[0].toxic: unknown toxic 'latencyy'"),
        ("{latency: 100}", "{delay: 100}", "toxic 'latency' has no attribute 'delay'"),
        ("at: 1,", "at: -1,", "faults[0].at: Input should be greater than or equal to 0"),
        ("kind: toxic", "kind: explode", "faults[0]: unknown kind 'explode'"),
        ("description:", "descriptoin:", "descriptoin: Extra inputs are not permitted"),
        ("metric: lost", "metric: lots", "hypothesis.*[0].metric: unknown metric 'lots'"),
        ('"*":', "syncc:", "hypothesis: unknown pipeline 'syncc'"),
        ("duration: 5", "duration: 0", "faults[0].duration: Input should be greater than 0"),
        (
            "{kind: toxic, at: 1, duration: 5, link: push, toxic: latency, attributes: {latency: 100}}",
            "{kind: kill, at: 1, process: pushsink}",
            "faults[0].process: the push sink is the ground truth",
        ),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(scenarios.ScenarioError) as e:
        scenarios.load(str(path))
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_overlapping_conflicting_faults_are_rejected(tmp_path: Path) -> None:
    text = GOOD.replace(
        "faults:\n",
        "faults:\n  - {kind: link-down, at: 3, duration: 5, link: push}\n  - {kind: kill, at: 1, process: kafka}\n"
        "  - {kind: pause, at: 10, process: kafka}\n",
    )
    with pytest.raises(PlanError) as e:
        make_plan(["async"], [str(write(tmp_path, text))], None, False, capacities=CAPACITIES)
    assert "push down overlaps" in str(e.value) or "overlaps faults[0]: push down" in str(e.value)
    assert "pause kafka overlaps faults[1]: kill kafka" in str(e.value)


def test_different_toxics_on_one_link_may_overlap(tmp_path: Path) -> None:
    text = GOOD.replace(
        "faults:\n", "faults:\n  - {kind: toxic, at: 2, link: push, toxic: bandwidth, attributes: {rate: 10}}\n"
    )
    (cell,) = make_plan(["async"], [str(write(tmp_path, text))], None, False, capacities=CAPACITIES).cells
    faults = cell.scaled_faults()  # both kept, overlapping on the same link
    assert sorted((f.link, f.toxic) for f in faults if isinstance(f, scenarios.ToxicFault)) == [
        ("push", "bandwidth"),
        ("push", "latency"),
    ]
    (a0, a1), (b0, b1) = (f.window(cell.load_seconds) for f in faults)
    assert max(a0, b0) < min(a1, b1)  # they do overlap


def test_unknown_profile_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("profile: steady", "profile: nosuchprofile"))
    with pytest.raises(PlanError, match=r"s\.yaml: profile: .*nosuchprofile"):
        make_plan(["async"], [str(path)], None, False, capacities=CAPACITIES)


def test_two_scenarios_of_one_name_are_refused_they_would_share_their_cells_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write(tmp_path / "a", GOOD), write(tmp_path / "b", GOOD)  # both `name: t`
    with pytest.raises(PlanError) as e:
        make_plan(["async"], [str(first), str(second)], None, False, capacities=CAPACITIES)
    assert f"{second}: name: 't' is also the name of {first}" in str(e.value)
    with pytest.raises(PlanError, match="name: 't' is given twice"):
        make_plan(["async"], [str(first), str(first)], None, False, capacities=CAPACITIES)


@pytest.mark.parametrize("duration", [-5.0, 0.0, float("nan"), float("inf")])
def test_a_duration_that_is_not_a_finite_positive_length_is_refused(tmp_path: Path, duration: float) -> None:
    path = write(tmp_path, GOOD.replace("link: push", "link: pushh"))
    with pytest.raises(PlanError) as e:  # said with the scenario's own problems, at once
        make_plan(["async"], [str(path)], duration, False, capacities=CAPACITIES)
    assert "duration: must be a finite number of seconds above 0" in str(e.value)
    assert "unknown link 'pushh'" in str(e.value)


def test_a_folder_a_file_that_is_not_text_or_an_infinite_length_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(GOOD.encode().replace(b"a test", b"\xff"))
    endless = write(tmp_path, GOOD.replace("at: 1, duration: 5,", "at: 1, duration: .inf,"))
    for path, words in ((folder, "cannot read the scenario"), (binary, "cannot read the scenario"),
                        (endless, "faults[0].duration: Input should be a finite number")):  # fmt: skip
        with pytest.raises(scenarios.ScenarioError) as e:
            scenarios.load(str(path))
        assert str(e.value).startswith(f"{path}: ") and words in str(e.value), str(e.value)


def test_bench_run_with_a_bad_scenario_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("link: push", "link: pushh"))
    env = dict(os.environ, SYNC_ASYNC_BENCH_RUNS=str(tmp_path / "runs"))
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--pipeline", "async", "--scenario", str(path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert f"{path}: faults[0].link: unknown link 'pushh'" in out.stderr
    assert "nothing started" in out.stderr
    assert not (tmp_path / "runs").exists(), "a run folder was created for an invalid scenario"


def test_bench_run_refuses_no_workers_and_an_unknown_stack_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNC_ASYNC_BENCH_RUNS", str(tmp_path / "runs"))
    for workers in ("0", "-3"):
        with pytest.raises(SystemExit) as e:
            cli.main(["run", "--pipeline", "async", "--scenario", "baseline", "--processes", workers])
        assert e.value.code == 2
        assert f"--processes: must be at least 1, got {workers}" in capsys.readouterr().err
    monkeypatch.setenv("SYNC_ASYNC_BENCH_STACK", "dokcer")  # argparse checks no default against its choices
    assert cli.main(["run", "--pipeline", "async", "--scenario", "baseline"]) == 2
    assert "SYNC_ASYNC_BENCH_STACK='dokcer': must be one of native, compose" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_one_plan_reports_every_problem_of_every_file_together(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bad_schema = write(tmp_path / "a", GOOD.replace("link: push", "link: pushh"))
    late = GOOD.replace("at: 1,", "at: 500,")
    bad_plan = write(tmp_path / "b", late.replace("faults:\n", "faults:\n  - {kind: kill, at: 2, process: kafka-3}\n"))
    with pytest.raises(PlanError) as e:
        make_plan(["async"], [str(bad_schema), str(bad_plan)], None, False, capacities=CAPACITIES)
    lines = str(e.value).splitlines()
    assert lines == [
        f"{bad_schema}: faults[0].link: unknown link 'pushh' (links: notification, kafka-produce, kafka-consume, push, "
        "notification-2, push-2, notification-3, push-3, balancer)",
        f"{bad_plan}: faults[0].process: 'kafka-3' is not a process of this stack (it has: reaction, notification, "
        "kafka); brokers kafka-2, kafka-3 run in the compose cluster profile only "
        "(make bench RUNTIME=compose KAFKA=cluster; bench validate --kafka cluster)",
        f"{bad_plan}: faults[1].at: a fault at 500 s starts after the load ends (60 s)",
    ]


def test_repetitions_interleave_and_alternate_the_pipelines() -> None:
    plan = make_plan(["sync", "async"], ["baseline", "push-slow"], 10.0, repeat=3, capacities=CAPACITIES)
    order = [(c.repetition, c.scenario.name, c.pipeline) for c in plan.cells]
    assert order == [
        (1, "baseline", "sync"), (1, "baseline", "async"), (1, "push-slow", "sync"), (1, "push-slow", "async"),
        (2, "baseline", "async"), (2, "baseline", "sync"), (2, "push-slow", "async"), (2, "push-slow", "sync"),
        (3, "baseline", "sync"), (3, "baseline", "async"), (3, "push-slow", "sync"), (3, "push-slow", "async"),
    ]  # fmt: skip
    with pytest.raises(PlanError, match="repeat: must be at least 1"):
        make_plan(["sync"], ["baseline"], repeat=0, capacities=CAPACITIES)
