"""The HTTP ceilings: `wrk` (closed loop, keep-alive) on the reaction service's GET /healthz and
its POST, at its max or, as the load generator's control, paced to the generator's rate."""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facts import topology
from harness.capacity.ceilings import Ceiling, failed, run_with_rusage

POST_PATH = topology.REACTIONS_PATH.format(post_id="post-1")
POST_BODY = '{"user_id": "user-1", "kind": "love"}'

_WRK_POST_LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def parse_wrk(text: str) -> tuple[int, float, int]:
    """(requests, seconds, errors) from wrk's summary; errors = non-2xx/3xx + socket errors."""
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not m:
        raise ValueError(f"no summary in wrk's output: {text.strip()[-300:]!r}")
    seconds = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
    errors = 0
    if e := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(e.group(1))
    if e := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(g) for g in e.groups())
    return int(m.group(1)), seconds, errors


WRK_CONNECTIONS = 64  # wrk at its max (closed loop)

# wrk's delay(): milliseconds a connection waits before each request, its first included (an
# integer: wrk truncates). Uniformly random, so the connections drift apart and their requests
# arrive spread out as an open loop's do, not in lockstep bursts that one wakeup would serve.
_WRK_PACE_LUA = """function delay() return math.random(0, {span_ms}) end
"""
PACE_MEAN_DELAY_SECONDS = 0.1  # paced: each connection's mean wait before a request
PACE_MAX_CONNECTIONS = 1000  # more would meet the usual limit of 1,024 open files
REPLAY_TOLERANCE = 0.05  # a paced run further than this off its rate is played once more, recalibrated


@dataclass(frozen=True)
class Pace:
    """wrk paced to `rate`: each connection, a closed loop whose answers take `latency` seconds, waits
    a random 0..span ms before each request, on average PACE_MEAN_DELAY_SECONDS (so a run of a few
    seconds is not mostly the first waits), and there are as many connections as that takes."""

    rate: float
    latency: float

    def connections(self) -> int:
        if not (0 < self.rate < math.inf and 0 <= self.latency < math.inf):
            raise ValueError(f"cannot pace wrk to {self.rate}/s with answers taking {self.latency} s")
        # rounded first: 1000 x (0.2 + 0.1) is 300.00000000000006 in floating point, not a 301st connection
        needed = max(1, math.ceil(round(self.rate * (self.latency + PACE_MEAN_DELAY_SECONDS), 6)))
        if needed > PACE_MAX_CONNECTIONS:
            raise ValueError(
                f"cannot pace wrk to {self.rate:.0f}/s with answers taking {self.latency * 1000:.0f} ms: "
                f"it would take {needed} connections (at most {PACE_MAX_CONNECTIONS})"
            )
        return needed

    def span_ms(self) -> int:
        """The longest delay: twice the mean wait that, with the answer's time, makes each cycle
        connections/rate long."""
        return round(2 * (self.connections() / self.rate - self.latency) * 1000)


def wrk(
    wrk_bin: Path, name: str, path: str, seconds: float, *, post: bool, connections: int = WRK_CONNECTIONS,
    threads: int = 1, pace: Pace | None = None,
) -> Ceiling:  # fmt: skip
    """`wrk` on `path` for `seconds`: a closed loop as fast as the server answers, or paced (`pace`
    sets the connections then)."""
    try:
        span = None if pace is None else pace.span_ms()
        connections = connections if pace is None else pace.connections()
    except ValueError as e:
        return failed(name, "wrk", f"{'POST' if post else 'GET'} {path}, paced", e)
    what = f"{'POST' if post else 'GET'} {path}, closed loop, {threads} thread(s) x {connections} connections"
    lua = _WRK_POST_LUA.format(body=POST_BODY) if post else ""
    if pace is not None:
        what += f", paced to about {pace.rate:.0f}/s (each waits 0-{span} ms before each request)"
        lua += _WRK_PACE_LUA.format(span_ms=span)
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        cmd = [str(wrk_bin), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        if lua:
            script = Path(tmp) / "script.lua"
            script.write_text(lua)
            cmd += ["-s", str(script)]
        cmd.append(topology.url(topology.REACTION_HTTP_PORT, path))
        try:
            code, text, cpu, sleeps = run_with_rusage(cmd, timeout=seconds + 30)
            if code != 0:
                raise RuntimeError(f"wrk exited {code}: {text.strip()[-300:]}")
            count, took, errors = parse_wrk(text)
            if count == 0:
                raise RuntimeError("wrk completed no request")
        except (OSError, RuntimeError, ValueError) as e:
            return failed(name, "wrk", what, e)
    good = count - errors
    return Ceiling(
        name=name,
        tool="wrk",
        what=what,
        per_second=good / took if took > 0 else None,
        count=count,
        seconds=took,
        errors=errors,
        cpu_seconds_per_1000=cpu / count * 1000 if count else None,
        wakeups_per_request=sleeps / count if count else None,
    )


def wrk_paced(wrk_bin: Path, name: str, path: str, seconds: float, *, post: bool, pace: Pace) -> Ceiling:
    """wrk paced to `pace.rate`: the control for an open loop at that rate (wrk's cost per request is
    lowest at its max, when the server is saturated and its connections wait on it together). The
    answers' time it is calibrated with is the open loop's, which near capacity includes queueing a
    closed loop does not see: a run that missed the rate by more than REPLAY_TOLERANCE is played
    once more with wrk's own answer time, from the rate it achieved, and the closer of the two kept."""
    first = wrk(wrk_bin, name, path, seconds, post=post, pace=pace)
    achieved = first.per_second
    if achieved is None or achieved <= 0 or _off(achieved, pace.rate) <= REPLAY_TOLERANCE:
        return first
    own = Pace(pace.rate, max(0.0, pace.connections() / achieved - pace.span_ms() / 2000))  # less the mean delay
    again = wrk(wrk_bin, name, path, seconds, post=post, pace=own)
    if again.per_second is None or _off(again.per_second, pace.rate) >= _off(achieved, pace.rate):
        first.detail = f"kept over a replay with wrk's own answer time ({_rate_or_error(again)})"
        return first
    again.detail = (
        f"played twice: paced with answers of {pace.latency * 1000:.1f} ms it achieved {achieved:.0f}/s; "
        f"wrk's own answers took {own.latency * 1000:.1f} ms"
    )
    return again


def _off(rate: float, target: float) -> float:
    return abs(rate / target - 1)


def _rate_or_error(c: Ceiling) -> str:
    return (c.error or "") if c.per_second is None else f"{c.per_second:.0f}/s"
