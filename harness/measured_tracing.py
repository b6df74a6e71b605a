"""How the harness' measurements trace (harness/limits/tracing.yaml): one setting for `bench run`
and `bench capacity`, so a load relative to a measured capacity runs under the tracing that
capacity was measured with. A setting is "off" or the share of traces kept ("0.1", "1")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from harness import yamlpos
from harness.stack import Tracing

SETTINGS_FILE = Path(__file__).resolve().parent / "limits" / "tracing.yaml"


def tracing_of(setting: str) -> Tracing:
    """ "off", or the share of traces kept ("0.01", "1") -> what the services are told."""
    if setting == "off":
        return Tracing(enabled=False)
    try:
        ratio = float(setting)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{setting!r} is not a tracing setting: 'off', or the share of traces kept, within [0, 1]")
    return Tracing(enabled=True, sample_ratio=ratio)


def words(setting: str) -> str:
    """For a report: "off", "every reaction", "10% of reactions", "0.5% of reactions", and for 0 what
    it measures: tracing on (the SDK, the instrumentations and their gates), no reaction traced."""
    t = tracing_of(setting)
    if not t.enabled:
        return "off"
    if t.sample_ratio == 1.0:
        return "every reaction"
    share = f"{t.sample_ratio * 100:g}% of reactions"
    return share + (" (tracing on, none traced)" if t.sample_ratio == 0.0 else "")


Setting = Annotated[str, AfterValidator(lambda v: (tracing_of(v), v)[1])]


class ReadBack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_seconds: float = Field(gt=0)
    windows: int = Field(ge=1)
    settle_seconds: float = Field(ge=0)  # longest a read waits for the spans still arriving to settle


class MeasuredTracing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: Setting
    overhead: list[Setting]
    read_back: ReadBack


def load(path: Path = SETTINGS_FILE) -> MeasuredTracing:
    return yamlpos.load_model(path, MeasuredTracing)
