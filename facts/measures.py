"""The metric vocabulary: every measured value a hypothesis, a claim, a threshold or a report
names, with its unit and how it is shown to people.

A cell's result (harness/result.py) answers every name here from the one place it stores the
figure; a test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["count", "ratio", "rate", "seconds", "flag"]
NO_VALUE = "\N{EN DASH}"  # shown where nothing was measured

# The Jepsen-style ledger of a cell (harness/ledger.py), in table order.
LEDGER_COUNTS = (
    "attempted", "acknowledged", "failed", "unknown", "delivered", "redeliveries", "lost", "unexpected",
    "recovered", "dead_lettered",
)  # fmt: skip
LATENCY_STATS = ("p50", "p90", "p99", "p999", "max", "mean")
# The critical path of a traced reaction, hop by hop (harness/traces.py).
TRACE_HOPS = ("handler", "grpc_call", "produce", "broker_wait", "delivery")
# Control windows inside a cell (harness/windows.py): before/at a surge, before/inside the faults.
WINDOWS = ("calm", "peak", "prefault", "fault")
WINDOW_TEXT = {
    "calm": "before the surge (after the warm-up)",
    "peak": "at the surge's peak rate",
    "prefault": "before the first fault (after the warm-up)",
    "fault": "inside the fault windows",
}


@dataclass(frozen=True)
class Measure:
    name: str
    unit: Unit
    text: str
    checkable: bool = True  # may a scenario hypothesis check it (its own verdict may not)
    flag_words: tuple[str, str] = ("no", "yes")  # how a flag's 0 and 1 read


def _measures() -> tuple[Measure, ...]:
    out = [Measure(n, "count", f"reaction ids: {n.replace('_', ' ')}") for n in LEDGER_COUNTS]
    out += [
        Measure("error_ratio", "ratio", "(failed + unknown) / attempted"),
        Measure("ack_ratio", "ratio", "acknowledged / attempted"),
        Measure("delivered_ratio", "ratio", "delivered / attempted"),
        Measure("missed_arrivals", "count", "arrivals the load generator could not start (in-flight cap)"),
        Measure("loadgen.lag_p99", "seconds", "load generator schedule lag (intended -> actual start), p99"),
        Measure("loadgen.lag_max", "seconds", "load generator schedule lag, max"),
        Measure("loadgen.bound", "flag", "the load generator fell behind (1): the cell measured it, not the pipeline"),
        Measure("achieved_rate", "rate", "attempted / load seconds"),
    ]
    for hop, what in (
        ("api", "API latency from the intended start"),
        ("e2e", "reaction accepted -> first delivery"),
        ("ack_to_delivery", "the client's 2xx -> first delivery (acknowledged and delivered)"),
    ):
        out += [Measure(f"{hop}.{s}", "seconds", f"{what}, {s}") for s in LATENCY_STATS]
    for w, where in WINDOW_TEXT.items():
        out += [
            Measure(f"{w}.error_ratio", "ratio", f"(failed + unknown) / attempted, {where}"),
            Measure(f"{w}.api.p99", "seconds", f"API latency p99, {where}"),
            Measure(f"{w}.ack_to_delivery.p99", "seconds", f"2xx -> first delivery p99 of the requests sent {where}"),
        ]
    out += [
        Measure("peak_backlog", "count", "largest Kafka backlog sampled (records)"),
        Measure("drain_seconds", "seconds", "planned end of the load -> last first delivery"),
        Measure("rate.target_mean", "rate", "the profile's mean rate"),
        Measure("rate.target_peak", "rate", "the profile's peak rate"),
        Measure("fault.attempted", "count", "requests started inside fault windows"),
        Measure("fault.ack_ratio", "ratio", "acknowledged ratio inside fault windows"),
        Measure("fault.api_p99_max", "seconds", "highest per-second API p99 inside fault windows"),
        Measure("fault.error_seconds", "seconds", "first fault's start -> end of the last second with an error"),
        Measure(
            "fault.e2e_p99_max",
            "seconds",
            "highest per-second end-to-end p99 from the first fault on, by delivery second",
        ),
        Measure("replicas", "count", "notification replicas the cell ran on (harness/replicas.py)"),
        Measure(
            "memory.growing",
            "count",
            "processes whose RSS grew past the limit over the cell, not by design (harness/limits/memory.yaml)",
        ),
        Measure("trace.completeness", "ratio", "delivered reactions whose trace connects the API request to the push"),
        Measure("trace.traces_per_reaction", "count", "traces a person opens to follow one reaction, p50"),
        Measure("trace.spans_per_reaction", "count", "spans in the traces of one reaction, p50"),
        *(Measure(f"trace.{hop}.p50", "seconds", f"critical path: {hop.replace('_', ' ')}, p50") for hop in TRACE_HOPS),
        Measure("hypothesis.passed", "flag", "the cell's hypothesis held (1) or not (0)", False, ("FAIL", "pass")),
    ]
    return tuple(out)


MEASURES: tuple[Measure, ...] = _measures()
BY_NAME: dict[str, Measure] = {m.name: m for m in MEASURES}
NAMES: tuple[str, ...] = tuple(BY_NAME)
CHECKABLE: tuple[str, ...] = tuple(m.name for m in MEASURES if m.checkable)


def unit(name: str) -> Unit:
    return BY_NAME[name].unit


def fmt_seconds(value: float) -> str:
    if abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def fmt(name: str, value: float | None) -> str:
    """A value for people: 3.2 ms, 1.25 s, 0.4 %, 98/s, 1464, pass."""
    if value is None:
        return NO_VALUE
    measure = BY_NAME.get(name)
    u = measure.unit if measure else "count"
    if u == "seconds":
        return fmt_seconds(value)
    if u == "ratio":
        return f"{value * 100:.3g} %" if value else "0 %"
    if u == "rate":
        return f"{value:.4g}/s"
    if u == "flag" and measure:
        return measure.flag_words[bool(value)]
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"
