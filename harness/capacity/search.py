"""The search over steps: double until a step breaks, bisect, replay the rate found (no stack here)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from pydantic import Field

from harness.capacity.config import ALL_LIMITS, Model, SearchSettings
from harness.capacity.cpu import NOT_THE_PIPELINE
from harness.capacity.step import Step, Verdict


class SearchResult(Model):
    """The highest rate that held under `limits`, and the lowest that did not, with why."""

    limits: list[str]
    rate: float | None  # None: not even the lowest rate tried held
    broke_at: float | None  # None: the search's max_rate held
    bound: Literal["pipeline", "generator", "search-limit"]
    reasons: list[str]
    busiest: str | None = None  # the component with the most CPU at broke_at
    cpu_cores_at_break: dict[str, float] = Field(default_factory=dict)
    tried: list[float] = Field(default_factory=list)  # rates in the order this search judged them
    confirmed: int = 0  # replays `rate` held beyond its first play
    unconfirmed: list[float] = Field(default_factory=list)  # rates that held, then broke on a replay
    # The search's own rate, when plays of a later search over the same rates broke at or below it
    # (`held_on_every_play`); None: the search's rate stands.
    lowered_from: float | None = None

    def summary(self) -> str:
        held = "nothing held" if self.rate is None else f"{self.rate:.0f}/s"
        if self.confirmed:
            held += f" (held again on {self.confirmed} replay{'s' if self.confirmed > 1 else ''})"
        elif self.lowered_from is not None and self.rate is not None:
            held += " (not replayed)"
        if self.lowered_from is not None:
            held += f" (the search found {self.lowered_from:.0f}/s; later plays broke at or below it)"
        if self.unconfirmed:
            held += f"; {', '.join(f'{r:.0f}' for r in self.unconfirmed)}/s held, then broke on a replay"
        if self.bound == "search-limit":
            return f"{held} (at least: the search stops at {self.broke_at or self.rate:.0f}/s)"
        cpu = ", ".join(f"{n} {c:.2f}" for n, c in sorted(self.cpu_cores_at_break.items(), key=lambda kv: -kv[1]))
        kind = "GENERATOR-BOUND at" if self.bound == "generator" else "broke at"
        return f"{held}; {kind} {self.broke_at:.0f}/s: {'; '.join(self.reasons)}" + (f" [cores: {cpu}]" if cpu else "")


def busiest(cores: Mapping[str, float], exclude: Iterable[str] = NOT_THE_PIPELINE) -> str | None:
    skip = set(exclude)
    stack = {n: c for n, c in cores.items() if n not in skip}
    return max(stack, key=lambda n: stack[n]) if stack else None


def search(
    measure: Callable[[float], Step], limits: Sequence[str], s: SearchSettings,
    replay: Callable[[float], Step] | None = None,
) -> SearchResult:  # fmt: skip
    """Double from `start_rate` until a step does not hold (or `max_rate`), then bisect between the
    last rate that held and the first that did not, until they are `resolution` (relative) or
    `min_step` (absolute) apart. Then the rate found is played `confirm` times more (`replay`, never
    memoized): near the boundary one window can hold by luck, so a rate that breaks on a replay is
    not sustainable, and the search goes on below it. `measure` may be memoized (searches over
    other limits reuse steps); without a `replay` it plays the replays, so it must not be then."""
    tried: list[float] = []
    held_once: dict[float, Step] = {}  # every rate that held when the search played it
    play_again = replay or measure

    def step(rate: float) -> tuple[Step, Verdict]:
        tried.append(rate)
        st = measure(rate)
        v = st.verdict(limits)
        if v == "held":
            held_once[rate] = st
        return st, v

    held: Step | None = None
    broke: Step | None = None
    rate = s.start_rate
    while True:
        st, v = step(rate)
        if v != "held":
            broke = st
            break
        held = st
        if rate >= s.max_rate:
            break
        rate = min(rate * 2, s.max_rate)
    unconfirmed: list[float] = []

    def drop(rate: float) -> Step | None:
        """`rate` held once and broke when played again: the boundary lies below it. The highest
        rate below that held (played again in its turn) is where the search goes on from."""
        unconfirmed.append(rate)
        del held_once[rate]
        below = [r for r in held_once if r < rate]
        return held_once[max(below)] if below else None

    if broke is None:
        assert held is not None
        broke = _replays_break(held, limits, s.confirm, play_again, tried)
        if broke is None:
            return SearchResult(limits=list(limits), rate=held.rate, broke_at=None, bound="search-limit",
                                reasons=[f"held up to the search's max_rate {s.max_rate:g}/s"], tried=tried,
                                confirmed=s.confirm)  # fmt: skip
        held = drop(held.rate)
    while True:
        lo = held.rate if held is not None else 0.0
        hi = broke.rate
        while hi - lo > max(s.resolution * lo, s.min_step):
            mid = float(round((lo + hi) / 2))
            if mid <= lo or mid >= hi:
                break
            st, v = step(mid)
            if v == "held":
                held, lo = st, mid
            else:
                broke, hi = st, mid
        again = _replays_break(held, limits, s.confirm, play_again, tried)
        if held is None or again is None:
            break
        broke, held = again, drop(held.rate)
    return SearchResult(
        limits=list(limits),
        rate=held.rate if held is not None else None,
        broke_at=broke.rate,
        bound="generator" if broke.verdict(limits) == "generator-bound" else "pipeline",
        reasons=broke.why(limits),
        busiest=busiest(broke.cpu_cores),
        cpu_cores_at_break=dict(broke.cpu_cores),
        tried=tried,
        confirmed=s.confirm if held is not None else 0,
        unconfirmed=unconfirmed,
    )


def held_on_every_play(capacity: SearchResult, acceptance: SearchResult, plays: Sequence[Step]) -> SearchResult:
    """Async's capacity after its acceptance search, which plays more of the same rates (replays) on a
    subset of the limits (API p99 and errors). A capacity is a rate whose every play, in either search,
    held every limit. When a play at or below the full search's rate broke (near the boundary one
    window can hold by luck), the capacity becomes the highest rate at or below both the search's and
    the acceptance's whose every play held; where it broke and why are those of the lowest rate above
    it with a play that did not. Without such a play the search's result stands."""
    if capacity.rate is None:
        return capacity
    by_rate: dict[float, list[Step]] = {}
    for st in plays:
        by_rate.setdefault(st.rate, []).append(st)

    def sustained(rate: float) -> bool:
        return all(st.verdict(ALL_LIMITS) == "held" for st in by_rate[rate])

    top = capacity.rate if acceptance.rate is None else min(capacity.rate, acceptance.rate)
    rate = max((r for r in by_rate if r <= top and sustained(r)), default=None)
    against = [r for r in by_rate if (rate is None or r > rate) and r <= capacity.rate and not sustained(r)]
    if not against:
        return capacity
    broke_at = min(against)
    broke = next(st for st in by_rate[broke_at] if st.verdict(ALL_LIMITS) != "held")
    held_then_broke = {
        r for r, sts in by_rate.items() if not sustained(r) and any(st.verdict(ALL_LIMITS) == "held" for st in sts)
    }
    return capacity.model_copy(update={
        "rate": rate,
        "broke_at": broke_at,
        "bound": "generator" if broke.verdict(ALL_LIMITS) == "generator-bound" else "pipeline",
        "reasons": broke.why(ALL_LIMITS),
        "busiest": busiest(broke.cpu_cores),
        "cpu_cores_at_break": dict(broke.cpu_cores),
        "confirmed": sum(1 for st in by_rate[rate] if st.replay) if rate is not None else 0,
        "unconfirmed": sorted({*capacity.unconfirmed, *held_then_broke}),
        "lowered_from": capacity.rate,
    })  # fmt: skip


def _replays_break(
    held: Step | None, limits: Sequence[str], times: int, replay: Callable[[float], Step], tried: list[float]
) -> Step | None:
    """The first of `times` replays of `held`'s rate that did not hold, or None if all held."""
    if held is None:
        return None
    for _ in range(times):
        tried.append(held.rate)
        st = replay(held.rate)
        if st.verdict(limits) != "held":
            return st
    return None
