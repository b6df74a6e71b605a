"""Memory per process: the verdict on synthetic series (flat, leaking, too few samples), the readings
from /proc, the result's field (older results still load) and the report's tables and charts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path

import pytest

from chaos import scenario as scenarios
from harness import assemble, report
from harness import result as result_model
from harness.memory import (
    MIB,
    MemoryLimits,
    MemoryProfile,
    MemoryWatch,
    Reading,
    judge,
    load_limits,
    profile,
    read_once,
)
from harness.plan import QUICK_SECONDS, make_plan
from tests.synthetic_run import CAPACITIES, memory_profile, result, rss_series, write_run

LIMITS = MemoryLimits(
    interval_seconds=2,
    warmup_share=0.2,
    warmup_max_seconds=300,
    min_samples=10,
    edge_share=0.1,
    growth_share=0.05,
    growth_floor_mib=20,
    grows_by_design={"pushsink": "keeps the cell's deliveries"},
)
SOAK = 1800.0  # judged from 300 s on: 1500 s


def test_a_flat_process_is_flat_and_a_leaking_one_is_not() -> None:
    flat = judge("reaction", rss_series(80, 0, SOAK), SOAK, LIMITS)
    assert flat.verdict == "flat" and flat.note == ""
    assert flat.samples == 751  # every 2 s from 300 s to 1800 s
    assert flat.start_bytes == pytest.approx(80 * MIB, abs=1 * MIB)
    assert flat.growth_bytes_per_hour == pytest.approx(0, abs=2 * MIB)
    leak = judge("reaction", rss_series(80, 60, SOAK), SOAK, LIMITS)  # 25 MiB over the judged 1500 s
    assert leak.verdict == "growing"
    assert leak.growth_bytes_per_hour == pytest.approx(60 * MIB, rel=0.05)
    assert leak.growth_bytes == pytest.approx(25 * MIB, rel=0.05)
    assert leak.limit_bytes == 20 * MIB  # 5 % of 85 MiB is less than the floor
    assert leak.end_bytes is not None and leak.start_bytes is not None
    assert leak.end_bytes - leak.start_bytes == pytest.approx(0.9 * 25 * MIB, rel=0.1)  # medians of the edge tenths
    slow = judge("reaction", rss_series(80, 40, SOAK), SOAK, LIMITS)  # 16.7 MiB: under the floor
    assert slow.verdict == "flat"


def test_the_limit_is_relative_for_a_large_process() -> None:
    # 100 MiB/h for 1500 s is ~42 MiB: under 5 % of a 1 GiB broker, past the floor of a 100 MiB service
    assert judge("kafka", rss_series(1024, 100, SOAK), SOAK, LIMITS).verdict == "flat"
    assert judge("notification", rss_series(100, 100, SOAK), SOAK, LIMITS).verdict == "growing"


def test_too_few_samples_give_no_verdict() -> None:
    steep = rss_series(80, 10_000, 60, interval=10)  # a minute at one reading per 10 s: 5 after the warm-up
    out = judge("reaction", steep, 60, LIMITS)
    assert out.verdict == "not enough samples" and out.note == "5 judged, 10 needed"
    assert out.start_bytes is not None and out.growth_bytes_per_hour is not None  # figures, but no verdict
    none = judge("reaction", [(0.0, 80 * MIB), (5.0, 81 * MIB)], 60, LIMITS)
    assert none.verdict == "not enough samples" and none.samples == 0 and none.start_bytes is None
    assert "no sample after the 12 s warm-up" in none.note


def test_by_design_growth_is_named_and_not_counted() -> None:
    sink = judge("pushsink", rss_series(60, 200, SOAK), SOAK, LIMITS)
    assert sink.verdict == "grows by design" and sink.note == "keeps the cell's deliveries"
    flat_sink = judge("pushsink", rss_series(60, 0, SOAK), SOAK, LIMITS)
    assert flat_sink.verdict == "flat"  # by design only where it does grow
    prof = MemoryProfile(measured=True, processes=[sink, judge("reaction", rss_series(80, 0, SOAK), SOAK, LIMITS)])
    assert prof.growing() == 0
    prof.processes.append(judge("notification", rss_series(80, 120, SOAK), SOAK, LIMITS))
    assert prof.growing() == 1


def test_profile_puts_readings_on_the_load_s_axis_and_sees_restarts() -> None:
    epoch = 1_000_000.0
    same = [Reading(epoch + t, 50 * MIB, (10, 1)) for t in range(-4, 62, 2)]
    restarted = [Reading(epoch + t, 50 * MIB, (10, 1) if t < 30 else (11, 900)) for t in range(0, 62, 2)]
    prof = profile({"reaction": same, "kafka": restarted}, epoch, 60, LIMITS)
    reaction, kafka = prof.processes
    assert reaction.series[0] == (0.0, 50 * MIB)  # the readings before the load are not its
    assert reaction.verdict == "flat" and reaction.samples == 25  # 12 s .. 60 s
    assert kafka.restarts == 1 and kafka.verdict == "restarted"
    assert prof.measured and prof.warmup_seconds == 12 and prof.rule == LIMITS.rule()
    assert prof.growing() == 0
    only_restarted = profile({"kafka": restarted}, epoch, 60, LIMITS)
    assert only_restarted.growing() is None  # nothing judged: no count to check
    assert MemoryProfile(measured=False).growing() is None


def test_the_limits_file() -> None:
    limits = load_limits()
    assert {"pushsink", "jaeger"} <= set(limits.grows_by_design)
    assert limits.limit_bytes(2048 * MIB) == pytest.approx(limits.growth_share * 2048 * MIB)
    assert limits.limit_bytes(10 * MIB) == limits.growth_floor_mib * MIB
    assert limits.warmup(60) < 60 and limits.warmup(SOAK) <= limits.warmup_max_seconds
    # the default matrix's cells, and the quick matrix's, still get a verdict
    for seconds in (60, QUICK_SECONDS):
        assert (seconds - limits.warmup(seconds)) / limits.interval_seconds >= limits.min_samples


# A child that holds 64 MiB it has written to (resident), under a shell that holds next to nothing.
HOLDER = "import sys, time; x = b'x' * (64 * 2**20); print('ready', flush=True); time.sleep(60)"


def test_a_tree_s_rss_counts_its_children() -> None:
    parent = subprocess.Popen(
        ["sh", "-c", '"$PY" -c "$HOLDER" & wait'],
        env={**os.environ, "PY": sys.executable, "HOLDER": HOLDER},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: stopped below with its child, by the group's id
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        got = read_once({"tree": parent.pid, "alone": parent.pid, "gone": 2**22 + 1}, alone={"alone"})
        assert set(got) == {"tree", "alone"}  # a process that is not running is left out
        assert got["tree"].rss_bytes >= 64 * MIB > got["alone"].rss_bytes > 0
        assert got["tree"].identity == got["alone"].identity and got["tree"].identity[0] == parent.pid
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def _until(done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the watch read nothing new in 30 s"
        time.sleep(0.02)


def test_the_watch_reads_until_stopped_and_follows_a_new_pid() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        pids = {"me": os.getpid()}
        watch = MemoryWatch(lambda: dict(pids), interval=0.05).start()
        _until(lambda: len(watch.readings.get("me", [])) >= 2)  # polled: the watch's thread may start late
        pids["me"] = child.pid  # what a restarted component looks like
        _until(lambda: any(r.identity[0] == child.pid for r in watch.readings.get("me", [])))
        readings = watch.stop()
    finally:
        child.kill()
        child.wait()
    me = readings["me"]
    assert len(me) >= 3 and all(r.rss_bytes > 0 for r in me)
    assert {r.identity[0] for r in me} == {os.getpid(), child.pid}
    count = len(me)
    time.sleep(0.15)
    assert len(readings["me"]) == count  # stopped


def test_the_result_keeps_memory_and_an_older_result_still_loads(tmp_path: Path) -> None:
    cell = result("sync", "baseline", seconds=60, rate=5)
    cell.memory = memory_profile(60, {"reaction": (80, 0), "notification": (80, 3000)})
    assert cell.metrics()["memory.growing"] == 1
    root = write_run(tmp_path / "run", [cell])
    back = result_model.load(root).cells[0]
    assert back.memory == cell.memory
    path = root / cell.folder / "result.json"
    data = json.loads(path.read_text())
    del data["memory"]  # as written before memory was measured
    path.write_text(json.dumps(data))
    old = result_model.load(root).cells[0]
    assert not old.memory.measured and old.metrics()["memory.growing"] is None


def test_the_soak_is_kept_apart_and_judges_memory() -> None:
    assert "soak" in scenarios.shipped_soak() and "soak" not in scenarios.shipped()
    (planned,) = make_plan(["async"], ["soak"], capacities=CAPACITIES).cells
    assert planned.load_seconds >= 1800
    assert planned.profile.rate_at(100) == pytest.approx(0.5 * CAPACITIES.rates["sync"])
    cell = result("async", "soak", seconds=60, rate=5)  # figures of a soak, but short: cheap to make
    cell.memory = memory_profile(SOAK, {"reaction": (80, 0), "pushsink": (60, 200)})
    held = assemble.judge(planned, cell)
    assert held.passed and any(c.check == "memory.growing == 0" and c.passed for c in held.checks)
    cell.memory = memory_profile(SOAK, {"reaction": (80, 120), "pushsink": (60, 200)})
    failed = assemble.judge(planned, cell)
    assert not failed.passed
    assert [c.check for c in failed.checks if not c.passed] == ["memory.growing == 0"]
    cell.memory = MemoryProfile(measured=False)  # a compose stack: the soak's question has no answer
    assert not assemble.judge(planned, cell).passed


def _soak_run(root: Path) -> tuple[str, str]:
    soak = result("sync", "soak", seconds=int(SOAK), rate=1)
    soak.memory = memory_profile(
        SOAK, {"reaction": (80, 0), "notification": (90, 120), "pushsink": (60, 200), "kafka": (600, 10)}
    )
    short = result("sync", "baseline", seconds=60, rate=5)
    short.memory = memory_profile(60, {"reaction": (80, 0), "notification": (90, 0)})
    old = result("async", "baseline", seconds=60, rate=5)  # not measured
    html_path, md_path = report.write(write_run(root, [short, old, soak]))
    return html_path.read_text(), md_path.read_text()


def test_the_report_shows_a_memory_table_per_cell(tmp_path: Path) -> None:
    html, md = _soak_run(tmp_path / "run")
    section = md.split("## Memory per process")[1].split("\n## ")[0]
    soak = section.split("### sync \N{MULTIPLICATION SIGN} soak")[1]
    assert "| process | start | end | growth/h | flat? |" in soak
    growing = r"\| notification \| 10\d\.\d MiB \| \d+\.\d MiB \| \+1[12]\d\.\d MiB/h \| \*\*GROWING\*\* \|"
    assert re.search(growing, soak)
    assert re.search(r"\| reaction \| [78]\d\.\d MiB \| [78]\d\.\d MiB \| [+-]\d\.\d MiB/h \| flat \|", soak)
    assert "| grows by design (the ground truth: it keeps every delivery" in soak
    assert "judged after a 300 s warm-up" in soak
    assert "### async \N{MULTIPLICATION SIGN} baseline" in section and "_not measured" in section
    scenario = html.split('id="s-soak"')[1].split("</section>")[0]
    assert '<span class="bad">GROWING</span>' in scenario
    assert '<td class="">notification</td>' in scenario


def test_a_long_cell_gets_a_chart_per_process_and_a_short_one_none(tmp_path: Path) -> None:
    html, _ = _soak_run(tmp_path / "run")
    soak = html.split('id="s-soak"')[1].split("</section>")[0]
    charts = re.findall(r'<svg class="chart" viewBox="[^"]*" role="img" aria-label="sync · (\w+)"', soak)
    assert charts[-4:] == ["reaction", "notification", "pushsink", "kafka"]  # after throughput, api, e2e, backlog
    notification = re.search(r'aria-label="sync · notification".*?</svg>', soak, re.S)
    assert notification and '<path class="line"' in notification.group(0)
    assert "warm-up ends" in notification.group(0)
    attribute = re.search(r"data-chart='([^']+)'", notification.group(0))
    assert attribute
    data = json.loads(unescape(attribute.group(1)))
    values = [v for v in data["lines"][0]["values"] if v is not None]
    assert data["unit"] == "MiB" and data["lines"][0]["step"] == 7.5 and len(values) == 240
    assert values[-1] - values[0] == pytest.approx(120 * SOAK / 3600, abs=3)  # it climbs, in MiB
    baseline = html.split('id="s-baseline"')[1].split("</section>")[0]
    assert "<h3>Memory per process</h3>" in baseline and "RSS over the load" not in baseline
