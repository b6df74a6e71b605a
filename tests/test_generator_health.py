"""When the load generator is the bottleneck: each reason, and the limits file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from harness import generator_health as gh
from harness.loadgen import LoadRun

LIMITS = gh.GeneratorLimits(
    lag_p99_seconds=0.05,
    max_missed_arrivals=0,
    in_flight_seconds=3.0,
    min_in_flight=1000,
    nice=0,
    wake_interval_seconds=0.002,
)
DONE = {"worker": 0, "completed_schedule": True}


def limits_file(path: Path, **change: float | None) -> Path:
    """A limits file: LIMITS's fields with `change` (None leaves a field out)."""
    fields = {**LIMITS.model_dump(), **change}
    path.write_text(yaml.safe_dump({k: v for k, v in fields.items() if v is not None}))
    return path


def test_a_generator_that_kept_up_has_no_reason() -> None:
    assert gh.fell_behind(lag_p99=0.002, missed=0, workers_expected=1, summaries=[DONE], limits=LIMITS) == []
    assert gh.fell_behind(lag_p99=None, missed=0, workers_expected=1, summaries=[DONE], limits=LIMITS) == []


def test_each_way_of_falling_behind_is_named() -> None:
    unfinished = {"worker": 1, "completed_schedule": False}
    assert gh.fell_behind(lag_p99=0.8, missed=3, workers_expected=3, summaries=[DONE, unfinished], limits=LIMITS) == [
        "schedule lag p99 800.0 ms > 50 ms",
        "3 arrivals missed at the in-flight cap (limit 0)",
        "2 worker summaries of 3 workers",
        "worker(s) 1 did not complete their schedule",
    ]


def test_lags_come_from_each_request_s_intended_and_actual_start() -> None:
    outcomes = [{"intended_unix_nanos": 0, "started_unix_nanos": n * 1_000_000} for n in range(1, 101)]
    assert gh.lag_summary(gh.schedule_lags(outcomes)) == {"p50": 0.05, "p99": 0.099, "max": 0.1}


def test_the_shipped_limits_load_and_a_bad_file_is_named(tmp_path: Path) -> None:
    assert gh.load_limits().lag_p99_seconds > 0
    bad = limits_file(tmp_path / "g.yaml", max_missed_arrivals=None, max_missed=0)
    with pytest.raises(ValueError, match=rf"{bad}: field 'max_missed_arrivals': Field required; field 'max_missed'"):
        gh.load_limits(bad)


def test_the_in_flight_cap_grows_with_the_peak_so_a_slow_pipeline_does_not_fill_it() -> None:
    limits = gh.load_limits()
    assert limits.in_flight_cap(10) == limits.min_in_flight  # a light load keeps the floor
    # a 750/s surge against a pipeline answering at its 1 s deadline: more than the old fixed 1,000
    assert limits.in_flight_cap(750) == math.ceil(750 * limits.in_flight_seconds) > 1000


def test_the_cells_wake_interval_reaches_locust_and_a_late_one_is_refused(tmp_path: Path) -> None:
    wake = gh.load_limits().wake_interval_seconds
    command = LoadRun("p.yaml", 10.0, tmp_path, wake_interval=wake).command()
    assert command[command.index("--wake-interval") + 1] == f"{wake:g}"
    late = limits_file(tmp_path / "late.yaml", wake_interval_seconds=0.2)
    with pytest.raises(ValueError, match=rf"{late}: field 'wake_interval_seconds': .*less than or equal to 0.05"):
        gh.load_limits(late)
