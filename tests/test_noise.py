"""A/A noise floors, and `bench compare --noise` failing only on a change beyond them."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from harness import cli, noise
from harness import result as result_model
from harness.result import CellResult
from tests.synthetic_run import result, write_run


def repeated(api_by_rep: tuple[float, ...]) -> list[CellResult]:
    cells = []
    for k, api in enumerate(api_by_rep, start=1):
        c = result("async", "baseline", api=api, seed=k)
        c.repetition = k
        cells.append(c)
    return cells


def test_the_floor_of_a_repeated_run_bounds_the_difference_of_two_runs(tmp_path: Path) -> None:
    run = result_model.load(write_run(tmp_path / "aa", repeated((0.010, 0.012, 0.011))))
    floor = noise.measure([run])
    api = [v for c in run.cells if (v := c.metrics()["api.p99"]) is not None]
    assert floor.floors["async.baseline.api.p99"] == pytest.approx(4.303 * statistics.stdev(api) * 2**0.5)  # t(2)
    assert floor.floors["async.baseline.lost"] == 0.0
    assert "repetitions" in floor.method


def test_unchanged_code_stays_within_the_floor_95_times_in_100() -> None:
    # The floor from N runs of the same code, then two more runs of it: their difference must cross
    # the floor about 5 % of the time. The largest difference seen, the floor before, was crossed
    # by 50 % at N = 2 (and over some 40 metrics a compare practically never passed).
    rnd = random.Random(11)
    for n in (2, 3, 5):
        crossed = 0
        for _ in range(4000):
            floor = noise.floor_of([rnd.gauss(0.0, 1.0) for _ in range(n)])
            crossed += abs(rnd.gauss(0.0, 1.0) - rnd.gauss(0.0, 1.0)) > floor
        assert 0.035 <= crossed / 4000 <= 0.065, (n, crossed / 4000)


def test_two_runs_give_their_difference_and_a_run_without_repetitions_alone_is_refused(tmp_path: Path) -> None:
    a = result_model.load(write_run(tmp_path / "a", [result("async", "baseline", api=0.010)]))
    b = result_model.load(write_run(tmp_path / "b", [result("async", "baseline", api=0.013)]))
    floor = noise.measure([a, b])
    va, vb = a.env()["async.baseline.api.p99"], b.env()["async.baseline.api.p99"]
    assert va is not None and vb is not None
    assert floor.floors["async.baseline.api.p99"] == pytest.approx(12.706 * abs(va - vb))  # t(1) * s * sqrt(2)
    with pytest.raises(result_model.ResultsError, match="no cell was repeated"):
        noise.measure([a])


def test_compare_with_the_noise_floor_fails_only_beyond_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aa = write_run(tmp_path / "aa", repeated((0.010, 0.012, 0.011)))
    assert cli.main(["noise", str(aa), "--out", str(tmp_path / "noise.json")]) == 0
    empty = tmp_path / "none.yaml"
    empty.write_text("thresholds: []\n")
    within = write_run(tmp_path / "within", repeated((0.0105, 0.0115, 0.011)))
    args = ["compare", str(aa), "--thresholds", str(empty), "--noise", str(tmp_path / "noise.json")]
    assert cli.main([*args[:2], str(within), *args[2:]]) == 0
    beyond = write_run(tmp_path / "beyond", repeated((0.030, 0.032, 0.031)))
    capsys.readouterr()
    assert cli.main([*args[:2], str(beyond), *args[2:]]) == 1
    out = capsys.readouterr().out
    assert "crossed: async.baseline.api.p99 <= " in out
    assert "new - base (95 %)" in out  # each difference with its interval (over the repetitions here)


def test_a_bad_noise_file_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "r", [result("async", "baseline")])
    bad = tmp_path / "noise.json"
    bad.write_text('{"runs": [], "method": "x", "floors": {"a": "b"}}')
    assert cli.main(["compare", str(run), str(run), "--noise", str(bad)]) == 2
    assert f"{bad}: floors.a" in capsys.readouterr().err


def test_three_runs_two_without_a_common_metric_and_a_negative_floor_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [write_run(tmp_path / n, [result("async", "baseline", api=0.01)]) for n in "abc"]
    other = write_run(tmp_path / "d", [result("sync", "surge", api=0.01)])
    assert cli.main(["noise", *map(str, runs)]) == 2  # it would have used two and named three
    assert "not 3" in capsys.readouterr().err
    assert cli.main(["noise", str(runs[0]), str(other)]) == 2  # nothing in common: an empty floor
    assert "no metric of a cell measured in both runs" in capsys.readouterr().err
    assert not (runs[0] / "noise.json").exists()
    bad = tmp_path / "noise.json"
    bad.write_text('{"runs": [], "method": "x", "floors": {"async.baseline.lost": -5}}')
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--noise", str(bad)]) == 2
    assert f"{bad}: floors.async.baseline.lost" in capsys.readouterr().err


def test_noise_out_to_a_folder_or_a_missing_parent_exits_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aa = write_run(tmp_path / "aa", repeated((0.010, 0.012)))
    for out in (tmp_path, tmp_path / "no" / "such" / "n.json"):
        assert cli.main(["noise", str(aa), "--out", str(out)]) == 1
        assert "bench noise: cannot write the floors" in capsys.readouterr().err


def test_a_noise_file_that_is_not_text_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "r", [result("async", "baseline")])
    bad = tmp_path / "noise.json"
    bad.write_bytes(b"\xff\xfe{}")
    assert cli.main(["compare", str(run), str(run), "--noise", str(bad)]) == 2
    assert f"{bad}: cannot read" in capsys.readouterr().err
