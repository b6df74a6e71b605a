"""One cell's result.json and its verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from chaos.engine import Timeline
from facts import quantiles
from harness import ledger, sink
from harness.loadgen import LoadRun
from loadtests.profile import find_profile
from protos import reaction_pb2

if TYPE_CHECKING:
    from harness.run import Cell


def build(
    cell: Cell,
    load: LoadRun,
    timeline: Timeline,
    started_unix: float,
    backlog_left: int | None,
    backlog_series: list[tuple[float, int | None]],
    dead_letter_records: Sequence[Any] = (),
) -> dict[str, Any]:
    """result.json of one cell: what the client was told (Locust's outcomes) joined with what the
    phone got (the sink's ledger), on the load's own time axis. `dead_letter_records`: the Kafka
    records written to the dead-letter topic during the cell."""
    outcomes = load.outcomes()
    deliveries: dict[str, Any] = sink.ledger()["deliveries"]
    dead = [dead_letter_id(r) for r in dead_letter_records]
    led = ledger.classify(outcomes, deliveries, dead)
    # Time zero: the plan's epoch, the one the fault timeline was started on.
    epochs = [int(s["epoch_unix_nanos"]) for s in load.summaries() if s.get("epoch_unix_nanos")]
    first_intended = min((o["intended_unix_nanos"] for o in outcomes), default=int(started_unix * 1e9))
    epoch = (min(epochs) if epochs else first_intended) / 1e9
    seconds = max(1, int(cell.load_seconds + 0.999))
    # Every request that ended, timeouts included: leaving out the slowest answers would hide an outage.
    answered = [o for o in outcomes if o.get("ended_unix_nanos")]
    api = [
        ((o["intended_unix_nanos"] / 1e9), (o["ended_unix_nanos"] - o["intended_unix_nanos"]) / 1e9) for o in answered
    ]
    sent = {o["reaction_id"] for o in outcomes}
    e2e = [
        (d["first_delivery_unix_nanos"] / 1e9, (d["first_delivery_unix_nanos"] - d["created_unix_nanos"]) / 1e9)
        for rid, d in deliveries.items()
        if rid in sent and d.get("created_unix_nanos")
    ]
    # Drain time: from the planned end of the load to the last first delivery of this cell's ids.
    load_end = epoch + cell.load_seconds
    last_delivery = max((t for t, _ in e2e), default=load_end)
    drain_seconds = max(0.0, last_delivery - load_end)
    summaries = load.summaries()
    missed = sum(int(s.get("missed", 0)) for s in summaries)
    api_summary = quantiles.summary(v for _, v in api)
    e2e_summary = quantiles.summary(v for _, v in e2e)
    backlog_values = [b for _, b in backlog_series if b is not None]
    n = led.attempted or 1
    measured: dict[str, float | None] = {
        **{k: float(v) for k, v in led.counts().items()},
        "error_ratio": (led.failed + led.unknown) / n if led.attempted else None,
        "ack_ratio": led.acknowledged / n if led.attempted else None,
        "delivered_ratio": led.delivered / n if led.attempted else None,
        "missed_arrivals": float(missed),
        "achieved_rate": led.attempted / cell.load_seconds,
        **{f"api.{k}": api_summary[k] for k in ("p50", "p90", "p99", "p999", "max")},
        **{f"e2e.{k}": e2e_summary[k] for k in ("p50", "p90", "p99", "p999", "max")},
        "peak_backlog": float(max(backlog_values)) if backlog_values else None,
        "drain_seconds": drain_seconds,
    }
    by_outcome = {
        name: quantiles.per_second(
            (o["intended_unix_nanos"] / 1e9 for o in outcomes if o["outcome"] == name), epoch, seconds
        )
        for name in (ledger.ACK, ledger.FAILED, ledger.UNKNOWN)
    }
    series_len = max(seconds, int(max((t for t, _ in backlog_series), default=epoch) - epoch) + 1)
    backlog_by_second: list[int | None] = [None] * series_len
    for t, b in backlog_series:
        i = int(t - epoch)
        if 0 <= i < series_len and b is not None:
            backlog_by_second[i] = max(b, backlog_by_second[i] or 0)
    profile = find_profile(cell.profile_ref).scaled(duration=cell.load_seconds)
    return {
        "pipeline": cell.pipeline,
        "scenario": cell.scenario.name,
        "description": cell.scenario.description,
        "profile": profile.model_dump(mode="json"),
        "timings": {
            "load_start_unix": epoch,
            "load_seconds": cell.load_seconds,
            "load_end_unix": load_end,
            "drain_seconds": drain_seconds,
            "drain_timeout_seconds": cell.scenario.drain_timeout,
            "drained": backlog_left == 0,
        },
        "rate": {
            "target_mean": sum(profile.rate_at(t + 0.5) for t in range(seconds)) / seconds,
            "target_peak": profile.max_rate(),
            "achieved_mean": measured["achieved_rate"],
        },
        "ledger": led.to_json(),
        "api_latency_seconds": api_summary,
        "e2e_latency_seconds": e2e_summary,
        "backlog": {"peak": measured["peak_backlog"], "left_after_drain": backlog_left},
        "dead_letter": {
            "records": len(dead),
            "by_reason": dict(Counter(_header(r, "x-dlq-reason") or "?" for r in dead_letter_records)),
        },
        "faults": [
            {
                **asdict(w),
                "start": w.start,
                "end": w.end,
                "applied_offset": None if w.applied_unix is None else w.applied_unix - epoch,
                "undone_offset": None if w.undone_unix is None else w.undone_unix - epoch,
                "recovered_offset": None if w.recovered_unix is None else w.recovered_unix - epoch,
            }
            for w in timeline.windows
        ],
        "series": {
            "second": list(range(series_len)),
            "target_rate": [profile.rate_at(t + 0.5) for t in range(series_len)],
            "acknowledged": pad(by_outcome[ledger.ACK], series_len),
            "failed": pad(by_outcome[ledger.FAILED], series_len),
            "unknown": pad(by_outcome[ledger.UNKNOWN], series_len),
            "delivered": quantiles.per_second((t for t, _ in e2e), epoch, series_len),
            "api_p50": quantiles.per_second_quantile(api, epoch, series_len, 0.5),
            "api_p99": quantiles.per_second_quantile(api, epoch, series_len, 0.99),
            "e2e_p50": quantiles.per_second_quantile(e2e, epoch, series_len, 0.5),
            "e2e_p99": quantiles.per_second_quantile(e2e, epoch, series_len, 0.99),
            "backlog": backlog_by_second,
        },
        "measured": measured,
    }


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


def pad(values: list[int], n: int) -> list[int]:
    return values + [0] * (n - len(values))


def verdict(cell: Cell, result: dict[str, Any]) -> dict[str, Any]:
    measured = result["measured"]
    checks = [
        {
            "check": str(c),
            "metric": c.metric,
            "measured": measured.get(c.metric),
            "passed": c.holds(measured.get(c.metric)),
        }
        for c in cell.scenario.checks_for(cell.pipeline)
    ]
    # A cell that sent nothing, whose load generator failed, or that never drained proves nothing.
    preconditions = [
        {"check": "attempted > 0", "metric": "attempted", "measured": measured["attempted"],
         "passed": bool(measured["attempted"])},
        {"check": "load generator exit code == 0", "metric": "locust_exit_code",
         "measured": result["locust_exit_code"], "passed": result["locust_exit_code"] == 0},
        {"check": "drained within drain_timeout", "metric": "drained", "measured": result["timings"]["drained"],
         "passed": bool(result["timings"]["drained"])},
    ]  # fmt: skip
    return {"passed": all(c["passed"] for c in preconditions + checks), "checks": preconditions + checks}
