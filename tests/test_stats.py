from __future__ import annotations

from facts.quantiles import per_second, per_second_quantile, quantile, summary


def test_nearest_rank_quantiles() -> None:
    v = [float(i) for i in range(1, 101)]
    assert quantile(v, 0.5) == 50.0
    assert quantile(v, 0.99) == 99.0
    assert quantile(v, 0.999) == 100.0
    assert quantile([], 0.5) is None


def test_summary_of_nothing_is_empty_not_zero() -> None:
    s = summary([])
    assert s["p99"] is None and s["max"] is None and s["count"] == 0


def test_summary() -> None:
    s = summary([3.0, 1.0, 2.0])
    assert (s["p50"], s["max"], s["mean"], s["count"]) == (2.0, 3.0, 2.0, 3)


def test_per_second_buckets() -> None:
    assert per_second([100.1, 100.9, 101.5, 99.0, 150.0], 100.0, 3) == [2, 1, 1]
    assert per_second_quantile([(100.1, 1.0), (100.2, 3.0), (102.0, 5.0)], 100.0, 3, 0.5) == [1.0, None, 5.0]
