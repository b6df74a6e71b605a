"""The plan of a run: every (scenario x pipeline) cell, checked whole before anything starts.

Everything that can be known before a run is checked here and reported together, each problem
with its file and field: the scenario files (chaos/scenario.py's schema), their load profiles,
the processes the stack can fault, faults that start after the load or undo each other.
`bench run` and `bench validate` both plan through `make_plan`; PlanError means exit 2.
A profile's capacity-relative rates ("0.3 x sync") are resolved here from `capacities` (the last
`bench capacity` of this machine): the cell's profile holds the number, and the expression in
`profile.relative_rates`; without capacities such a profile is a PlanError saying to run it.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace

from chaos import scenario as scenarios
from facts import topology
from loadtests.profile import Capacities, Profile, ProfileError, find_profile

QUICK_SECONDS = 30.0


class PlanError(ValueError):
    """What makes a plan impossible, one problem per line, each naming its file and field."""


@dataclass(frozen=True)
class PlannedCell:
    """One cell to play: a pipeline through a scenario, with the load's length."""

    scenario: scenarios.Scenario
    pipeline: str
    profile: Profile  # as played: scaled to load_seconds
    load_seconds: float
    time_factor: float  # scenario times are written for the profile's own duration
    repetition: int = 1

    def scaled_faults(self) -> list[scenarios.Fault]:
        k = self.time_factor
        return [
            f.model_copy(update={"at": f.at * k, "duration": None if f.duration is None else f.duration * k})
            for f in self.scenario.faults
        ]


@dataclass(frozen=True)
class Plan:
    cells: list[PlannedCell]


def _scenario_problems(
    sc: scenarios.Scenario, path: str, profile: Profile, processes: Collection[str], replicas: int = 1
) -> list[str]:
    problems = [f"{path}: {c}" for c in sc.conflicts(profile.duration)]
    if sc.replicas is not None and sc.replicas > replicas:
        problems.append(
            f"{path}: replicas: the scenario needs {sc.replicas} notification replicas, the stack has {replicas} "
            f"(bench run --replicas {sc.replicas}; bench validate --replicas {sc.replicas})"
        )
    if sc.balancer is not None and replicas < 2:
        problems.append(f"{path}: balancer: {sc.balancer!r} balances replicas; the stack has one (--replicas 2 or 3)")
    links = {*topology.PROXIES_BY_NAME, *(p.name for p in topology.replica_proxies(replicas, balancer=replicas > 1))}
    for i, f in enumerate(sc.faults):
        link = getattr(f, "link", None)
        if link is not None and link not in links:
            problems.append(
                f"{path}: faults[{i}].link: {link!r} is not a link of this stack (it has: {', '.join(sorted(links))}); "
                "the replicas' links exist with --replicas only (bench run --replicas 2; bench validate --replicas 2)"
            )
        if isinstance(f, scenarios.ProcessFault) and f.process in scenarios.REPLICA_PROCESSES:
            if f.process not in processes:
                problems.append(
                    f"{path}: faults[{i}].process: {f.process!r} is not a process of this stack "
                    f"(it has: {', '.join(processes)}); notification replicas and HAProxy run with "
                    "--replicas only (bench run --replicas 2; bench validate --replicas 2)"
                )
        elif isinstance(f, scenarios.ProcessFault) and f.process not in processes:
            problems.append(
                f"{path}: faults[{i}].process: {f.process!r} is not a process of this stack "
                f"(it has: {', '.join(processes)}); brokers "
                f"{', '.join(scenarios.CLUSTER_PROCESSES)} run in the compose cluster profile only "
                "(make bench RUNTIME=compose KAFKA=cluster; bench validate --kafka cluster)"
            )
        if f.at >= profile.duration:
            problems.append(
                f"{path}: faults[{i}].at: a fault at {f.at:g} s starts after the load ends ({profile.duration:g} s)"
            )
    return problems


def make_plan(
    pipelines: list[str],
    scenario_refs: list[str],
    duration: float | None = None,
    quick: bool = False,
    processes: Collection[str] = scenarios.PROCESSES,
    capacities: Capacities | None = None,
    repeat: int = 1,
    time_scale: float = 1.0,
    replicas: int = 1,
) -> Plan:
    """Every cell of the run, `repeat` times; PlanError lists every problem of every scenario at once.
    `time_scale` shortens (or stretches) every scenario, its load and its fault timeline alike;
    `duration` sets every cell's load to that many seconds instead.
    `processes`: what the stack can kill or pause (the compose cluster profile has more brokers).
    `capacities`: what capacity-relative rates resolve from (harness.capacity.report.last_capacities()).
    `replicas`: the stack's notification replicas (harness/replicas.py); a scenario may need more."""
    problems: list[str] = [] if repeat >= 1 else [f"repeat: must be at least 1, got {repeat}"]
    if not 0 < time_scale <= 10:
        problems.append(f"time scale: must be in (0, 10], got {time_scale:g}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        problems.append(f"duration: must be a finite number of seconds above 0, got {duration:g}")
        duration = None  # the scenarios are still checked, each problem said at once
    cells: list[PlannedCell] = []
    named: dict[str, str] = {}  # a cell's folder is named after its scenario: two of a name would share it
    for ref in scenario_refs:
        path = str(scenarios.resolve(ref))
        try:
            sc = scenarios.load(ref)
        except scenarios.ScenarioError as e:
            problems.append(str(e))
            continue
        if (other := named.get(sc.name)) is not None:
            again = "given twice" if other == path else f"also the name of {other}"
            problems.append(f"{path}: name: {sc.name!r} is {again}: their cells would write the same folders")
            continue
        named[sc.name] = path
        try:
            profile = find_profile(sc.profile, capacities=capacities)
        except ProfileError as e:
            problems.append(f"{path}: profile: {e}")
            continue
        problems += _scenario_problems(sc, path, profile, processes, replicas)
        own = (sc.duration or profile.duration) * time_scale
        load_seconds = duration if duration is not None else (min(own, QUICK_SECONDS) if quick else own)
        played = profile.scaled(duration=load_seconds)
        cells += [PlannedCell(sc, p, played, load_seconds, load_seconds / profile.duration) for p in pipelines]
    if problems:
        raise PlanError("\n".join(problems))
    return Plan(interleave(cells, repeat))


def interleave(cells: list[PlannedCell], repeat: int) -> list[PlannedCell]:
    """Each repetition plays every cell, scenario by scenario, the pipelines in turn and in reverse
    order every other repetition: a disturbance of the machine then hits sync and async alike."""
    out: list[PlannedCell] = []
    for rep in range(1, repeat + 1):
        for scenario in dict.fromkeys(c.scenario.name for c in cells):
            group = [c for c in cells if c.scenario.name == scenario]
            out += [replace(c, repetition=rep) for c in (group if rep % 2 else group[::-1])]
    return out
