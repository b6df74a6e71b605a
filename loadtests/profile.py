"""Load profiles: flat YAML files in loadtests/profiles/, validated, turned into a rate function.

A profile says how many requests per second to *offer* at each moment (open loop); it never
depends on how the system answers. Every field is a number in base units: seconds, requests/s.

A rate field (`rate`, `step_rate`, `target_rate`, `peak_rate`) may instead be relative to a
capacity measured by `bench capacity`: `"0.3 x sync"`, `"3 x sync"`, `"0.5 x async.acceptance"`
(a factor, `x`, and the name of a capacity: a pipeline, or `async.acceptance`). It is resolved
when the profile is read with `capacities`; the profile then keeps the number in the field and
the expression in `relative_rates`. Without capacities such a profile is an error that says to
run `bench capacity`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and every offending field."""

    def __init__(self, source: str, problems: list[tuple[str | None, str]]) -> None:
        self.source = source
        self.fields = [f for f, _ in problems if f]
        self.field = self.fields[0] if self.fields else None
        parts = [f"field '{f}': {m}" if f else m for f, m in problems]
        super().__init__(f"{source}: {'; '.join(parts)}")


@dataclass(frozen=True)
class Capacities:
    """Measured capacities, requests/s by name ("sync", "async", "async.acceptance"), and where
    they come from (a file, for messages)."""

    rates: Mapping[str, float]
    source: str
    tracing: str | None = None  # the services' tracing while they were measured ("off", "0.1"), when known


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*[x\u00d7]\s*([a-z][a-z0-9-]*(?:\.[a-z]+)?)\s*$")
RELATIVE_SYNTAX = "'<factor> x <capacity>', e.g. '0.3 x sync', '3 x sync', '0.5 x async.acceptance'"


def parse_relative(text: str) -> tuple[float, str] | None:
    """("0.3 x sync") -> (0.3, "sync"); None when `text` is not a capacity-relative rate."""
    m = _RELATIVE.match(text)
    return (float(m.group(1)), m.group(2)) if m else None


def _resolve(value: str, capacities: Capacities | None) -> tuple[float | None, str | None]:
    """(requests/s, None) or (None, why it cannot be resolved)."""
    parsed = parse_relative(value)
    if parsed is None:
        return None, f"{value!r} is not a valid number (requests/s), nor a capacity-relative rate {RELATIVE_SYNTAX}"
    factor, name = parsed
    if capacities is None:
        return None, (
            f"{value!r} is relative to the measured capacity of {name!r}, and no capacity was measured "
            "on this machine: run `bench capacity` first"
        )
    if name not in capacities.rates:
        known = ", ".join(sorted(capacities.rates)) or "(none)"
        return None, (
            f"{value!r}: no capacity {name!r} in {capacities.source} (it has: {known}); "
            f"run `bench capacity --pipeline {name.split('.')[0]}`"
        )
    return factor * capacities.rates[name], None


class _Profile(BaseModel):
    # strict: "30s" or "100" are errors, not silently coerced; forbid: a typo is an error, not ignored.
    # no inf or nan: a rate or a length of .inf validated, then overflowed once the stack was up.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    # Fields holding durations or instants (scaled by --duration) and rates (scaled by --rate-scale).
    time_fields: ClassVar[tuple[str, ...]] = ("duration",)
    rate_fields: ClassVar[tuple[str, ...]] = ("rate",)

    name: str = ""
    description: str = ""
    rate: float = Field(ge=0, description="base arrival rate, requests per second")
    duration: float = Field(gt=0, description="length of the profile, seconds")
    # Set when the profile is read with capacities, never in a file: rate field -> its expression.
    relative_rates: dict[str, str] = Field(default_factory=dict)

    def rate_at(self, t: float) -> float:
        """Offered arrival rate (requests/s) at `t` seconds after the start; 0 outside the profile."""
        if not 0.0 <= t < self.duration:
            return 0.0
        return max(0.0, self._rate(t))

    def _rate(self, t: float) -> float:
        return self.rate

    def breakpoints(self) -> tuple[float, ...]:
        """Instants where the rate jumps, so an integrator can place a grid point exactly there."""
        return ()

    def scaled(self, *, duration: float | None = None, rate_factor: float = 1.0) -> Self:
        """The same shape compressed to `duration` seconds (all times scale alike), rates times `rate_factor`."""
        if duration is not None and duration <= 0:
            raise ValueError(f"duration must be > 0, got {duration}")
        if rate_factor < 0:
            raise ValueError(f"rate_factor must be >= 0, got {rate_factor}")
        time_factor = 1.0 if duration is None else duration / self.duration
        update: dict[str, Any] = {f: getattr(self, f) * time_factor for f in self.time_fields}
        update.update({f: getattr(self, f) * rate_factor for f in self.rate_fields})
        # model_copy skips re-validation on purpose: float rounding of scaled sums must not fail checks.
        return self.model_copy(update=update)

    def max_rate(self) -> float:
        return max(self.rate_at(t) for t in self._probe_times())

    def _probe_times(self) -> list[float]:
        points = [0.0, *self.breakpoints(), self.duration * (1 - 1e-9)]
        points += [self.duration * i / 1000 for i in range(1000)]
        return points


class SteadyProfile(_Profile):
    """`rate` for the whole `duration`."""

    kind: Literal["steady"]


class StepProfile(_Profile):
    """Start at `rate`, add `step_rate` every `step_interval` seconds (a staircase)."""

    kind: Literal["step"]
    time_fields = ("duration", "step_interval")
    rate_fields = ("rate", "step_rate")

    step_rate: float = Field(description="added to the rate at every step (negative steps down)")
    step_interval: float = Field(gt=0, description="seconds between steps")

    def _rate(self, t: float) -> float:
        return self.rate + math.floor(t / self.step_interval) * self.step_rate

    def breakpoints(self) -> tuple[float, ...]:
        steps = math.ceil(self.duration / self.step_interval)
        return tuple(i * self.step_interval for i in range(1, steps) if i * self.step_interval < self.duration)


class RampProfile(_Profile):
    """Linear from `rate` to `target_rate` over `ramp_time` seconds, then hold `target_rate`."""

    kind: Literal["ramp"]
    time_fields = ("duration", "ramp_time")
    rate_fields = ("rate", "target_rate")

    target_rate: float = Field(ge=0, description="rate reached at the end of the ramp, requests per second")
    ramp_time: float = Field(gt=0, description="seconds the ramp takes; the rest of `duration` holds")

    @field_validator("ramp_time")
    @classmethod
    def _ramp_fits(cls, value: float, info: ValidationInfo) -> float:
        duration = info.data.get("duration")
        if duration is not None and value > duration:
            raise ValueError(f"ramp_time ({value}) must not exceed duration ({duration})")
        return value

    def _rate(self, t: float) -> float:
        if t >= self.ramp_time:
            return self.target_rate
        return self.rate + (self.target_rate - self.rate) * t / self.ramp_time


class SurgeProfile(_Profile):
    """`rate`, then `rate * surge_multiplier` from `surge_start` for `surge_duration` s, then `rate` again."""

    kind: Literal["surge"]
    time_fields = ("duration", "surge_start", "surge_duration")

    surge_multiplier: float = Field(ge=0, description="rate during the surge divided by the base rate")
    surge_start: float = Field(ge=0, description="seconds from the start to the surge")
    surge_duration: float = Field(gt=0, description="seconds the surge lasts")

    @field_validator("surge_duration")
    @classmethod
    def _surge_fits(cls, value: float, info: ValidationInfo) -> float:
        duration, start = info.data.get("duration"), info.data.get("surge_start")
        if duration is not None and start is not None and start + value > duration:
            raise ValueError(f"surge_start + surge_duration ({start + value}) exceeds duration ({duration})")
        return value

    @property
    def surge_end(self) -> float:
        return self.surge_start + self.surge_duration

    def _rate(self, t: float) -> float:
        if self.surge_start <= t < self.surge_end:
            return self.rate * self.surge_multiplier
        return self.rate

    def breakpoints(self) -> tuple[float, ...]:
        return tuple(p for p in (self.surge_start, self.surge_end) if 0 < p < self.duration)


class WaveProfile(_Profile):
    """Raised-cosine waves between `rate` (trough, at t=0) and `peak_rate`, one every `period` s."""

    kind: Literal["wave"]
    time_fields = ("duration", "period")
    rate_fields = ("rate", "peak_rate")

    peak_rate: float = Field(ge=0, description="rate at the crest of each wave, requests per second")
    period: float = Field(gt=0, description="seconds from one trough to the next")

    def _rate(self, t: float) -> float:
        phase = 2 * math.pi * t / self.period
        return self.rate + (self.peak_rate - self.rate) * (1 - math.cos(phase)) / 2


Profile = SteadyProfile | StepProfile | RampProfile | SurgeProfile | WaveProfile
KINDS = ("steady", "step", "ramp", "surge", "wave")
_ADAPTER: TypeAdapter[Profile] = TypeAdapter(Annotated[Profile, Field(discriminator="kind")])


_CLASSES: dict[str, type[_Profile]] = {
    "steady": SteadyProfile, "step": StepProfile, "ramp": RampProfile, "surge": SurgeProfile, "wave": WaveProfile,
}  # fmt: skip


def parse_profile(data: object, source: str, default_name: str = "", capacities: Capacities | None = None) -> Profile:
    """Validate already-parsed YAML; errors name `source` and the offending field. Capacity-relative
    rates are resolved from `capacities` (every problem of the file is reported at once)."""
    if not isinstance(data, dict):
        raise ProfileError(source, [(None, f"expected a mapping of fields, got {type(data).__name__}")])
    if default_name and "name" not in data:
        data = {**data, "name": default_name}
    problems: list[tuple[str | None, str]] = []
    if "relative_rates" in data:
        problems.append(("relative_rates", "is set when capacity-relative rates are resolved, not in a file"))
    cls = _CLASSES.get(data["kind"]) if isinstance(data.get("kind"), str) else None
    relative: dict[str, str] = {}
    for field in cls.rate_fields if cls else ("rate",):
        value = data.get(field)
        if isinstance(value, str):
            number, why = _resolve(value, capacities)
            if why is not None:
                problems.append((field, why))
            relative[field] = value.strip()
            data = {**data, field: 0.0 if number is None else number}
    try:
        profile = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems += [p for p in (_problem(err, data) for err in exc.errors()) if p[0] not in relative]
    if problems:
        raise ProfileError(source, problems)
    return profile.model_copy(update={"relative_rates": relative}) if relative else profile


def _problem(err: Any, data: dict[str, Any]) -> tuple[str | None, str]:
    if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
        got = f"got {data['kind']!r}" if "kind" in data else "missing"
        return "kind", f"must be one of {', '.join(KINDS)}; {got}"
    # loc starts with the discriminator tag, e.g. ("surge", "surge_duration"); the tag is not a field.
    field = ".".join(str(p) for p in err["loc"][1:]) or None
    return field, str(err["msg"]).removeprefix("Value error, ")


def load_profile(path: str | Path, capacities: Capacities | None = None) -> Profile:
    """Read and validate one profile file (capacity-relative rates resolved from `capacities`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), [(None, f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ProfileError(str(path), [(None, f"not UTF-8 text: {exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(str(path), [(None, f"not valid YAML: {exc}")]) from None
    return parse_profile(data, str(path), default_name=path.stem, capacities=capacities)


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def resolve_profile(ref: str, directory: Path = PROFILES_DIR) -> Path:
    """A path, a profile name (file stem), or its leading words if unambiguous ("surge", "double-wave")."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return candidate
    names = available_profiles(directory)
    matches = [n for n in names if n == ref] or [n for n in names if n.startswith(f"{ref}-")]
    if len(matches) != 1:
        why = "is ambiguous" if matches else "matches no profile"
        raise ProfileError(ref, [(None, f"{why}; available in {directory}: {', '.join(names) or '(none)'}")])
    return directory / f"{matches[0]}.yaml"


def find_profile(ref: str, directory: Path = PROFILES_DIR, capacities: Capacities | None = None) -> Profile:
    return load_profile(resolve_profile(ref, directory), capacities)


def to_yaml(profile: Profile) -> str:
    """The profile as a file the load generator reads: numbers only (a resolved capacity-relative
    rate is written as its number, its expression as a comment)."""
    data = profile.model_dump(exclude={"relative_rates"})
    head = "".join(f"# {f}: {e} (resolved)\n" for f, e in sorted(profile.relative_rates.items()))
    return head + yaml.safe_dump(data, sort_keys=False)
