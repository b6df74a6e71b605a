"""Scenario files (chaos/scenarios/*.yaml): a load profile, a fault timeline and a hypothesis.

The whole file is validated before anything starts. Every error names the file and the field
(e.g. `chaos/scenarios/x.yaml: faults[1].attributes: toxic 'latency' has no attribute 'delay'`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chaos.toxiproxy import TOXIC_ATTRIBUTES
from facts import comparison, measures, topology

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
# the push sink is the ground truth, never faulted
PROCESSES = (topology.REACTION, topology.NOTIFICATION, topology.KAFKA)
# Brokers 2..n exist only in the compose three-broker profile: `bench run` checks the stack has them.
CLUSTER_PROCESSES = tuple(topology.kafka_broker(n) for n in range(2, topology.KAFKA_CLUSTER_BROKERS + 1))
# Notification replicas 2..n and their balancer exist only with `--replicas` (harness/replicas.py):
# the plan checks the stack has them. Scenarios written for that topology live in REPLICA_SCENARIO_DIR.
# The links of the replicated topology (--replicas 2..3, HAProxy): whether this stack has them is
# the plan's to say (harness/plan.py), as for the replicas' processes.
REPLICA_LINKS = tuple(p.name for p in topology.replica_proxies(topology.NOTIFICATION_REPLICAS_MAX, balancer=True))
REPLICA_PROCESSES = (
    *(topology.notification_replica(n).process for n in range(2, topology.NOTIFICATION_REPLICAS_MAX + 1)),
    topology.HAPROXY,
)
REPLICA_SCENARIO_DIR = SCENARIO_DIR / "replicas"
# Scenarios too long for the default matrix (the 30 min soak): played only when named.
SOAK_SCENARIO_DIR = SCENARIO_DIR / "soak"


class ScenarioError(ValueError):
    """A scenario that must not run; the message names the file and the field."""


def _check_link(v: str) -> str:
    if v not in topology.PROXIES_BY_NAME and v not in REPLICA_LINKS:
        known = (*topology.PROXIES_BY_NAME, *REPLICA_LINKS)
        raise ValueError(f"unknown link {v!r} (links: {', '.join(known)})")
    return v


def _check_process(v: str) -> str:
    if v == "pushsink":
        raise ValueError("the push sink is the ground truth (its ledger is in memory): fault the `push` link instead")
    known = PROCESSES + CLUSTER_PROCESSES + REPLICA_PROCESSES
    if v not in known:
        raise ValueError(f"unknown process {v!r} (processes: {', '.join(known)})")
    return v


Link = Annotated[str, AfterValidator(_check_link)]
Process = Annotated[str, AfterValidator(_check_process)]


class _Strict(BaseModel):
    # no inf or nan: `duration: .inf` validated, then played forever (or overflowed) once the stack was up
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Timed(_Strict):
    at: float = Field(ge=0, description="seconds after the load starts")
    duration: float | None = Field(default=None, gt=0, description="seconds; default: until the load ends")

    def window(self, load_seconds: float) -> tuple[float, float]:
        end = load_seconds if self.duration is None else min(self.at + self.duration, load_seconds)
        return self.at, end


class ToxicFault(_Timed):
    kind: Literal["toxic"]
    link: Link
    toxic: str
    attributes: dict[str, int] = Field(default_factory=dict)
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0, le=1)

    @field_validator("toxic")
    @classmethod
    def _known_toxic(cls, v: str) -> str:
        if v not in TOXIC_ATTRIBUTES:
            raise ValueError(f"unknown toxic {v!r} (toxics: {', '.join(sorted(TOXIC_ATTRIBUTES))})")
        return v

    @model_validator(mode="after")
    def _known_attributes(self) -> ToxicFault:
        allowed = TOXIC_ATTRIBUTES[self.toxic]
        for key, value in self.attributes.items():
            if key not in allowed:
                has = ", ".join(sorted(allowed))
                raise ValueError(f"attributes: toxic {self.toxic!r} has no attribute {key!r} (it has: {has})")
            if value < 0:
                raise ValueError(f"attributes.{key}: must be >= 0, got {value}")
        return self

    @property
    def target(self) -> str:
        return f"link:{self.link}"

    @property
    def label(self) -> str:
        return f"{self.toxic}({self.stream}) on {self.link}"


class LinkDownFault(_Timed):
    kind: Literal["link-down"]
    link: Link

    @property
    def target(self) -> str:
        return f"link:{self.link}"

    @property
    def label(self) -> str:
        return f"{self.link} down"


class ProcessFault(_Timed):
    """kill: SIGKILL at `at`, restarted at the end of the window. pause: SIGSTOP, then SIGCONT."""

    kind: Literal["kill", "pause"]
    process: Process

    @property
    def target(self) -> str:
        return f"process:{self.process}"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.process}"


Fault = Annotated[ToxicFault | LinkDownFault | ProcessFault, Field(discriminator="kind")]


class Check(_Strict):
    metric: str
    op: comparison.Op
    value: float

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in measures.CHECKABLE:
            raise ValueError(f"unknown metric {v!r} (metrics: {', '.join(measures.CHECKABLE)})")
        return v

    def holds(self, measured: float | None) -> bool:
        return measured is not None and comparison.OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    profile: str = Field(description="a load profile name in loadtests/profiles/ or a path")
    duration: float | None = Field(default=None, gt=0, description="seconds of load; default: the profile's")
    drain_timeout: float = Field(default=60, gt=0)
    faults: list[Fault] = Field(default_factory=list)
    # The replicated topology (harness/replicas.py): the notification replicas the scenario needs,
    # and how its sync cells reach them (the reaction service is switched per cell).
    replicas: int | None = Field(default=None, ge=1, le=topology.NOTIFICATION_REPLICAS_MAX)
    balancer: Literal["haproxy", "client"] | None = None
    hypothesis: dict[str, list[Check]] = Field(
        default_factory=dict, description="pipeline name or '*' -> checks (each with its tolerance)"
    )

    @field_validator("hypothesis")
    @classmethod
    def _known_pipelines(cls, v: dict[str, list[Check]]) -> dict[str, list[Check]]:
        for key in v:
            if key != "*" and key not in topology.PIPELINES:
                raise ValueError(f"unknown pipeline {key!r} (pipelines: *, {', '.join(topology.PIPELINES)})")
        return v

    def checks_for(self, pipeline: str) -> list[Check]:
        return [*self.hypothesis.get("*", []), *self.hypothesis.get(pipeline, [])]

    def conflicts(self, load_seconds: float) -> list[str]:
        """Faults on the same target whose windows overlap: they would undo each other."""
        found = []
        for i, a in enumerate(self.faults):
            for j in range(i + 1, len(self.faults)):
                b = self.faults[j]
                if a.target != b.target:
                    continue
                a0, a1 = a.window(load_seconds)
                b0, b1 = b.window(load_seconds)
                same_toxic = isinstance(a, ToxicFault) and isinstance(b, ToxicFault)
                if same_toxic and (a.toxic, a.stream) != (b.toxic, b.stream):  # type: ignore[union-attr]
                    continue  # different toxics on one link stack fine
                if a0 < b1 and b0 < a1:
                    found.append(f"faults[{j}]: {b.label} overlaps faults[{i}]: {a.label} on {a.target}")
        return found


def _loc(err: dict[str, Any]) -> str:
    parts: list[str] = []
    prev: Any = None
    for p in err["loc"]:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif isinstance(prev, int) and p in ("toxic", "link-down", "kill", "pause"):
            pass  # pydantic's discriminator tag right after a list index adds nothing for the reader
        else:
            parts.append(str(p))
        prev = p
    return ".".join(parts) or "(top level)"


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "union_tag_not_found":
        return "missing field 'kind' (one of: toxic, link-down, kill, pause)"
    if err["type"] == "union_tag_invalid":
        return f"unknown kind {err['ctx']['tag']!r} (one of: toxic, link-down, kill, pause)"
    return str(err["msg"]).removeprefix("Value error, ")


def resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    for kept_apart in (REPLICA_SCENARIO_DIR, SOAK_SCENARIO_DIR):
        if (path := kept_apart / f"{name_or_path}.yaml").exists():
            return path
    return SCENARIO_DIR / f"{name_or_path}.yaml"


def shipped() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def shipped_for_replicas() -> list[str]:
    """The scenarios written for the replicated topology (`bench run --replicas N`), kept apart."""
    return sorted(p.stem for p in REPLICA_SCENARIO_DIR.glob("*.yaml"))


def shipped_soak() -> list[str]:
    """The long scenarios (`bench run --scenario soak`), kept apart: `make bench` never plays them."""
    return sorted(p.stem for p in SOAK_SCENARIO_DIR.glob("*.yaml"))


GROUPS = {"all": shipped, "replicas": shipped_for_replicas}  # names that stand for several scenarios


def expand(refs: list[str]) -> list[str]:
    """Scenario names or paths, each group name ('all', 'replicas') replaced by its scenarios."""
    out: list[str] = []
    for ref in refs:
        out += GROUPS[ref]() if ref in GROUPS else [ref]
    return list(dict.fromkeys(out))


def load(name_or_path: str) -> Scenario:
    path = resolve(name_or_path)
    if not path.exists():
        raise ScenarioError(f"{path}: no such scenario (shipped: {', '.join(shipped())})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from e
    except (OSError, UnicodeDecodeError) as e:  # a directory, unreadable, not text
        raise ScenarioError(f"{path}: cannot read the scenario: {e}") from e
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as e:
        lines = [f"{path}: {_loc(dict(err))}: {_message(dict(err))}" for err in e.errors()]
        raise ScenarioError("\n".join(lines)) from None
    return scenario
