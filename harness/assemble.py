"""One cell's CellResult: what each client was told (the load generator's outcomes) joined with what
the phone got (the sink's deliveries) on the load's own time axis, and the hypothesis judged on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from chaos.engine import Timeline
from facts import quantiles
from harness import generator_health, ledger, memory, sink
from harness.intervals import Request, block_intervals, request_metrics
from harness.loadgen import LoadRun
from harness.plan import PlannedCell
from harness.result import (
    DRAINED,
    Backlog,
    CellResult,
    CheckResult,
    DeadLetter,
    Disturbance,
    FaultWindow,
    Hypothesis,
    LoadGenerator,
    PerSecond,
    ScheduleLag,
    TargetRate,
    Timings,
)
from harness.run_limits import RunLimits
from harness.windows import latency_summary, windows
from protos import reaction_pb2


def assemble(
    cell: PlannedCell,
    load: LoadRun,
    timeline: Timeline,
    started_unix: float,
    loadgen_exit_code: int | None,
    backlog_left: int | None,
    backlog_series: list[tuple[float, int | None]],
    limits: RunLimits,
    dead_letter_records: Sequence[Any] = (),
    disturbance: Disturbance | None = None,
    memory_readings: Mapping[str, Sequence[memory.Reading]] | None = None,
) -> CellResult:
    """The cell's result with its hypothesis judged. `dead_letter_records`: the Kafka records written
    to the dead-letter topic during the cell; `memory_readings`: every process's RSS meanwhile
    (None: not measured)."""
    outcomes = load.outcomes()
    deliveries: dict[str, Any] = sink.deliveries()
    dead = [dead_letter_id(r) for r in dead_letter_records]
    led = ledger.classify(outcomes, deliveries, dead)
    summaries = load.summaries()
    # Time zero: the plan's epoch, the one the fault timeline was started on.
    epochs = [int(s["epoch_unix_nanos"]) for s in summaries if s.get("epoch_unix_nanos")]
    first_intended = min((o["intended_unix_nanos"] for o in outcomes), default=int(started_unix * 1e9))
    epoch = (min(epochs) if epochs else first_intended) / 1e9
    seconds = max(1, int(cell.load_seconds + 0.999))
    # Every request that ended, timeouts included: leaving out the slowest answers would hide an outage.
    api = [
        (o["intended_unix_nanos"] / 1e9, (o["ended_unix_nanos"] - o["intended_unix_nanos"]) / 1e9)
        for o in outcomes
        if o.get("ended_unix_nanos")
    ]
    sent = {o["reaction_id"] for o in outcomes}
    e2e = [
        (d["first_delivery_unix_nanos"] / 1e9, (d["first_delivery_unix_nanos"] - d["created_unix_nanos"]) / 1e9)
        for rid, d in deliveries.items()
        if rid in sent and d.get("created_unix_nanos")
    ]
    requests = [_request(o, deliveries.get(o["reaction_id"]), epoch) for o in outcomes]
    ack_to_delivery = [r.ack_to_delivery for r in requests if r.ack_to_delivery is not None]
    faults = [
        FaultWindow(
            index=w.index,
            kind=w.kind,
            target=w.target,
            label=w.label,
            start=w.start,
            end=w.end,
            applied_offset=None if w.applied_unix is None else w.applied_unix - epoch,
            undone_offset=None if w.undone_unix is None else w.undone_unix - epoch,
            recovered_offset=None if w.recovered_unix is None else w.recovered_unix - epoch,
            error=w.error,
        )
        for w in timeline.windows
    ]
    # Drain time: from the planned end of the load to the last first delivery of this cell's ids.
    load_end = epoch + cell.load_seconds
    drain_seconds = max(0.0, max((t for t, _ in e2e), default=load_end) - load_end)
    backlog_values = [b for _, b in backlog_series if b is not None]
    series_len = max(seconds, int(max((t for t, _ in backlog_series), default=epoch) - epoch) + 1)
    profile = cell.profile
    result = CellResult(
        pipeline=cell.pipeline,
        scenario=cell.scenario.name,
        description=cell.scenario.description,
        profile=profile.model_dump(mode="json"),
        timings=Timings(
            load_start_unix=epoch,
            load_seconds=cell.load_seconds,
            drain_seconds=drain_seconds,
            drain_timeout_seconds=cell.scenario.drain_timeout,
            drained=backlog_left == 0,
        ),
        target_rate=TargetRate(
            mean=sum(profile.rate_at(t + 0.5) for t in range(seconds)) / seconds, peak=profile.max_rate()
        ),
        loadgen=_loadgen(load, summaries, outcomes, loadgen_exit_code, limits.generator),
        ledger=led,
        api_latency_seconds=latency_summary(v for _, v in api),
        e2e_latency_seconds=latency_summary(v for _, v in e2e),
        ack_to_delivery_seconds=latency_summary(ack_to_delivery),
        windows=windows(requests, profile.rate_at, cell.load_seconds, faults),
        repetition=cell.repetition,
        backlog=Backlog(peak=max(backlog_values) if backlog_values else None, left_after_drain=backlog_left),
        dead_letter=DeadLetter(
            records=len(dead),
            by_reason=dict(Counter(_header(r, "x-dlq-reason") or "?" for r in dead_letter_records)),
        ),
        faults=faults,
        series=_series(outcomes, api, e2e, backlog_series, epoch, series_len, profile.rate_at),
        disturbance=disturbance or Disturbance(measured=False),
        memory=memory.MemoryProfile(measured=False)
        if memory_readings is None
        else memory.profile(memory_readings, epoch, cell.load_seconds, limits.memory),
    )
    result.intervals = block_intervals(
        requests,
        lambda sample: {
            **request_metrics(sample),
            **windows(sample, profile.rate_at, cell.load_seconds, faults).metrics(),
        },
    )
    result.hypothesis = judge(cell, result)
    return result


def _request(outcome: dict[str, Any], delivery: dict[str, Any] | None, epoch: float) -> Request:
    intended, ended = outcome["intended_unix_nanos"], outcome.get("ended_unix_nanos")
    ok = outcome["outcome"] == ledger.ACK
    first = delivery and delivery.get("first_delivery_unix_nanos")
    created = delivery and delivery.get("created_unix_nanos")
    return Request(
        t=intended / 1e9 - epoch,
        api=(ended - intended) / 1e9 if ended else None,
        ok=ok,
        e2e=(first - created) / 1e9 if first and created else None,
        ack_to_delivery=(first - ended) / 1e9 if ok and first and ended else None,
        delivered=delivery is not None,
    )


def _loadgen(
    load: LoadRun,
    summaries: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
    exit_code: int | None,
    limits: generator_health.GeneratorLimits,
) -> LoadGenerator:
    lag = ScheduleLag(**generator_health.lag_summary(generator_health.schedule_lags(outcomes)))
    missed = sum(int(s.get("missed", 0)) for s in summaries)
    return LoadGenerator(
        exit_code=exit_code,
        missed_arrivals=missed,
        workers_expected=load.processes,
        workers_reported=len(summaries),
        intended=sum(int(s.get("intended", 0)) for s in summaries),
        started=sum(int(s.get("started", 0)) for s in summaries),
        recorded=sum(int(s.get("recorded", 0)) for s in summaries),
        schedule_lag_seconds=lag,
        fell_behind=generator_health.fell_behind(
            lag_p99=lag.p99,
            missed=missed,
            workers_expected=load.processes,
            summaries=summaries,
            limits=limits,
        ),
    )


def _series(
    outcomes: list[dict[str, Any]],
    api: list[tuple[float, float]],
    e2e: list[tuple[float, float]],
    backlog_series: list[tuple[float, int | None]],
    epoch: float,
    n: int,
    rate_at: Any,
) -> PerSecond:
    by_outcome = {
        name: quantiles.per_second((o["intended_unix_nanos"] / 1e9 for o in outcomes if o["outcome"] == name), epoch, n)
        for name in (ledger.ACK, ledger.FAILED, ledger.UNKNOWN)
    }
    backlog: list[int | None] = [None] * n
    for t, b in backlog_series:
        i = int(t - epoch)
        if 0 <= i < n and b is not None:
            backlog[i] = max(b, backlog[i] or 0)
    return PerSecond(
        second=list(range(n)),
        target_rate=[rate_at(t + 0.5) for t in range(n)],
        acknowledged=by_outcome[ledger.ACK],
        failed=by_outcome[ledger.FAILED],
        unknown=by_outcome[ledger.UNKNOWN],
        delivered=quantiles.per_second((t for t, _ in e2e), epoch, n),
        api_p50=quantiles.per_second_quantile(api, epoch, n, 0.5),
        api_p99=quantiles.per_second_quantile(api, epoch, n, 0.99),
        e2e_p50=quantiles.per_second_quantile(e2e, epoch, n, 0.5),
        e2e_p99=quantiles.per_second_quantile(e2e, epoch, n, 0.99),
        backlog=backlog,
    )


def judge(cell: PlannedCell, result: CellResult) -> Hypothesis:
    """The scenario's checks for this pipeline, after the preconditions without which a cell proves
    nothing: it sent something, its load generator succeeded and kept up, it drained."""
    m = result.metrics()
    preconditions = [
        CheckResult(
            check="attempted > 0",
            metric="attempted",
            measured=m["attempted"],
            passed=bool(m["attempted"]),
            precondition=True,
        ),
        CheckResult(
            check="load generator exit code == 0",
            metric="loadgen.exit_code",
            measured=None if result.loadgen.exit_code is None else float(result.loadgen.exit_code),
            passed=result.loadgen.exit_code == 0,
            precondition=True,
        ),
        CheckResult(
            check="load generator bound == no"
            + (f" ({'; '.join(result.loadgen.fell_behind)})" if result.loadgen.bound else ""),
            metric="loadgen.bound",
            measured=m["loadgen.bound"],
            passed=not result.loadgen.bound,
            precondition=True,
        ),
        CheckResult(
            check="drained within drain_timeout",
            metric=DRAINED,
            measured=float(result.timings.drained),
            passed=result.timings.drained,
            precondition=True,
        ),
    ]
    checks = [
        CheckResult(check=str(c), metric=c.metric, measured=m[c.metric], passed=c.holds(m[c.metric]))
        for c in cell.scenario.checks_for(cell.pipeline)
    ]
    return Hypothesis(passed=all(c.passed for c in preconditions + checks), checks=preconditions + checks)


def dead_letter_id(record: Any) -> str:
    """The reaction id of a dead-letter record: its payload's, or its key for a payload that does
    not parse (a malformed record is dead-lettered as it came), or where it sits when it has neither."""
    try:
        event = reaction_pb2.ReactionEvent.FromString(record.value or b"")
    except DecodeError:
        event = None
    if event is not None and event.reaction_id:
        return str(event.reaction_id)
    return (record.key or b"").decode(errors="replace") or f"dlq:{record.partition}:{record.offset}"


def _header(record: Any, name: str) -> str | None:
    return next((v.decode(errors="replace") for k, v in (record.headers or ()) if k == name), None)
