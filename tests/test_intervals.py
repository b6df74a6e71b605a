"""95 % intervals, and verdicts that are confirmed or refuted only when the interval is on one side."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness import claims, expr
from harness import result as result_model
from harness.intervals import Request, block_intervals, repetition_interval, request_metrics, t975
from tests.synthetic_run import article_cells, result, write_run


def decide(text: str, **env: tuple[float, float]) -> bool | None:
    value = expr.evaluate_interval(expr.parse_condition(text), env)
    assert value is None or isinstance(value, bool)
    return value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a < b", True),  # [1, 2] < [3, 4] everywhere
        ("b < a", False),  # nowhere
        ("a < c", None),  # [1, 2] vs [1.5, 5]: it depends where in the intervals the truth is
        ("a * 2 < b + 1", None),  # [2, 4] vs [4, 5]: true but at the corner 4 < 4
        ("a - b < 0", True),  # [1-4, 2-3] = [-3, -1]
        ("a < c and b < a", False),  # undecided and false is false
        ("a < c or a < b", True),  # undecided or true is true
        ("not a < c", None),
        ("p == p", True),  # one and the same point
        ("a == b", False),  # they do not meet
        ("a == c", None),
        ("a != b", True),
        ("max(a, b) > 3.5", None),  # [3, 4]
        ("abs(d) < 1", True),  # d = [-0.5, 0.5]
    ],
)
def test_interval_rules_decide_in_three_values(text: str, expected: bool | None) -> None:
    env = {"a": (1.0, 2.0), "b": (3.0, 4.0), "c": (1.5, 5.0), "p": (2.0, 2.0), "d": (-0.5, 0.5)}
    assert decide(text, **env) is expected


def test_a_divisor_whose_interval_holds_zero_cannot_divide() -> None:
    with pytest.raises(ZeroDivisionError):
        decide("a / d > 1", a=(1.0, 2.0), d=(-1.0, 1.0))


def test_block_intervals_cover_the_value_and_narrow_with_more_data() -> None:
    def requests(n_seconds: int) -> list[Request]:
        return [
            Request(i / 50, 0.001 * (1 + (i * 7919) % 97 / 97), i % 25 != 0, None, None) for i in range(50 * n_seconds)
        ]

    short = block_intervals(requests(20), request_metrics)
    long = block_intervals(requests(200), request_metrics)
    lo, hi = short["api.p50"]
    assert lo <= request_metrics(requests(20))["api.p50"] <= hi  # type: ignore[operator]
    assert long["error_ratio"][1] - long["error_ratio"][0] <= short["error_ratio"][1] - short["error_ratio"][0]
    assert block_intervals(requests(3), request_metrics, block=5.0) == {}  # one block: nothing to resample


def test_repetition_interval_is_students_t_of_the_mean() -> None:
    assert repetition_interval([1.0]) is None
    lo, hi = repetition_interval([11.0, 12.0, 13.0]) or (0, 0)
    assert (lo, hi) == pytest.approx((12 - 4.303 / 3**0.5, 12 + 4.303 / 3**0.5))  # s = 1, t(2) = 4.303
    assert repetition_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert repetition_interval([0.0, 0.02]) == pytest.approx((0.0, 0.01 + 12.706 * 0.01))  # never below zero
    assert repetition_interval([-1.0, 1.0]) == pytest.approx((-12.706, 12.706))
    assert repetition_interval([0.99, 0.97], most=1.0) == pytest.approx((0.98 - 0.1270, 1.0), abs=1e-4)  # a ratio


def test_the_repetition_interval_covers_the_mean_as_often_as_it_says() -> None:
    # 2,000 experiments of N normal draws: a 95 % interval must hold the true mean about 95 % of the
    # time. The bootstrap it replaces held it 46 % of the time at N = 2 and 75 % at N = 3.
    rnd = random.Random(7)
    for n in (2, 3, 5):
        held = 0
        for _ in range(2000):
            lo, hi = repetition_interval([rnd.gauss(10.0, 1.0) for _ in range(n)]) or (0, 0)
            held += lo <= 10.0 <= hi
        assert 0.93 <= held / 2000 <= 0.97, (n, held / 2000)


def test_students_t_quantiles() -> None:
    assert t975(1) == 12.706 and t975(4) == 2.776 and t975(30) == 2.042
    assert t975(31) == pytest.approx(2.0395, abs=0.0005) and t975(1000) == pytest.approx(1.9623, abs=0.0005)
    with pytest.raises(ValueError):
        t975(0)


def test_a_rule_that_the_repetitions_straddle_is_inconclusive(tmp_path: Path) -> None:
    # Three repetitions of sync's baseline: e2e p99 around 100 ms, the rule's threshold (async's is
    # far above it, so only that part of the rule is in doubt).
    slow_async = {("async", "baseline"): {"e2e": 0.3}}
    cells = [c for c in article_cells(slow_async) if (c.pipeline, c.scenario) != ("sync", "baseline")]
    for k, e2e in enumerate((0.07, 0.105, 0.14), start=1):
        rep = result("sync", "baseline", e2e=e2e, seed=k)
        rep.repetition = k
        cells.append(rep)
    run = result_model.load(write_run(tmp_path / "run", cells))
    assert len(run.repetitions("sync", "baseline")) == 3
    # sync's baseline was played 3 times, every other cell once: the method names both
    assert run.interval_method() == (
        "Student's t over 3 repetitions of each cell played several times; "
        "bootstrap over time blocks of 5 s within each cell played once"
    )
    j = next(j for j in claims.judge_all(run) if j.claim.id == "sync-realtime")
    assert j.verdict == "inconclusive", (j.reason, j.values, j.intervals)
    lo, hi = j.intervals["sync.baseline.e2e.p99"] or (0, 0)
    assert lo < 0.1 < hi


def test_one_cell_s_time_blocks_give_the_intervals_and_a_clear_case_stays_decided(tmp_path: Path) -> None:
    cells = article_cells({("sync", "push-slow"): {"intervals": True}, ("async", "push-slow"): {"intervals": True}})
    run = result_model.load(write_run(tmp_path / "run", cells))
    assert "time blocks" in run.interval_method()
    j = next(j for j in claims.judge_all(run) if j.claim.id == "sync-caller-blocked")
    assert j.intervals["sync.push-slow.fault.api.p99"] is not None
    assert j.verdict == "confirmed"


def test_delivered_ratio_gets_an_interval_and_the_counts_stay_facts() -> None:
    # acknowledged and delivered, acknowledged and never delivered (lost), a failure, no answer yet delivered
    reqs = [
        Request(0.0, 0.01, True, 0.02, 0.01, delivered=True),
        Request(1.0, 0.01, True, None, None, delivered=False),
        Request(2.0, 0.5, False, None, None),
        Request(3.0, None, False, 0.9, None, delivered=True),
    ]
    assert request_metrics(reqs)["delivered_ratio"] == 0.5
    spans = block_intervals(reqs * 10, request_metrics, block=1.0)
    assert "delivered_ratio" in spans and not {"lost", "failed", "unknown"} & set(spans)


def test_counts_over_repetitions_are_facts_not_intervals(tmp_path: Path) -> None:
    # One repetition lost 3 of what it acknowledged: "never lost" is refuted, not left undecided by an
    # interval of the mean that reaches down to 0.
    cells = []
    for k, lost in enumerate((0, 3), start=1):
        c = result("async", "baseline", lost=lost, seed=k)
        c.repetition = k
        cells.append(c)
    run = result_model.load(write_run(tmp_path / "run", cells))
    spans = run.intervals()
    assert "async.baseline.lost" not in spans and "async.baseline.api.p99" in spans
    assert run.env()["async.baseline.lost"] == 1.5


def push_slow_with_intervals(tmp_path: Path, holds: str) -> tuple[result_model.Run, claims.Claim]:
    """The article-shaped run, async's push-slow cell with its time-block intervals; one claim of `holds`."""
    rules = tmp_path / "c.yaml"
    rules.write_text(f"claims:\n  - {{id: x, side: async, kind: advantage, text: t, holds: '{holds}'}}\n")
    cells = article_cells({("async", "push-slow"): {"intervals": True}})
    return result_model.load(write_run(tmp_path / "run", cells)), claims.load(rules)[0]


def test_a_verdict_resting_on_a_value_without_an_interval_says_so(tmp_path: Path) -> None:
    run, claim = push_slow_with_intervals(
        tmp_path, "async.push-slow.fault.api.p99 < 1s and async.push-slow.peak_backlog >= 0"
    )
    (j,) = claims.judge_all(run, [claim])
    assert j.verdict == "confirmed"
    assert j.intervals["async.push-slow.fault.api.p99"] is not None  # this one decided within its interval
    assert j.reason.endswith("(no interval for async.push-slow.peak_backlog: decided on the value as measured)")


def test_a_divisor_whose_interval_holds_zero_is_inconclusive_unless_the_value_is_zero(tmp_path: Path) -> None:
    run, claim = push_slow_with_intervals(tmp_path, "async.push-slow.api.p99 / async.push-slow.prefault.api.p99 > 0")
    spans = run.intervals()
    divisor = "async.push-slow.prefault.api.p99"
    (j,) = claims.judge_all(run, [claim])
    assert j.verdict == "confirmed"  # its interval keeps clear of zero
    j = claims.judge(claim, run, run.env(), {**spans, divisor: (0.0, 1.0)})
    assert (j.verdict, j.reason.startswith("the intervals straddle")) == ("inconclusive", True)  # not "not shown"
