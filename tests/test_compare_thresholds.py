"""Threshold syntax and semantics of `bench compare` (harness/compare.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import compare
from harness import result as result_model
from tests.synthetic_run import result, write_run


def thresholds(tmp_path: Path, *lines: str) -> list[compare.Threshold]:
    path = tmp_path / "t.yaml"
    path.write_text("thresholds:\n" + "".join(f"  - {line!r}\n" for line in lines))
    return compare.load(path)


def rows(tmp_path: Path, base: list, new: list, *lines: str) -> list[compare.Row]:
    b = result_model.load(write_run(tmp_path / "base", base))
    n = result_model.load(write_run(tmp_path / "new", new))
    return [r for r in compare.compare(b, n, thresholds(tmp_path, *lines)) if r.checks]


def test_default_thresholds_load() -> None:
    loaded = compare.load()
    assert any(t.text == "*.*.lost == 0" for t in loaded)
    assert all(t.line > 1 for t in loaded)


def test_parse_relative_and_absolute(tmp_path: Path) -> None:
    rel, absolute, expr_limit = thresholds(
        tmp_path, "async.surge.api.p99 < +10%", "*.*.lost == 0", "sync.baseline.e2e.p99 < max(base * 1.5, base + 5ms)"
    )
    assert (rel.pipeline, rel.scenario, rel.metric, rel.op, rel.relative) == ("async", "surge", "api.p99", "<", 0.10)
    assert absolute.relative is None and absolute.matches("sync-resilient", "broker-down", "lost")
    assert not absolute.matches("sync", "baseline", "unexpected")
    assert expr_limit.limit is not None and expr_limit.line == 4


@pytest.mark.parametrize(
    ("base", "new", "line", "passed"),
    [
        (0.100, 0.109, "async.baseline.api.p99 < +10%", True),
        (0.100, 0.111, "async.baseline.api.p99 < +10%", False),
        (100.0, 96.0, "async.baseline.achieved_rate > -5%", True),
        (100.0, 94.0, "async.baseline.achieved_rate > -5%", False),
        (0.0, 0.0, "async.baseline.redeliveries < +10%", True),  # unchanged zero: no change at all
        (0.0, 1.0, "async.baseline.redeliveries < +10%", False),  # from zero: an infinite rise
        (0.010, 0.014, "async.baseline.api.p99 < max(base * 1.5, base + 5ms)", True),
        (0.010, 0.016, "async.baseline.api.p99 < max(base * 1.5, base + 5ms)", False),
        (0.100, 0.140, "async.baseline.api.p99 < max(base * 1.5, base + 5ms)", True),
        (0.0, 2.0, "async.baseline.lost == 0", False),
        (1.0, 1.0, "async.baseline.hypothesis.passed >= base", True),
    ],
)
def test_semantics(tmp_path: Path, base: float, new: float, line: str, passed: bool) -> None:
    metric = line.split()[0].split(".", 2)[2]
    (row,) = rows(
        tmp_path,
        [result("async", "baseline", measured={metric: base})],
        [result("async", "baseline", measured={metric: new})],
        line,
    )
    assert row.checks[0].passed is passed
    assert row.failed is not passed


def test_wildcards_expand_over_every_cell(tmp_path: Path) -> None:
    cells = [result(p, s) for p in ("sync", "async") for s in ("baseline", "surge")]
    got = rows(tmp_path, cells, cells, "*.*.lost == 0", "async.*.api.p?9 < +50%", "*.surge.e2e.* < +50%")
    keys = {(r.pipeline, r.scenario, r.metric) for r in got}
    assert {(p, s, "lost") for p in ("sync", "async") for s in ("baseline", "surge")} <= keys
    assert ("async", "surge", "api.p99") in keys and ("sync", "surge", "api.p99") not in keys
    assert ("sync", "surge", "e2e.p999") in keys and ("sync", "baseline", "e2e.p99") not in keys
    assert not any(r.failed for r in got)


def test_missing_values(tmp_path: Path) -> None:
    base = [result("async", "baseline"), result("async", "surge")]
    new = [result("async", "baseline", measured={"e2e.p99": None})]
    got = {(r.scenario, r.metric): r for r in rows(tmp_path, base, new, "async.*.e2e.p99 < +10%")}
    assert got[("baseline", "e2e.p99")].checks[0].passed is False  # nothing delivered any more: a regression
    assert got[("baseline", "e2e.p99")].checks[0].note == "no value in the new run"
    assert got[("surge", "e2e.p99")].checks[0].passed is False  # the cell is gone from the new run
    only_new = rows(tmp_path, [result("async", "baseline")], [result("async", "surge")], "async.surge.lost < +10%")
    assert only_new[0].checks[0].passed is None and only_new[0].checks[0].note == "not in the base run"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("async.surge.api.p99 <", "expected `<pipeline>.<scenario>.<metric> <op> <limit>`"),
        ("async.api.p99 < 1", "no scenario in 'async.api.p99': write async.*.api.p99"),
        ("grpc.surge.api.p99 < 1", "'grpc' matches no pipeline"),
        ("async.surge.api.p98 < 1", "'api.p98' matches no metric"),
        ("async.surge.api.p99 ~ 1", "expected `<pipeline>.<scenario>.<metric> <op> <limit>`"),
        ("async.surge.api.p99 < 10% +", "limit '10% +'"),
        ("async.surge.api.p99 < new * 2", "unknown name 'new' (only `base` is known)"),
        ("async.surge.api.p99 < base < 2", "limit 'base < 2' must be a number, not a comparison"),
    ],
)
def test_bad_threshold_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"# comment\nthresholds:\n  - '*.*.lost == 0'\n\n  - {line!r}\n")
    with pytest.raises(compare.ThresholdError) as info:
        compare.load(path)
    assert str(info.value).startswith(f"{path}:5: ")
    assert message in str(info.value)


def test_bad_file_shape(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("thresholds:\n  - '*.*.lost == 0'\n  - {x: 1}\n")
    with pytest.raises(compare.ThresholdError, match=r"t\.yaml:3: each threshold must be a string"):
        compare.load(path)
    path.write_text("- '*.*.lost == 0'\n")
    with pytest.raises(compare.ThresholdError, match=r"t\.yaml:1: expected a mapping with a `thresholds:` list"):
        compare.load(path)


# For each line of the shipped thresholds, one cell where NEW crosses it (metric: base -> new).
CROSSING = {
    "*.*.lost == 0": ("async", "baseline", "lost", 0.0, 2.0),
    "*.*.unexpected == 0": ("sync", "surge", "unexpected", 0.0, 3.0),
    "*.*.hypothesis.passed >= base": ("sync", "baseline", "hypothesis.passed", 1.0, 0.0),
    "*.baseline.delivered_ratio > -1%": ("sync", "baseline", "delivered_ratio", 1.0, 0.98),
    "*.baseline.error_ratio < 1%": ("async", "baseline", "error_ratio", 0.0, 0.02),
    "*.baseline.api.p99 < max(base * 1.5, base + 10ms)": ("sync", "baseline", "api.p99", 0.010, 0.030),
    "*.baseline.e2e.p99 < max(base * 1.5, base + 10ms)": ("async", "baseline", "e2e.p99", 0.050, 0.090),
    "async.*.api.p99 < max(base * 1.5, base + 25ms)": ("async", "surge", "api.p99", 0.010, 0.050),
    "async.*.delivered_ratio > -2%": ("async", "surge", "delivered_ratio", 1.0, 0.95),
    "async.*.drain_seconds < max(base * 2, base + 15s)": ("async", "surge", "drain_seconds", 5.0, 25.0),
}


def test_every_shipped_threshold_has_an_input_that_crosses_it() -> None:
    assert sorted(CROSSING) == sorted(t.text for t in compare.load())


@pytest.mark.parametrize("line", sorted(CROSSING))
def test_each_shipped_threshold_fails_a_run_that_crosses_it(tmp_path: Path, line: str) -> None:
    pipeline, scenario, metric, base, new = CROSSING[line]
    b = result_model.load(write_run(tmp_path / "base", [result(pipeline, scenario, measured={metric: base})]))
    n = result_model.load(write_run(tmp_path / "new", [result(pipeline, scenario, measured={metric: new})]))
    crossed = [
        (r.metric, o.threshold.text) for r in compare.compare(b, n, compare.load()) if r.failed for o in r.checks
    ]
    assert (metric, line) in crossed, crossed


def test_a_cell_that_cannot_vouch_for_its_numbers_is_undecided_crossed_or_not(tmp_path: Path) -> None:
    from harness import cli

    slow = result("async", "baseline", measured={"api.p99": 0.5})  # crossed ...
    slow.disturbance.flagged = ["processes outside the stack took 40 % of the CPU"]  # ... on a busy machine
    base = write_run(tmp_path / "base", [result("async", "baseline", measured={"api.p99": 0.01})])
    new = write_run(tmp_path / "new", [slow])
    (row,) = rows(tmp_path / "r", [result("async", "baseline")], [slow], "async.baseline.api.p99 < 0.1")
    assert (row.failed, row.undecided) == (False, True)
    assert cli.main(["compare", str(base), str(new)]) == compare.EXIT_UNDECIDED
    calm = write_run(tmp_path / "calm", [result("async", "baseline", measured={"api.p99": 0.5})])
    assert cli.main(["compare", str(base), str(calm)]) == compare.EXIT_CROSSED  # the same figure, trusted
    drained_not = result("async", "baseline")  # a pipeline that did not drain is its own failure, no doubt
    assert drained_not.hypothesis is not None
    for c in drained_not.hypothesis.checks:
        if c.metric == "drained":
            c.passed = False
    assert drained_not.doubts() == []
