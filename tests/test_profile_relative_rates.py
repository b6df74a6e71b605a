"""Capacity-relative rates in load profiles ("0.3 x sync"), resolved at plan time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.plan import PlanError, make_plan
from loadtests.profile import Capacities, ProfileError, load_profile, parse_profile, parse_relative, to_yaml

CAPS = Capacities(rates={"sync": 600.0, "async": 1000.0, "async.acceptance": 1800.0}, source="caps.json")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("0.3 x sync", (0.3, "sync")), ("3x sync", (3.0, "sync")),
     (" 1.5 \u00d7 async.acceptance ", (1.5, "async.acceptance")), (".5 x sync-resilient", (0.5, "sync-resilient")),
     ("sync x 3", None), ("-1 x sync", None), ("3 x", None)],
)  # fmt: skip
def test_parse_relative(text: str, parsed: tuple[float, str] | None) -> None:
    assert parse_relative(text) == parsed


def test_relative_rates_resolve_and_keep_the_expression() -> None:
    data = {"kind": "wave", "rate": "0.3 x sync", "peak_rate": "3 x sync", "period": 30, "duration": 60}
    profile = parse_profile(data, "p.yaml", capacities=CAPS)
    assert profile.rate == pytest.approx(180)
    assert profile.peak_rate == pytest.approx(1800)  # type: ignore[union-attr]
    assert profile.relative_rates == {"rate": "0.3 x sync", "peak_rate": "3 x sync"}
    assert profile.max_rate() == pytest.approx(1800)
    scaled = profile.scaled(duration=30)
    assert scaled.relative_rates == profile.relative_rates and scaled.rate == profile.rate


def test_absolute_rates_keep_working() -> None:
    profile = parse_profile({"kind": "steady", "rate": 100, "duration": 10}, "p.yaml")
    assert profile.rate == 100 and profile.relative_rates == {}


def test_without_capacities_the_error_says_to_run_bench_capacity() -> None:
    with pytest.raises(ProfileError) as e:
        parse_profile({"kind": "steady", "rate": "0.3 x sync", "duration": 10}, "p.yaml")
    assert e.value.field == "rate"
    assert "p.yaml" in str(e.value) and "bench capacity" in str(e.value)


def test_an_unknown_capacity_or_a_bad_expression_names_the_field() -> None:
    with pytest.raises(ProfileError) as e:
        parse_profile(
            {"kind": "ramp", "rate": "2 x kafka", "target_rate": "lots", "ramp_time": 5, "duration": 10},
            "p.yaml",
            capacities=CAPS,
        )
    assert e.value.fields == ["rate", "target_rate"]
    assert "no capacity 'kafka' in caps.json" in str(e.value)
    assert "'<factor> x <capacity>'" in str(e.value)


def test_relative_rates_cannot_be_written_by_hand() -> None:
    with pytest.raises(ProfileError) as e:
        parse_profile({"kind": "steady", "rate": 1, "duration": 1, "relative_rates": {}}, "p.yaml")
    assert e.value.field == "relative_rates"


def test_to_yaml_is_a_file_the_generator_reads(tmp_path: Path) -> None:
    profile = parse_profile(
        {"kind": "surge", "rate": "0.3 x sync", "surge_multiplier": 10, "surge_start": 1, "surge_duration": 2,
         "duration": 5}, "p.yaml", capacities=CAPS,
    )  # fmt: skip
    path = tmp_path / "played.yaml"
    path.write_text(to_yaml(profile))
    assert "# rate: 0.3 x sync (resolved)" in path.read_text()
    again = load_profile(path)  # no capacities needed any more
    assert again.rate == pytest.approx(180) and again.relative_rates == {}


def _scenario(tmp_path: Path, rate: object) -> Path:
    profile = tmp_path / "relative-steady.yaml"
    profile.write_text(yaml.safe_dump({"kind": "steady", "rate": rate, "duration": 20}))
    scenario = tmp_path / "relative.yaml"
    scenario.write_text(
        yaml.safe_dump({"name": "relative", "description": "d", "profile": str(profile), "drain_timeout": 10})
    )
    return scenario


def test_make_plan_resolves_from_capacities(tmp_path: Path) -> None:
    plan = make_plan(["sync", "async"], [str(_scenario(tmp_path, "0.5 x sync"))], capacities=CAPS)
    cell = plan.cells[0]
    assert cell.profile.rate == pytest.approx(300)
    assert cell.profile.relative_rates == {"rate": "0.5 x sync"}


def test_make_plan_without_capacities_names_the_profile_and_says_run_bench_capacity(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, "0.5 x sync")
    with pytest.raises(PlanError) as e:
        make_plan(["sync"], [str(scenario)])
    message = str(e.value)
    assert "relative-steady.yaml" in message and "field 'rate'" in message and "bench capacity" in message
