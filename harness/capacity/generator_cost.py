"""What the load generator costs next to `wrk`, on the same endpoint, in the same run.

    .venv/bin/bench up --pipeline async
    .venv/bin/python -m harness.capacity.generator_cost --rates 500 1000 1500 --max --processes 1 2
    .venv/bin/bench down

Against a running stack (the reaction service's POST), it measures:
- `wrk -t1 -c64` (closed loop, keep-alive) with a Lua script for the POST: requests per second and
  CPU per request of wrk itself (its rusage at exit);
- wrk paced to the rate the generator achieved at each fixed rate (`ceilings_http.wrk_paced`: each
  connection waits a random delay before each request), calibrated with the generator's mean answer
  time there: the same tool at the same rate. wrk costs least per request at its max, when the
  server is saturated and its connections wait on it together; at a fixed rate below that,
  requests come one by one and each costs a wakeup and the server's wake-up, whichever tool sends
  it. Paced wrk has no wake interval (each delay is a timer of its own): it wakes more often a
  request than the generator, which the wakeups column shows;
- the project's Locust generator (`harness.loadgen.LoadRun`, the very command `bench run` starts) at
  each fixed rate and, with `--max`, at "max": an open-loop rate above wrk's closed-loop one with
  the in-flight cap at wrk's 64 connections, so the service answers as fast as it can and the
  arrivals over the cap are missed (counted, cheap). For each, with every `--processes` count:
  CPU per request of the Locust process tree (master and workers, from /proc) over the steady
  window (after `--warmup`, so the Python start-up is not charged to the requests), the achieved
  rate, and the schedule lag (intended -> actual start) p50/p99/max of every request of the run.

With every generator run, `harness.capacity.wakeup_probe` measures beside it, over the same window, what one
wakeup costs, and the table counts each tool's sleeps per request. "@wrk wake" is the generator's
CPU per request less the wakeups it needs beyond those of wrk at its max, at the probe's price: what
it would cost if it slept as seldom as that wrk, an estimate of their work per request compared.

The generator wakes at most every `wake_interval_seconds` of harness/limits/generator.yaml, as in
the cells; `--wake-intervals 0 0.002 ...` measures each of those instead (0: it wakes for every
arrival and every answer), to see what batching its wakeups saves and what it costs in lag.

It prints one table (and writes it as JSON with `--json`): the figures the README and PERFORMANCE.md quote.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from facts import quantiles
from facts.topology import HEALTHZ_PATH
from harness import generator_health, loadgen, supervisor
from harness.capacity import ceilings_http, cpu, wakeup_probe
from harness.capacity.ceilings import Ceiling
from harness.capacity.ceilings_http import POST_PATH
from harness.capacity.config import REQUEST_TIMEOUT_SECONDS
from harness.generator_health import GeneratorLimits
from harness.loadgen import LoadRun
from loadtests.reaction import ENDPOINTS, REACTIONS

WRK_CONNECTIONS = ceilings_http.WRK_CONNECTIONS
IN_FLIGHT_CAP = 1000  # the generator's in-flight cap at a fixed rate: high enough never to miss an arrival
PACED_RATE_TOLERANCE = 0.1  # wrk paced is a control only within this of the generator's achieved rate
MAX_OVER_WRK = 1.3  # "max": offer this much more than wrk's closed-loop rate
PROBE_LEAD_SECONDS = 1.5  # the wakeup probe's Python start-up, before the measured window


def max_offer(wrk_per_second: float) -> float:
    """The open-loop rate of a run at the generator's max (its in-flight cap: WRK_CONNECTIONS): more
    than wrk at its max achieved, so the cap, not the schedule, bounds what it sends."""
    return float(round(wrk_per_second * MAX_OVER_WRK, -1))


@dataclass
class Figure:
    tool: str
    processes: int
    offered_per_second: float | None  # None: closed loop
    achieved_per_second: float
    requests: int  # in the measured window
    cpu_seconds: float
    cpu_ms_per_request: float | None
    ratio_to_wrk: float | None = None  # to wrk at its max (closed loop)
    ratio_to_paced_wrk: float | None = None  # to wrk paced to the rate this achieved
    latency_mean_ms: float | None = None  # send -> answer, the generator's requests (paces wrk's control)
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    missed: int = 0
    machine_cores: float | None = None  # the whole machine's busy cores over the window
    wake_interval_ms: float | None = None  # the generator's --wake-interval (None: wrk)
    wakeups_per_request: float | None = None  # the tool's sleeps (voluntary switches) per request
    ms_per_wakeup: float | None = None  # CPU of one wakeup, from the probe beside it (harness/capacity/wakeup_probe.py)
    # CPU per request less the wakeups it needs beyond wrk's (an open loop wakes for each arrival and
    # each answer; wrk's connections wait on the server together), and its ratio to wrk's CPU per request
    at_wrk_wakeups_ms: float | None = None
    at_wrk_wakeups_ratio: float | None = None
    note: str = ""  # how the run went when it matters to its figure (a paced wrk played twice)

    def count_wakeups(self, wakeups: int | None, probe: wakeup_probe.WakeupCost | None) -> None:
        if wakeups is not None and self.requests:
            self.wakeups_per_request = round(wakeups / self.requests, 3)
        per = probe.seconds_per_wakeup if probe is not None else None
        if per is not None:
            self.ms_per_wakeup = round(per * 1000, 4)

    def compare_to(self, wrk: Figure, paced: Figure | None = None) -> None:
        """Ratios to wrk's CPU per request: at its max, as measured and with only as many wakeups a
        request as wrk's; and to `paced`, wrk offering the same rate, if it achieved about the rate
        this did (a saturated server holds a closed loop back: then it is no control)."""
        if paced is not None:
            self.ratio_to_paced_wrk = paced_ratio(
                self.cpu_ms_per_request, self.achieved_per_second, paced.cpu_ms_per_request, paced.achieved_per_second
            )
        base = wrk.cpu_ms_per_request
        if self.cpu_ms_per_request is None or not base:
            return
        self.ratio_to_wrk = round(self.cpu_ms_per_request / base, 2)
        like = at_wrk_wakeups(
            self.cpu_ms_per_request, self.wakeups_per_request, wrk.wakeups_per_request, self.ms_per_wakeup
        )
        if like is None:
            return
        self.at_wrk_wakeups_ms = round(like, 4)
        self.at_wrk_wakeups_ratio = round(self.at_wrk_wakeups_ms / base, 2)


def same_rate(rate: float | None, paced_rate: float | None) -> bool:
    """Whether wrk paced achieved about the generator's `rate`: a control only then."""
    if not rate or paced_rate is None:
        return False
    return abs(paced_rate / rate - 1) <= PACED_RATE_TOLERANCE


def paced_ratio(cpu: float | None, rate: float, paced_cpu: float | None, paced_rate: float | None) -> float | None:
    """The generator's CPU per request over wrk's paced to the same rate; None when a figure is missing
    or wrk did not achieve about the same rate."""
    if cpu is None or not paced_cpu or not same_rate(rate, paced_rate):
        return None
    return round(cpu / paced_cpu, 2)


def at_wrk_wakeups(
    cpu_ms: float | None, wakeups: float | None, wrk_wakeups: float | None, ms_per_wakeup: float | None
) -> float | None:
    """CPU ms per request less the wakeups per request beyond wrk's, at `ms_per_wakeup` each (never
    below 0, and fewer wakeups than wrk's are no credit); None when a figure is missing."""
    if cpu_ms is None or wakeups is None or wrk_wakeups is None or ms_per_wakeup is None:
        return None
    return max(0.0, cpu_ms - max(0.0, wakeups - wrk_wakeups) * ms_per_wakeup)


def _wrk_bin() -> Path:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed (Debian's package 'wrk'; `make setup` installs it)")
    return Path(found)


def _target(endpoint: str) -> tuple[str, bool]:
    """(path, whether it is a POST) of what wrk and the generator send for `endpoint`."""
    return (POST_PATH, True) if endpoint == REACTIONS else (HEALTHZ_PATH, False)


def measure_wrk(seconds: float, endpoint: str = REACTIONS) -> Figure:
    """wrk at its max (closed loop)."""
    path, post = _target(endpoint)
    c = ceilings_http.wrk(_wrk_bin(), f"http.wrk.{endpoint}", path, seconds, post=post)
    fig = wrk_figure(c, f"wrk -t1 -c{WRK_CONNECTIONS}", None)
    if fig is None:
        raise SystemExit(f"wrk failed: {c.error}")
    return fig


def paced_control(generator: Figure, seconds: float, endpoint: str, wrk_bin: Path | None = None) -> Ceiling | None:
    """wrk paced to the rate `generator` achieved, calibrated with its mean answer time there; None
    when it has none (no request answered in its window)."""
    if generator.latency_mean_ms is None or generator.achieved_per_second <= 0:
        return None
    path, post = _target(endpoint)
    pace = ceilings_http.Pace(generator.achieved_per_second, generator.latency_mean_ms / 1000)
    return ceilings_http.wrk_paced(
        wrk_bin or _wrk_bin(), f"http.wrk.{endpoint}.paced", path, seconds, post=post, pace=pace
    )


def wrk_figure(c: Ceiling, tool: str, offered: float | None) -> Figure | None:
    """A wrk run as a row of the table; None when it failed."""
    figures = c.rate_and_cpu()
    if figures is None:
        return None
    per_second, cpu_per_1000 = figures
    return Figure(
        tool=tool,
        processes=1,
        offered_per_second=offered,
        achieved_per_second=per_second,
        requests=c.count,
        cpu_seconds=cpu_per_1000 * c.count / 1000,
        cpu_ms_per_request=cpu_per_1000,
        wakeups_per_request=None if c.wakeups_per_request is None else round(c.wakeups_per_request, 3),
        note=c.detail_line(),
    )


def measure_generator(
    rate: float, processes: int, seconds: float, warmup: float, work: Path, limits: GeneratorLimits,
    max_in_flight: int = IN_FLIGHT_CAP, endpoint: str = REACTIONS, wake_interval: float | None = None,
) -> Figure:  # fmt: skip
    """One steady open-loop run of the Locust generator at `rate`, with the cells' nice and wake interval
    (`limits`, harness/limits/generator.yaml; `wake_interval` when given); CPU over [warmup, seconds - 1]."""
    wake = limits.wake_interval_seconds if wake_interval is None else wake_interval
    folder = work / f"gen-{endpoint}-{processes}p-{rate:.0f}-w{wake * 1000:g}"
    load = LoadRun.in_folder(
        folder, loadgen.steady(f"cost-{rate:.0f}", rate, seconds, "cost"), processes=processes,
        request_timeout=REQUEST_TIMEOUT_SECONDS, max_in_flight=max_in_flight, nice=limits.nice, endpoint=endpoint,
        wake_interval=wake,  # as in the cells
    )  # fmt: skip
    proc = load.start()
    probe = None
    try:
        epoch = LoadRun.epoch(timeout=60.0, alive=lambda: proc.poll() is None)
        if epoch is None:
            raise SystemExit(f"the load generator did not start; see {load.log}")
        w0, w1 = epoch + warmup, epoch + seconds - 1.0
        # A wakeup's cost in the very same window; started early, so its start-up is over by w0.
        _sleep_until(w0 - PROBE_LEAD_SECONDS)
        probe = wakeup_probe.start(w1 - w0, at=w0)
        _sleep_until(w0)
        cpu0, busy0, t0 = cpu.tree_cpu_seconds(proc.pid), cpu.machine_busy_seconds(), time.monotonic()
        wake0 = cpu.tree_wakeups(proc.pid)
        _sleep_until(w1)
        cpu1, busy1, t1 = cpu.tree_cpu_seconds(proc.pid), cpu.machine_busy_seconds(), time.monotonic()
        wake1 = cpu.tree_wakeups(proc.pid)
        probed = wakeup_probe.result(probe)
        proc.wait(timeout=seconds + 60)
    finally:
        if probe is not None:
            wakeup_probe.stop(probe)  # interrupted before its answer: never left running
        LoadRun.stop(proc)
    if cpu0 is None or cpu1 is None:
        raise SystemExit(f"the load generator exited early; see {load.log}")
    lo, hi = int(w0 * 1e9), int(w1 * 1e9)
    lags: list[float] = []
    in_window = waited_ns = 0
    for o in load.iter_outcomes():
        lags.append(max(0.0, (o.started_unix_nanos - o.intended_unix_nanos) / 1e9))
        if lo <= o.ended_unix_nanos < hi:
            in_window += 1
            waited_ns += o.ended_unix_nanos - o.started_unix_nanos
    lag = quantiles.summary(lags)
    used = cpu1 - cpu0
    missed = sum(int(s.get("missed", 0)) for s in load.summaries())

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    fig = Figure(
        tool="locust (loadtests)",
        processes=processes,
        offered_per_second=rate,
        achieved_per_second=in_window / (w1 - w0),
        requests=in_window,
        cpu_seconds=round(used, 3),
        cpu_ms_per_request=round(used / in_window * 1000, 4) if in_window else None,
        lag_p50_ms=ms(lag["p50"]),
        lag_p99_ms=ms(lag["p99"]),
        lag_max_ms=ms(lag["max"]),
        latency_mean_ms=round(waited_ns / in_window / 1e6, 3) if in_window else None,
        missed=missed,
        machine_cores=round((busy1 - busy0) / (t1 - t0), 2) if busy0 is not None and busy1 is not None else None,
        wake_interval_ms=round(wake * 1000, 3),
    )
    fig.count_wakeups(None if wake0 is None or wake1 is None else wake1 - wake0, probed)
    return fig


def measure_paced(generator: Figure, seconds: float, endpoint: str) -> Figure | None:
    """wrk paced to `generator`'s rate, as a row of the table (printed); None when there is none."""
    control = paced_control(generator, seconds, endpoint)
    if control is None:
        return None
    row = wrk_figure(control, "wrk paced", generator.achieved_per_second)
    if row is None:
        print(f"wrk paced to {generator.achieved_per_second:.0f}/s failed: {control.error}", flush=True)
    else:
        print(_row(row) + (f"\n  ({row.note})" if row.note else ""), flush=True)
    return row


def _sleep_until(unix: float) -> None:
    while (left := unix - time.time()) > 0:
        time.sleep(min(left, 0.2))


def table(figures: list[Figure]) -> str:
    # Fixed widths, not harness.text_table's: main prints each row as it is measured, under a head printed first.
    head = (
        f"{'tool':<20} {'proc':>4} {'wake ms':>7} {'offered/s':>9} {'achieved/s':>10} {'requests':>8} {'CPU s':>7} "
        f"{'CPU ms/req':>10} {'x wrk':>6} {'x paced':>7} {'wake/req':>8} {'ms/wake':>7} {'@wrk wake':>9} {'x wrk':>5} "
        f"{'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'missed':>6} {'machine':>7}"
    )
    rows = [head, "-" * len(head)]

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for g in figures:
        rows.append(
            f"{g.tool:<20} {g.processes:>4} {f(g.wake_interval_ms, 'g'):>7} {f(g.offered_per_second, '.0f'):>9} "
            f"{g.achieved_per_second:>10.0f} "
            f"{g.requests:>8} {g.cpu_seconds:>7.2f} {f(g.cpu_ms_per_request, '.3f'):>10} "
            f"{f(g.ratio_to_wrk, '.2f'):>6} {f(g.ratio_to_paced_wrk, '.2f'):>7} "
            f"{f(g.wakeups_per_request, '.2f'):>8} {f(g.ms_per_wakeup, '.3f'):>7} "
            f"{f(g.at_wrk_wakeups_ms, '.3f'):>9} {f(g.at_wrk_wakeups_ratio, '.1f'):>5} "
            f"{f(g.lag_p50_ms, '.2f'):>8} {f(g.lag_p99_ms, '.2f'):>8} "
            f"{f(g.lag_max_ms, '.1f'):>8} {g.missed:>6} {f(g.machine_cores, '.2f'):>7}"
        )
    rows.append(
        "x wrk: to wrk at its max (closed loop); x paced: to wrk paced to the rate the generator achieved;\n"
        "wake ms: the generator's --wake-interval (0: it wakes for every arrival and answer);\n"
        "lag in ms (intended -> actual start, every request of the run); machine: busy cores, all processes;\n"
        "wake/req: sleeps per request; ms/wake: CPU of one wakeup (the wakeup probe beside the generator);\n"
        "@wrk wake: CPU ms per request less the wakeups beyond wrk's (wake/req - wrk's) x ms/wake, then x wrk"
    )
    rows += [f"{g.tool} at {f(g.offered_per_second, '.0f')}/s: {g.note}" for g in figures if g.note]
    return "\n".join(rows)


def _row(g: Figure) -> str:
    return table([g]).splitlines()[2]


def _measure_all(args: argparse.Namespace, limits: GeneratorLimits) -> list[Figure]:
    """wrk, then the generator at each rate (and at its max), each process count and wake interval."""
    figures = [measure_wrk(args.wrk_seconds, args.endpoint)]
    wrk_fig = figures[0]
    print("\n".join(table(figures).splitlines()[:3]), flush=True)
    # (offered rate, in-flight cap, label when not the default): each fixed rate, then max
    runs: list[tuple[float, int, str | None]] = [(rate, IN_FLIGHT_CAP, None) for rate in args.rates]
    if args.max:
        runs.append((max_offer(wrk_fig.achieved_per_second), WRK_CONNECTIONS, f"locust (max, cap {WRK_CONNECTIONS})"))
    paced: dict[float, Figure | None] = {}  # wrk paced to each fixed rate, once
    with tempfile.TemporaryDirectory(prefix="generator-cost-") as tmp:
        for processes in args.processes:
            for wake in args.wake_intervals or [None]:
                for rate, cap, tool in runs:
                    fig = measure_generator(
                        rate, processes, args.seconds, args.warmup, Path(tmp), limits, cap, endpoint=args.endpoint,
                        wake_interval=wake,
                    )  # fmt: skip
                    if tool is not None:
                        fig.tool = tool
                    figures.append(fig)
                    print(_row(fig), flush=True)
                    if tool is None and rate not in paced:
                        paced[rate] = row = measure_paced(fig, args.wrk_seconds, args.endpoint)
                        if row is not None:
                            figures.append(row)
                    fig.compare_to(wrk_fig, paced.get(rate) if tool is None else None)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.capacity.generator_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=float, nargs="*", default=[500.0, 1000.0, 1500.0], help="fixed open-loop rates")
    p.add_argument("--max", action="store_true", help=f"also at max: {MAX_OVER_WRK}x wrk's rate, cap {WRK_CONNECTIONS}")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="Locust process counts to measure")
    p.add_argument("--seconds", type=float, default=20.0, help="each generator run (warm-up included)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of each run not measured (start-up)")
    p.add_argument("--wrk-seconds", type=float, default=10.0)
    p.add_argument("--endpoint", choices=list(ENDPOINTS), default=REACTIONS, help="what wrk and the generator send")
    p.add_argument(
        "--wake-intervals", type=float, nargs="+", help="the generator's --wake-interval values to measure "
        "(seconds; default: the cells', harness/limits/generator.yaml)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.seconds < args.warmup + 3:
        p.error("--seconds must exceed --warmup by at least 3")

    try:  # before anything runs
        limits = generator_health.load_limits()
    except ValueError as e:
        p.error(str(e))
    try:
        with supervisor.terminating_signals():  # SIGTERM too stops Locust, wrk and the probe on the way out
            figures = _measure_all(args, limits)
    except KeyboardInterrupt:
        print("\ngenerator_cost: interrupted; Locust and wrk stopped", file=sys.stderr)
        return 130
    print()
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps([asdict(g) for g in figures], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
