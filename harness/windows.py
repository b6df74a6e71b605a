"""Control windows inside one cell: the seconds before a surge or a fault, against the seconds of it.

A claim that an effect comes from a surge or a fault compares the seconds of the surge (or fault)
with the seconds before it in the same cell: same pipeline, same stack, same faults otherwise, so
nothing but the effect under test differs. The first WARMUP_SECONDS are in no control window
(connections and JIT-free Python caches still warming).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from facts import quantiles
from harness.intervals import Request
from harness.result import FaultWindow, LatencySummary, Windows, WindowStats, seconds_inside

WARMUP_SECONDS = 2
SURGE_FACTOR = 2.0  # a profile surges when its peak rate is at least this multiple of its lowest


def latency_summary(values: Iterable[float]) -> LatencySummary:
    s = quantiles.summary(values)
    count = int(s.pop("count") or 0)
    return LatencySummary(**s, count=count)


def surge_seconds(rate_at: Callable[[float], float], load_seconds: float) -> tuple[set[int], set[int]]:
    """(calm, peak) seconds of a surging profile: peak = at least 90 % of the highest rate, calm = the
    seconds before the first peak second after the warm-up. Both empty when the profile does not surge."""
    n = max(1, int(load_seconds + 0.999))
    rates = [rate_at(i + 0.5) for i in range(n)]
    top, low = max(rates), min(rates)
    if top <= 0 or top < SURGE_FACTOR * low:
        return set(), set()
    peak = {i for i, r in enumerate(rates) if r >= 0.9 * top}
    first = min(peak)
    return set(range(WARMUP_SECONDS, first)), peak


def fault_seconds(faults: Sequence[FaultWindow]) -> tuple[set[int], set[int]]:
    """(before, inside): the seconds before the first fault took effect (after the warm-up), and the
    seconds whose middle falls inside an actual fault window."""
    spans = [s for f in faults if (s := f.actual()) is not None]
    if not spans:
        return set(), set()
    inside = seconds_inside(faults)
    first = min(start for start, _ in spans)
    return {i for i in range(WARMUP_SECONDS, int(first)) if i + 1 <= first}, inside


def window_stats(requests: Sequence[Request], seconds: set[int]) -> WindowStats | None:
    """The requests intended in `seconds`; None for an empty window: a control that has no seconds
    cannot control anything."""
    if not seconds:
        return None
    inside = [r for r in requests if int(r.t) in seconds]
    return WindowStats(
        seconds=len(seconds),
        attempted=len(inside),
        errors=sum(1 for r in inside if not r.ok),
        api=latency_summary(r.api for r in inside if r.api is not None),
        ack_to_delivery=latency_summary(r.ack_to_delivery for r in inside if r.ack_to_delivery is not None),
    )


def windows(
    requests: Sequence[Request],
    rate_at: Callable[[float], float],
    load_seconds: float,
    faults: Sequence[FaultWindow],
) -> Windows:
    calm, peak = surge_seconds(rate_at, load_seconds)
    before, inside = fault_seconds(faults)
    return Windows(
        calm=window_stats(requests, calm),
        peak=window_stats(requests, peak),
        prefault=window_stats(requests, before),
        fault=window_stats(requests, inside),
    )
