"""The open-loop arrival scheduler, driven by a fake clock: no sleeping, no wall-clock assertions."""

from __future__ import annotations

import itertools
import math
import statistics
from bisect import bisect_left

import pytest

from loadtests.arrivals import Arrival, ArrivalProcess, OpenLoop, Share, arrival_times, expected_arrivals
from loadtests.profile import parse_profile

CONSTANT, POISSON = ArrivalProcess.CONSTANT, ArrivalProcess.POISSON


def count_in(times: list[float], lo: float, hi: float) -> int:
    return bisect_left(times, hi) - bisect_left(times, lo)


class FakeClock:
    """Jumps to each deadline; `oversleep` models a scheduler that wakes late."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.t = 0.0
        self.oversleep = oversleep
        self.sleeps = 0

    def now(self) -> float:
        return self.t

    def sleep_until(self, deadline: float) -> None:
        self.sleeps += 1
        if deadline > self.t:
            self.t = deadline + self.oversleep


class Server:
    """Answers every request `service` seconds after it started, on the fake clock."""

    def __init__(self, clock: FakeClock, service: float) -> None:
        self.clock = clock
        self.service = service
        self.ends: list[float] = []
        self.started: list[Arrival] = []
        self.missed: list[Arrival] = []
        self.max_seen = 0

    def in_flight(self) -> int:
        n = sum(1 for e in self.ends if e > self.clock.now())
        self.max_seen = max(self.max_seen, n)
        return n

    def start(self, a: Arrival) -> None:
        self.started.append(a)
        self.ends.append(self.clock.now() + self.service)

    def miss(self, a: Arrival) -> None:
        self.missed.append(a)


def run(times: list[float], *, service: float = 0.01, cap: int = 1000, oversleep: float = 0.0):
    clock = FakeClock(oversleep)
    server = Server(clock, service)
    loop = OpenLoop(times, clock, cap)
    loop.run(in_flight=server.in_flight, start=server.start, miss=server.miss)
    return loop, server


# ---- arrival times --------------------------------------------------------------------------


def test_constant_rate_is_exact_and_evenly_spaced():
    times = list(arrival_times(lambda t: 100.0, 10.0, process=CONSTANT))
    assert len(times) == 1000
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == pytest.approx(0.01) and min(gaps) == pytest.approx(0.01)
    assert times[0] == pytest.approx(0.005) and times[-1] < 10.0


def test_poisson_rate_within_statistical_tolerance():
    rate, duration = 200.0, 60.0
    times = list(arrival_times(lambda t: rate, duration, process=POISSON, seed=7))
    expected = rate * duration
    # 4 standard deviations of a Poisson count: fails by chance ~1 in 15 000 seeds, never for this one.
    assert abs(len(times) - expected) < 4 * math.sqrt(expected)
    for lo in range(0, 60, 10):
        window = count_in(times, lo, lo + 10)
        assert abs(window - rate * 10) < 4 * math.sqrt(rate * 10)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Exponential gaps: mean 1/rate and coefficient of variation 1 (constant spacing would give 0).
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.05)
    assert statistics.stdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.05)


def test_poisson_is_reproducible_by_seed():
    a = list(arrival_times(lambda t: 50.0, 5.0, process=POISSON, seed=1))
    b = list(arrival_times(lambda t: 50.0, 5.0, process=POISSON, seed=1))
    c = list(arrival_times(lambda t: 50.0, 5.0, process=POISSON, seed=2))
    assert a == b
    assert a != c


@pytest.mark.parametrize("process", [CONSTANT, POISSON])
@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_worker_shares_partition_the_single_process_schedule(process, workers):
    whole = list(arrival_times(lambda t: 300.0, 5.0, process=process, seed=3))
    shares = [
        list(arrival_times(lambda t: 300.0, 5.0, process=process, seed=3, share=Share(i, workers)))
        for i in range(workers)
    ]
    assert sorted(t for s in shares for t in s) == whole  # the union is exactly the full rate
    for s in shares:
        assert abs(len(s) - len(whole) / workers) <= 1  # each takes 1/n of it
        assert s == sorted(s)


@pytest.mark.parametrize("process", [CONSTANT, POISSON])
def test_share_rates_sum_to_the_profile_rate(process):
    rate, duration, n = 240.0, 30.0, 3
    per_share = [
        len(list(arrival_times(lambda t: rate, duration, process=process, seed=5, share=Share(i, n)))) for i in range(n)
    ]
    achieved = sum(per_share) / duration
    assert achieved == pytest.approx(rate, rel=0.03)
    for count in per_share:
        assert count / duration == pytest.approx(rate / n, rel=0.03)


@pytest.mark.parametrize(("index", "count"), [(0, 0), (2, 2), (-1, 2)])
def test_invalid_share_is_rejected(index, count):
    with pytest.raises(ValueError, match="invalid share"):
        Share(index, count)


def test_rate_follows_a_surge_profile_exactly_at_its_edges():
    profile = parse_profile(
        {"kind": "surge", "rate": 20, "surge_multiplier": 10, "surge_start": 10, "surge_duration": 10, "duration": 30},
        "surge.yaml",
    )
    times = list(arrival_times(profile.rate_at, profile.duration, breakpoints=profile.breakpoints()))
    assert count_in(times, 0, 10) == 200
    assert count_in(times, 10, 20) == 2000
    assert count_in(times, 20, 30) == 200
    assert len(times) == round(expected_arrivals(profile.rate_at, profile.duration, profile.breakpoints()))


def test_rate_follows_a_step_profile():
    profile = parse_profile({"kind": "step", "rate": 10, "step_rate": 20, "step_interval": 5, "duration": 20}, "s.yaml")
    times = list(arrival_times(profile.rate_at, profile.duration, breakpoints=profile.breakpoints()))
    assert [count_in(times, lo, lo + 5) for lo in (0, 5, 10, 15)] == [50, 150, 250, 350]


def test_poisson_follows_a_surge_profile():
    profile = parse_profile(
        {"kind": "surge", "rate": 50, "surge_multiplier": 10, "surge_start": 20, "surge_duration": 20, "duration": 60},
        "surge.yaml",
    )
    times = list(
        arrival_times(profile.rate_at, profile.duration, process=POISSON, seed=11, breakpoints=profile.breakpoints())
    )
    for lo, hi, rate in ((0, 20, 50), (20, 40, 500), (40, 60, 50)):
        expected = rate * (hi - lo)
        assert abs(count_in(times, lo, hi) - expected) < 4 * math.sqrt(expected)


def test_ramp_and_wave_totals_match_the_integral_of_the_rate():
    ramp = parse_profile({"kind": "ramp", "rate": 0, "target_rate": 100, "ramp_time": 10, "duration": 15}, "r.yaml")
    assert expected_arrivals(ramp.rate_at, ramp.duration) == pytest.approx(0.5 * 100 * 10 + 100 * 5)
    assert len(list(arrival_times(ramp.rate_at, ramp.duration))) == 1000
    ramp_times = list(arrival_times(ramp.rate_at, ramp.duration))
    assert count_in(ramp_times, 0, 5) == pytest.approx(125, abs=1)  # a quarter of the ramp's area
    wave = parse_profile({"kind": "wave", "rate": 10, "peak_rate": 110, "period": 10, "duration": 20}, "w.yaml")
    # The mean of a raised cosine between 10 and 110 is 60.
    assert expected_arrivals(wave.rate_at, wave.duration) == pytest.approx(60 * 20, rel=1e-6)
    assert len(list(arrival_times(wave.rate_at, wave.duration))) == 1200


def test_zero_rate_gives_no_arrivals():
    assert list(arrival_times(lambda t: 0.0, 10.0)) == []


# ---- the open loop --------------------------------------------------------------------------


def test_every_arrival_starts_on_schedule_when_below_the_cap():
    times = list(arrival_times(lambda t: 100.0, 5.0))
    loop, server = run(times, service=0.05, cap=100)
    assert loop.finished
    assert (loop.intended, loop.started, loop.missed) == (500, 500, 0)
    assert [a.intended for a in server.started] == times
    assert all(a.decided == a.intended for a in server.started)  # lag 0 on a perfect clock


def test_requests_start_regardless_of_responses():
    # Each answer takes 2 s, ten times the gap between arrivals: a closed loop would send 1 per 2 s.
    times = list(arrival_times(lambda t: 5.0, 4.0))
    loop, server = run(times, service=2.0, cap=100)
    assert loop.started == 20
    assert server.max_seen == 9  # ten started within one service time, the tenth not yet counted


def test_arrivals_over_the_in_flight_cap_are_counted_as_missed():
    times = list(arrival_times(lambda t: 100.0, 5.0))
    loop, server = run(times, service=1.0, cap=10)
    assert loop.missed > 0
    assert loop.started + loop.missed == loop.intended == 500
    assert len(server.missed) == loop.missed  # each one reported, with its intended time
    assert server.max_seen <= 10
    # With 1 s answers and a cap of 10, about 10 start per second (plus the first burst).
    assert loop.started == pytest.approx(50, abs=10)
    # Started ones were not delayed until a slot freed: they start at their intended time.
    assert all(a.decided == a.intended for a in server.started)
    assert {a.seq for a in server.started}.isdisjoint(a.seq for a in server.missed)


def test_lag_between_intended_and_actual_start_is_recorded():
    times = list(arrival_times(lambda t: 50.0, 2.0))
    _, server = run(times, oversleep=0.004)
    lags = [a.decided - a.intended for a in server.started]
    assert lags == pytest.approx([0.004] * 100)


def test_a_stalled_loop_catches_up_without_skipping():
    class StallingClock(FakeClock):
        def sleep_until(self, deadline: float) -> None:
            super().sleep_until(deadline)
            if 1.0 <= self.t < 1.01:
                self.t += 0.5  # the process froze for half a second

    times = list(arrival_times(lambda t: 100.0, 3.0))
    clock = StallingClock()
    server = Server(clock, 0.001)
    loop = OpenLoop(times, clock, 1000)
    loop.run(in_flight=server.in_flight, start=server.start, miss=server.miss)
    assert loop.started == 300 and loop.missed == 0
    lags = [a.decided - a.intended for a in server.started]
    assert max(lags) == pytest.approx(0.5, abs=0.011)
    late = [lag for lag in lags if lag > 0.001]
    assert len(late) == pytest.approx(50, abs=2)  # the half second's arrivals, started back to back
    assert clock.sleeps == 300  # it still yielded once per arrival


def test_stop_ends_the_loop_early():
    times = list(arrival_times(lambda t: 100.0, 10.0))
    clock = FakeClock()
    server = Server(clock, 0.01)
    loop = OpenLoop(times, clock, 100)
    loop.run(in_flight=server.in_flight, start=server.start, miss=server.miss, stopped=lambda: clock.t >= 2.0)
    assert not loop.finished
    assert loop.started == 200


def test_open_loop_follows_a_surge_profile():
    profile = parse_profile(
        {"kind": "surge", "rate": 30, "surge_multiplier": 10, "surge_start": 5, "surge_duration": 5, "duration": 15},
        "surge.yaml",
    )
    times = list(
        arrival_times(profile.rate_at, profile.duration, process=POISSON, seed=4, breakpoints=profile.breakpoints())
    )
    _, server = run(times, service=0.02, cap=1000)
    per_second = [sum(1 for a in server.started if s <= a.decided < s + 1) for s in range(15)]
    before, during, after = sum(per_second[:5]) / 5, sum(per_second[5:10]) / 5, sum(per_second[10:]) / 5
    assert before == pytest.approx(30, rel=0.25)
    assert during == pytest.approx(300, rel=0.1)
    assert after == pytest.approx(30, rel=0.25)


def test_cap_must_be_positive():
    with pytest.raises(ValueError):
        OpenLoop([], FakeClock(), 0)
