"""Plays capacity steps on a running stack: the load, the measured window, CPU, backlog and the verdict."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from facts import quantiles
from harness import generator_health, loadgen, sink
from harness.capacity.config import ALL_LIMITS, REQUEST_TIMEOUT_SECONDS, Disturbed, SearchSettings, ServiceLevel
from harness.capacity.cpu import HARNESS, LOADGEN, OTHER, STEAL, CpuSnapshot
from harness.capacity.step import Step, judge, slope
from harness.generator_health import GeneratorLimits
from harness.loadgen import LoadRun
from harness.progress import Progress
from harness.sampling import drain, sample_backlog
from loadtests.outcome import SERIES_GLOB


class StepRunner:
    """Plays steps on a running stack (harness.stack.Stack or anything with its `sup`, `pipeline`
    and `use_pipeline`), memoized per (pipeline, rate)."""

    def __init__(
        self, stack: Any, out_dir: Path, level: ServiceLevel, s: SearchSettings, disturbed: Disturbed,
        gen_limits: GeneratorLimits,
    ) -> None:  # fmt: skip
        self.stack, self.out_dir, self.level, self.s, self.disturbed = stack, out_dir, level, s, disturbed
        self.gen_limits = gen_limits
        self.steps: dict[tuple[str, float], Step] = {}
        self.order: list[Step] = []
        self._last: Step | None = None

    def measure(self, pipeline: str, rate: float) -> Step:
        key = (pipeline, float(rate))
        if key not in self.steps:
            self.steps[key] = self._searched(self._play_undisturbed(pipeline, float(rate)))
        return self.steps[key]

    def replay(self, pipeline: str, rate: float) -> Step:
        """The rate played again to confirm it (not memoized; the search's first play stays memoized)."""
        st = self._play_undisturbed(pipeline, float(rate), "replay")
        st.replay = True
        return self._searched(st)

    def _searched(self, st: Step) -> Step:
        self.order.append(st)
        verdict = st.verdict(ALL_LIMITS) + (" (replay)" if st.replay else "")
        why = "; ".join(st.why(ALL_LIMITS)) or "within the service level"
        cores = " ".join(f"{n}={c:.2f}" for n, c in sorted(st.cpu_cores.items()))
        print(f"  {st.pipeline:<14} {st.rate:7.0f}/s  {verdict:<15} {why}  [cores {cores}]", flush=True)
        return st

    def component_pids(self) -> dict[str, int]:
        return {name: r.pid for name, r in self.stack.sup.running.items()}

    def measure_once(self, pipeline: str, rate: float, label: str) -> Step:
        """One more step at `rate`, outside the search (not memoized): e.g. under another tracing setting."""
        st = self._play_undisturbed(pipeline, float(rate), label)
        why = "; ".join(st.why(ALL_LIMITS)) or "within the service level"
        print(f"  {pipeline:<14} {rate:7.0f}/s  {label:<15} {why}", flush=True)
        return st

    def _play_undisturbed(self, pipeline: str, rate: float, label: str = "") -> Step:
        """The step, played again while the machine was disturbed (capacity.yaml's `disturbed`)."""
        d = self.disturbed
        for play in range(1, d.retries + 2):
            st = self._play(pipeline, rate, "-".join(filter(None, (label, f"play{play}" if play > 1 else ""))))
            st.played = play
            why = d.why(st.cpu_cores.get(OTHER, 0.0), st.cpu_cores.get(STEAL, 0.0))
            st.disturbed, st.disturbance = bool(why), why
            if not st.disturbed:
                break
            if play <= d.retries:
                print(f"  {pipeline:<14} {rate:7.0f}/s  disturbed: {'; '.join(why)}; played again", flush=True)
        self._last = st  # every play, searched or not: the next one restarts the reaction service after a break
        return st

    def _play(self, pipeline: str, rate: float, label: str = "") -> Step:
        s = self.s
        last = self._last
        # After a step that did not hold, the reaction service starts afresh: an open breaker, spent
        # retry tokens or a producer still flushing would otherwise judge the next step by the last.
        if self.stack.pipeline != pipeline or (last is not None and last.verdict(ALL_LIMITS) != "held"):
            self.stack.use_pipeline(pipeline)
        progress = Progress(f"capacity {pipeline} {rate:.0f}/s", s.warmup_seconds + s.measure_seconds)
        left = drain(s.drain_seconds, progress, settle=1.0, quiet_before=True)
        sink.reset()
        folder = self.out_dir / pipeline / (f"{rate:.0f}" + (f"-{label}" if label else ""))
        folder.mkdir(parents=True, exist_ok=True)
        duration = s.warmup_seconds + s.measure_seconds
        gen = self.gen_limits
        load = LoadRun.in_folder(
            folder, loadgen.steady(f"capacity-{pipeline}-{rate:.0f}", rate, duration, "a bench capacity step"),
            request_timeout=REQUEST_TIMEOUT_SECONDS, nice=gen.nice, wake_interval=gen.wake_interval_seconds,
        )  # fmt: skip
        proc = load.start()
        watch_backlog = pipeline == "async"
        try:
            epoch = LoadRun.epoch(timeout=60.0, alive=lambda: proc.poll() is None)
            if epoch is None:  # judged like a generator that fell behind: never the pipeline's limit
                LoadRun.stop(proc)
                return _not_started(pipeline, rate, s.measure_seconds, load.log)
            w0, w1 = epoch + s.warmup_seconds, epoch + duration
            _sleep_until(w0)
            pids, alone = {**self.component_pids(), LOADGEN: proc.pid}, {HARNESS: os.getpid()}
            cpu0 = CpuSnapshot.take(pids, time.monotonic(), alone)
            unique0 = _sink_unique()
            backlog: list[tuple[float, float]] = []
            while time.time() < w1:
                if watch_backlog and (b := sample_backlog()) is not None:
                    backlog.append((time.time(), float(b)))
                _sleep_until(min(w1, time.time() + 1.0))
            cpu1 = CpuSnapshot.take(pids, time.monotonic(), alone)
            unique1 = _sink_unique()
            if watch_backlog and (b := sample_backlog()) is not None:
                backlog.append((time.time(), float(b)))
            proc.wait(timeout=load.request_timeout + 30)
        except BaseException:
            LoadRun.stop(proc)
            raise
        LoadRun.stop(proc)
        return self._step(pipeline, rate, load, (w0, w1), cpu0, cpu1, backlog, unique0, unique1, left == 0)

    def _step(
        self, pipeline: str, rate: float, load: LoadRun, window: tuple[float, float], cpu0: CpuSnapshot,
        cpu1: CpuSnapshot, backlog: list[tuple[float, float]], unique0: int | None, unique1: int | None,
        drained: bool,
    ) -> Step:  # fmt: skip
        w0, w1 = window
        seconds = w1 - w0
        lo, hi = int(w0 * 1e9), int(w1 * 1e9)
        outcomes = [o for o in load.outcomes() if lo <= o["intended_unix_nanos"] < hi]
        summaries = load.summaries()
        counts = {k: sum(1 for o in outcomes if o["outcome"] == k) for k in ("ack", "failed", "unknown")}
        sent = len(outcomes)
        api = [(o["ended_unix_nanos"] - o["intended_unix_nanos"]) / 1e9 for o in outcomes]
        service = [(o["ended_unix_nanos"] - o["started_unix_nanos"]) / 1e9 for o in outcomes]
        lags = generator_health.lag_summary(generator_health.schedule_lags(outcomes))
        missed = _missed_in(load.out_dir, w0, w1, summaries)
        err = (counts["failed"] + counts["unknown"]) / sent if sent else None
        growth = slope(backlog) if backlog else None
        api_p99, service_p99 = quantiles.summary(api)["p99"], quantiles.summary(service)["p99"]
        breaches = judge(self.level, pipeline, rate, api_p99=api_p99, error_ratio=err, backlog_growth=growth)
        without_lag = judge(self.level, pipeline, rate, api_p99=service_p99, error_ratio=err, backlog_growth=growth)
        gen = generator_health.fell_behind(
            lag_p99=lags["p99"], missed=0, workers_expected=load.processes, summaries=summaries, limits=self.gen_limits
        )
        if missed > self.gen_limits.max_missed_arrivals and not breaches:
            # The in-flight cap filled while the service answered within its level: the cap, not the pipeline.
            gen.append(f"{missed} arrivals missed at the in-flight cap (limit {self.gen_limits.max_missed_arrivals})")
        if sent == 0:
            gen.append("nothing was sent in the measured window")
        acked = counts["ack"]
        # per 1,000 reactions: what each process used; steal is time no process had, not a cost of theirs
        cpu_s = {n: s for n, s in CpuSnapshot.with_other(cpu1.seconds_since(cpu0)).items() if n != STEAL}
        return Step(
            pipeline=pipeline, rate=rate, seconds=seconds, sent=sent, acknowledged=acked, failed=counts["failed"],
            unknown=counts["unknown"], missed=missed,
            achieved_rate=sum(1 for o in outcomes if o["started_unix_nanos"] < hi) / seconds,
            error_ratio=err, api_p50_seconds=quantiles.summary(api)["p50"], api_p99_seconds=api_p99,
            service_p99_seconds=service_p99, lag_p99_seconds=lags["p99"], lag_max_seconds=lags["max"],
            backlog_start=int(backlog[0][1]) if backlog else None,
            backlog_end=int(backlog[-1][1]) if backlog else None, backlog_growth_per_second=growth,
            delivered_per_second=(unique1 - unique0) / seconds if unique0 is not None and unique1 is not None else None,
            drained_before=drained, cpu_cores=CpuSnapshot.with_other(cpu1.cores_since(cpu0)),
            cpu_seconds_per_1000={n: c / acked * 1000 for n, c in cpu_s.items()} if acked else {},
            breaches=breaches, breaches_without_lag=without_lag, generator_reasons=gen,
        )  # fmt: skip


def _not_started(pipeline: str, rate: float, seconds: float, log: Path) -> Step:
    return Step(
        pipeline=pipeline, rate=rate, seconds=seconds, sent=0, acknowledged=0, failed=0, unknown=0, missed=0,
        achieved_rate=0.0, error_ratio=None, api_p50_seconds=None, api_p99_seconds=None, service_p99_seconds=None,
        lag_p99_seconds=None, lag_max_seconds=None, generator_reasons=[f"the load generator did not start; see {log}"],
    )  # fmt: skip


def _sleep_until(unix: float) -> None:
    while (left := unix - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _sink_unique() -> int | None:
    try:
        return int(sink.stats()["unique"])
    except Exception:  # the sink is read for a figure, never to fail a step
        return None


def _missed_in(out_dir: Path, w0: float, w1: float, summaries: list[dict[str, Any]]) -> int:
    """Missed arrivals whose intended second falls in the window (the per-second series), or the
    run's total when there is no series."""
    rows = []
    for path in sorted(out_dir.glob(SERIES_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    if not rows:
        return sum(int(s.get("missed", 0)) for s in summaries)
    return sum(int(r.get("missed", 0)) for r in rows if w0 - 0.5 <= float(r["unix_seconds"]) < w1)
