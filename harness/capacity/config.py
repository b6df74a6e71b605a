"""The service level a rate must hold and how the search steps: harness/limits/capacity.yaml, as data."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness import yamlpos

LIMITS_FILE = Path(__file__).resolve().parent.parent / "limits" / "capacity.yaml"

API_P99, ERROR_RATIO, BACKLOG = "api.p99", "error_ratio", "delivery.backlog_growth"

ALL_LIMITS = (API_P99, ERROR_RATIO, BACKLOG)

ACCEPTANCE_LIMITS = (API_P99, ERROR_RATIO)

# A request of a capacity step (or of the generator's own measure) unanswered this long is unknown:
# far beyond any API p99 limit, and short enough that a broken step ends its in-flight requests soon.
REQUEST_TIMEOUT_SECONDS = 5.0


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceLevel(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_p99_seconds: float = Field(gt=0)
    error_ratio: float = Field(ge=0, lt=1)
    backlog_growth_ratio: float = Field(ge=0)


class SearchSettings(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_rate: float = Field(gt=0)
    max_rate: float = Field(gt=0)
    warmup_seconds: float = Field(ge=0)
    measure_seconds: float = Field(gt=0)
    resolution: float = Field(gt=0, lt=1)
    min_step: float = Field(gt=0)
    drain_seconds: float = Field(ge=0)
    ceiling_seconds: float = Field(gt=0)
    generator_seconds: float = Field(gt=0)  # the load generator alone on GET /healthz, wrk paced beside it
    confirm: int = Field(default=0, ge=0)  # replays of the found capacity; one that breaks sends the search lower

    @model_validator(mode="after")
    def _starts_below_its_max(self) -> SearchSettings:
        if self.start_rate > self.max_rate:
            raise ValueError(f"start_rate ({self.start_rate:g}) is above max_rate ({self.max_rate:g})")
        return self


class Searches(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    full: SearchSettings
    quick: SearchSettings


class Disturbed(Model):
    """A step during which processes outside the stack, the generator and the harness took CPU, or
    the hypervisor withheld it, measured the machine, not the pipeline: it is played again, and
    named if it stays disturbed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    other_cores: float = Field(gt=0)  # means over the step's window; 1.0 = one core
    steal_cores: float = Field(gt=0)
    retries: int = Field(ge=0)

    def why(self, other: float, steal: float) -> list[str]:
        """What disturbed a step that saw `other` and `steal` cores; empty when nothing did."""
        reasons = []
        if other > self.other_cores:
            reasons.append(f"other processes took {other:.2f} cores (> {self.other_cores:g})")
        if steal > self.steal_cores:
            reasons.append(f"the hypervisor withheld {steal:.2f} cores (> {self.steal_cores:g})")
        return reasons


class CapacityConfig(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service_level: ServiceLevel
    search: Searches
    disturbed: Disturbed


class ConfigError(ValueError):
    """A capacity file that cannot be used; names the file and every offending field."""


def load_config(path: Path = LIMITS_FILE) -> CapacityConfig:
    try:
        return yamlpos.load_model(path, CapacityConfig)
    except ValueError as e:
        raise ConfigError(str(e)) from None
