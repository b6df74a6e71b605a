"""Load profiles: the shipped files, rate functions, time compression, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.profile import (
    KINDS,
    PROFILES_DIR,
    ProfileError,
    SurgeProfile,
    WaveProfile,
    available_profiles,
    find_profile,
    load_profile,
    parse_profile,
    resolve_profile,
)
from tests.synthetic_run import CAPACITIES

SURGE = {"kind": "surge", "rate": 50, "surge_multiplier": 10, "surge_start": 30, "surge_duration": 30, "duration": 120}


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_profile_loads_and_all_kinds_are_shipped():
    names = available_profiles()
    assert len(names) >= 5
    kinds = set()
    relative = 0
    for name in names:
        profile = load_profile(PROFILES_DIR / f"{name}.yaml", capacities=CAPACITIES)
        assert profile.name == name  # files are named after their shape, and say so
        assert profile.description
        assert profile.max_rate() > 0
        kinds.add(profile.kind)
        relative += bool(profile.relative_rates)
    assert kinds == set(KINDS)
    assert relative == len(names) - 1  # all but Locust's own default, which has numbers only


def test_every_scenario_profile_is_relative_to_the_sync_capacity_and_surges_past_it():
    from chaos import scenario as scenarios

    refs = [*scenarios.shipped(), *scenarios.shipped_for_replicas(), *scenarios.shipped_soak()]
    used = {scenarios.load(ref).profile for ref in refs}
    for ref in used:
        profile = find_profile(ref, capacities=CAPACITIES)
        assert profile.relative_rates.get("rate", "").endswith(" x sync"), ref
    surge = find_profile("surge", capacities=CAPACITIES)
    assert surge.max_rate() > CAPACITIES.rates["sync"] > surge.rate_at(0)
    with pytest.raises(ProfileError, match="run `bench capacity` first"):
        find_profile("steady")  # no capacity: nothing runs at a guessed rate


def test_rate_functions():
    surge = parse_profile(SURGE, "x")
    assert [surge.rate_at(t) for t in (0, 29.9, 30, 59.9, 60, 119.9, 120, -1)] == [50, 50, 500, 500, 50, 50, 0, 0]
    assert surge.breakpoints() == (30, 60)
    step = parse_profile({"kind": "step", "rate": 50, "step_rate": 50, "step_interval": 20, "duration": 100}, "x")
    assert [step.rate_at(t) for t in (0, 19.9, 20, 99)] == [50, 50, 100, 250]
    down = parse_profile({"kind": "step", "rate": 50, "step_rate": -30, "step_interval": 1, "duration": 5}, "x")
    assert down.rate_at(3.5) == 0  # never negative
    ramp = parse_profile({"kind": "ramp", "rate": 10, "target_rate": 110, "ramp_time": 10, "duration": 20}, "x")
    assert [ramp.rate_at(t) for t in (0, 5, 10, 15)] == [10, 60, 110, 110]
    wave = parse_profile({"kind": "wave", "rate": 50, "peak_rate": 400, "period": 60, "duration": 120}, "x")
    assert wave.rate_at(0) == pytest.approx(50)
    assert wave.rate_at(30) == pytest.approx(400)
    assert wave.rate_at(60) == pytest.approx(50)
    assert wave.rate_at(90) == pytest.approx(400)  # the second wave
    steady = parse_profile({"kind": "steady", "rate": 7, "duration": 3}, "x")
    assert steady.rate_at(2.9) == 7 and steady.breakpoints() == ()


def test_scaled_compresses_the_timeline_proportionally():
    surge = parse_profile(SURGE, "x")
    assert isinstance(surge, SurgeProfile)
    quick = surge.scaled(duration=12)
    assert (quick.duration, quick.surge_start, quick.surge_duration) == pytest.approx((12, 3, 3))
    assert quick.rate == 50 and quick.surge_multiplier == 10  # rates are untouched
    assert quick.rate_at(4) == 500 and quick.rate_at(7) == 50
    half = surge.scaled(rate_factor=0.5)
    assert half.duration == 120 and half.rate_at(40) == 250
    wave = parse_profile({"kind": "wave", "rate": 50, "peak_rate": 400, "period": 60, "duration": 120}, "x")
    assert isinstance(wave, WaveProfile)
    assert wave.scaled(duration=30).period == 15
    step = parse_profile({"kind": "step", "rate": 10, "step_rate": 5, "step_interval": 20, "duration": 100}, "x")
    assert step.scaled(duration=10, rate_factor=2).model_dump(include={"step_interval", "step_rate", "rate"}) == {
        "step_interval": 2,
        "step_rate": 10,
        "rate": 20,
    }
    with pytest.raises(ValueError):
        surge.scaled(duration=0)


def test_resolve_by_name_leading_words_or_path(tmp_path):
    assert resolve_profile("surge-10x-30s") == PROFILES_DIR / "surge-10x-30s.yaml"
    assert resolve_profile("surge") == PROFILES_DIR / "surge-10x-30s.yaml"  # what chaos/scenarios say
    assert resolve_profile("steady").name.startswith("steady-")
    assert resolve_profile("double-wave").name.startswith("double-wave-")
    custom = write(tmp_path, "kind: steady\nrate: 1\nduration: 1\n", "mine.yaml")
    assert find_profile(str(custom)).name == "mine"  # the name defaults to the file stem
    with pytest.raises(ProfileError, match=r"matches no profile.*surge-10x"):
        resolve_profile("st")  # only whole leading words match: "st" is neither steady nor step
    with pytest.raises(ProfileError, match="is ambiguous"):
        resolve_profile("x", directory=_two_x_profiles(tmp_path))


def _two_x_profiles(tmp_path: Path) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    for name in ("x-1", "x-2"):
        (d / f"{name}.yaml").write_text("kind: steady\nrate: 1\nduration: 1\n")
    return d


BAD = [
    # (yaml text, field the error must name, words the message must contain)
    ("kind: steady\nrate: 10\nduration: 60\nburst: 3\n", "burst", "Extra inputs are not permitted"),
    ("kind: steady\nrate: '10'\nduration: 60\n", "rate", "valid number"),
    ("kind: steady\nrate: 10\nduration: 60s\n", "duration", "valid number"),
    ("kind: steady\nrate: true\nduration: 60\n", "rate", "valid number"),
    ("kind: steady\nrate: 10\nduration: -5\n", "duration", "greater than 0"),
    ("kind: steady\nrate: 10\nduration: 0\n", "duration", "greater than 0"),
    ("kind: steady\nrate: -1\nduration: 10\n", "rate", "greater than or equal to 0"),
    ("kind: steady\nrate: 10\n", "duration", "Field required"),
    ("kind: steady\nrate: .inf\nduration: 10\n", "rate", "finite number"),  # validated, then overflowed mid-run
    ("kind: steady\nrate: 10\nduration: .inf\n", "duration", "finite number"),
    (
        "kind: surge\nrate: 10\nduration: 60\nsurge_multiplier: 10\nsurge_start: -1\nsurge_duration: 5\n",
        "surge_start",
        "greater than or equal to 0",
    ),
    (
        "kind: surge\nrate: 10\nduration: 60\nsurge_multiplier: 10\nsurge_start: 50\nsurge_duration: 20\n",
        "surge_duration",
        "exceeds duration",
    ),
    ("kind: ramp\nrate: 1\ntarget_rate: 5\nramp_time: 90\nduration: 60\n", "ramp_time", "must not exceed duration"),
    ("kind: step\nrate: 1\nstep_rate: 5\nstep_interval: 0\nduration: 60\n", "step_interval", "greater than 0"),
    ("kind: wave\nrate: 1\npeak_rate: 5\nperiod: -60\nduration: 60\n", "period", "greater than 0"),
    ("kind: spike\nrate: 1\nduration: 60\n", "kind", "must be one of steady, step, ramp, surge, wave; got 'spike'"),
    ("rate: 1\nduration: 60\n", "kind", "missing"),
]


@pytest.mark.parametrize(("text", "field", "words"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_profile_errors_name_the_file_and_the_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert f"field '{field}'" in message
    assert words in message
    assert err.value.field == field


def test_every_bad_field_is_reported_at_once(tmp_path):
    path = write(tmp_path, "kind: steady\nrate: -1\nduration: 0\ncolour: red\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert err.value.fields == ["rate", "duration", "colour"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- kind: steady\n", "expected a mapping of fields, got list"),
        ("kind: [steady\n", "not valid YAML"),
        ("", "got NoneType"),
    ],
)
def test_unusable_files_name_the_file(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError, match=words) as err:
        load_profile(path)
    assert str(err.value).startswith(str(path))


def test_a_file_that_is_not_text_names_the_file(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"kind: steady\nrate: \xff\n")
    with pytest.raises(ProfileError, match="not UTF-8 text") as err:
        load_profile(path)
    assert str(err.value).startswith(str(path))


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ProfileError, match="cannot read") as err:
        load_profile(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(err.value)
