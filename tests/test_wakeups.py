"""Counting a process tree's wakeups, the probe that prices one, and the split of the generator's CPU."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from facts.topology import HEALTHZ_PATH
from harness.capacity import ceilings_http, cpu, generator_cost, wakeup_probe
from harness.capacity.ceilings import Ceiling
from harness.capacity.generator_cost import Figure

# Each sleeper says "ready", waits for a line, sleeps its count of 2 ms, says "slept", waits for a line.
# The parent starts the child and passes the test's lines on: the test reads the count between two
# points it knows, whatever the machine's load.
CHILD = (
    "import time\nprint('ready', flush=True)\ninput()\n"
    "for _ in range(200): time.sleep(0.002)\nprint('slept', flush=True)\ninput()\n"
)
PARENT = (
    "import subprocess, sys, time\n"
    f"c = subprocess.Popen([sys.executable, '-c', {CHILD!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE,\n"
    "                      text=True)\n"
    "print(c.stdout.readline(), end='', flush=True)\ninput()\nc.stdin.write('\\n'); c.stdin.flush()\n"
    "for _ in range(100): time.sleep(0.002)\n"
    "print(c.stdout.readline(), end='', flush=True)\ninput()\nc.communicate('\\n')\n"
)


def test_tree_wakeups_counts_the_sleeps_of_a_process_and_its_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert parent.stdin is not None and parent.stdout is not None
    try:
        assert parent.stdout.readline() == "ready\n"  # both started, neither has slept
        before = cpu.tree_wakeups(parent.pid)
        assert before is not None
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "slept\n"  # both have slept their count
        after = cpu.tree_wakeups(parent.pid)
        assert after is not None and after - before >= 300  # 100 + 200 sleeps, and the reads between
    finally:
        parent.communicate("\n", timeout=10)
    assert cpu.tree_wakeups(parent.pid) is None  # gone


def test_the_probe_prices_a_wakeup_and_a_failed_probe_gives_none() -> None:
    cost = wakeup_probe.result(wakeup_probe.start(0.5, hz=200))
    assert cost is not None and 0 < cost.wakeups <= 200  # epoll's millisecond timeouts: never more than asked
    begin = time.time() + 1.0
    late = wakeup_probe.start(0.2, hz=200, at=begin)
    assert wakeup_probe.result(late) is not None and time.time() >= begin + 0.2  # measured from `at`, not before
    assert cost.seconds_per_wakeup is not None and 0 < cost.seconds_per_wakeup < 0.01
    broken = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], stdout=subprocess.PIPE, text=True)
    assert wakeup_probe.result(broken) is None
    assert wakeup_probe.WakeupCost(0, 0.1).seconds_per_wakeup is None
    running = wakeup_probe.start(60)
    wakeup_probe.stop(running)  # an interrupted measurement leaves no probe behind
    assert running.returncode is not None


def figure(cpu_ms: float | None = 0.2, requests: int = 1000) -> Figure:
    return Figure("locust", 1, 500.0, 500.0, requests, 0.2, cpu_ms)


WRK = Figure("wrk", 1, None, 1000.0, 10000, 0.1, 0.01, wakeups_per_request=0.25)


def test_with_wrks_wakeups_the_generator_is_charged_only_its_own_extra_ones() -> None:
    f = figure()
    f.count_wakeups(1500, wakeup_probe.WakeupCost(wakeups=1000, cpu_seconds=0.05))  # 50 us a wakeup
    assert (f.wakeups_per_request, f.ms_per_wakeup) == (1.5, 0.05)
    f.compare_to(WRK)
    # 0.2 ms less (1.5 - 0.25) x 0.05 ms = 0.1375 ms: 13.75x wrk's 0.01, against 20x as measured
    assert (f.ratio_to_wrk, f.at_wrk_wakeups_ms, f.at_wrk_wakeups_ratio) == (20.0, 0.1375, 13.75)
    # wakeups that would explain more than the whole CPU leave nothing, never a negative figure
    f = figure()
    f.count_wakeups(5000, wakeup_probe.WakeupCost(wakeups=1000, cpu_seconds=0.05))
    f.compare_to(WRK)
    assert f.at_wrk_wakeups_ms == 0.0
    # fewer wakeups than wrk's are not a credit
    f = figure()
    f.count_wakeups(100, wakeup_probe.WakeupCost(wakeups=1000, cpu_seconds=0.05))
    f.compare_to(WRK)
    assert f.at_wrk_wakeups_ms == 0.2


def test_without_a_probe_a_count_or_wrks_count_there_is_only_the_measured_ratio() -> None:
    f = figure()
    f.count_wakeups(1500, None)
    f.compare_to(WRK)
    assert f.wakeups_per_request == 1.5 and f.ratio_to_wrk == 20.0 and f.at_wrk_wakeups_ms is None
    f = figure()
    f.count_wakeups(None, wakeup_probe.WakeupCost(1000, 0.05))
    f.compare_to(WRK)
    assert f.wakeups_per_request is None and f.at_wrk_wakeups_ms is None
    f = figure()
    f.count_wakeups(1500, wakeup_probe.WakeupCost(1000, 0.05))
    f.compare_to(Figure("wrk", 1, None, 1000.0, 10000, 0.1, 0.01))  # wrk's sleeps not known
    assert f.at_wrk_wakeups_ms is None and f.ratio_to_wrk == 20.0


def test_wrk_paced_to_the_rate_is_a_control_only_if_it_achieved_about_that_rate() -> None:
    f = figure()  # 0.2 ms a request at 500/s
    f.compare_to(WRK, Figure("wrk paced", 1, 500.0, 455.0, 5000, 0.5, 0.1))  # 9 % short: within 10 %
    assert f.ratio_to_paced_wrk == 2.0 and f.ratio_to_wrk == 20.0
    f = figure()
    f.compare_to(WRK, Figure("wrk paced", 1, 500.0, 549.0, 5000, 0.5, 0.1))  # 9.8 % over
    assert f.ratio_to_paced_wrk == 2.0
    for off in (445.0, 555.0, 300.0):  # 11 % short, 11 % over, held back by a slow server
        f = figure()
        f.compare_to(WRK, Figure("wrk paced", 1, 500.0, off, 3000, 0.5, 0.1))
        assert f.ratio_to_paced_wrk is None and f.ratio_to_wrk == 20.0
    f = figure()
    f.compare_to(WRK)  # no control measured (the max run)
    assert f.ratio_to_paced_wrk is None


def test_wrk_paced_to_the_generator_is_paced_to_the_rate_it_achieved_with_its_answer_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str, bool, ceilings_http.Pace]] = []

    def fake(wrk_bin: Path, name: str, path: str, seconds: float, *, post: bool, pace: ceilings_http.Pace) -> Ceiling:
        calls.append((name, path, post, pace))
        return Ceiling(name=name, tool="wrk", what="w", per_second=480.0, count=4800, cpu_seconds_per_1000=0.05,
                       wakeups_per_request=1.2345)  # fmt: skip

    monkeypatch.setattr(ceilings_http, "wrk_paced", fake)
    generator = figure()  # offered 500/s
    generator.achieved_per_second = 490.0
    generator.latency_mean_ms = 2.5
    row = generator_cost.measure_paced(generator, 10.0, "reactions")
    assert calls == [("http.wrk.reactions.paced", ceilings_http.POST_PATH, True, ceilings_http.Pace(490.0, 0.0025))]
    assert row is not None and (row.tool, row.offered_per_second, row.achieved_per_second) == (
        "wrk paced",
        490.0,
        480.0,
    )
    assert (row.cpu_ms_per_request, row.cpu_seconds, row.wakeups_per_request) == (0.05, 0.24, 1.234)
    generator_cost.paced_control(generator, 10.0, "healthz", Path("/bin/wrk"))
    assert calls[-1][1:3] == (HEALTHZ_PATH, False)
    # no answer in the generator's window: nothing to pace with, and wrk is not run
    generator.latency_mean_ms = None
    assert generator_cost.measure_paced(generator, 10.0, "reactions") is None and len(calls) == 2


def test_a_failed_paced_wrk_is_no_row_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = Ceiling(name="p", tool="wrk", what="w", per_second=None, error="wrk exited 1: boom")
    monkeypatch.setattr(ceilings_http, "wrk_paced", lambda *a, **k: failed)
    generator = figure()
    generator.latency_mean_ms = 2.5
    assert generator_cost.measure_paced(generator, 10.0, "reactions") is None
    assert "wrk paced to 500/s failed: wrk exited 1: boom" in capsys.readouterr().out


def test_a_paced_wrk_played_twice_says_so_under_its_row_and_the_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    replayed = Ceiling(name="p", tool="wrk", what="w", per_second=500.0, count=5000, cpu_seconds_per_1000=0.05,
                       detail="played twice: paced with answers of 9.0 ms\nit achieved 560/s")  # fmt: skip
    monkeypatch.setattr(ceilings_http, "wrk_paced", lambda *a, **k: replayed)
    generator = figure()
    generator.latency_mean_ms = 9.0
    row = generator_cost.measure_paced(generator, 10.0, "reactions")
    one_line = "played twice: paced with answers of 9.0 ms it achieved 560/s"
    assert row is not None and row.note == one_line  # whatever wrk printed, one line under the table
    assert f"({one_line})" in capsys.readouterr().out
    assert f"wrk paced at 500/s: {one_line}" in generator_cost.table([generator, row]).splitlines()
    assert generator_cost.table([generator]).splitlines()[-1].startswith("@wrk wake")  # no note, no line
