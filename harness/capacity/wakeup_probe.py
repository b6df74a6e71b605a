"""What one wakeup costs on this machine, now: a gevent loop that only sleeps, in a process of its own.

An open-loop generator sleeps until its next arrival and wakes again for each answer: 1.1-2.2
wakeups per request on the development VM, where `wrk`'s 64 connections wait on the server
together and its thread sleeps about once every 3 requests. There a wakeup costs tens of
microseconds of CPU whatever the process does once awake (a loop that does nothing but
`gevent.sleep(0.001)`: 40-65 us per wakeup on an idle machine, 20-30 us beside a CPU-bound process
on the same core, 37-56 us beside the generator and the stack), so at moderate rates the wakeups,
not the requests, are most of an open-loop generator's CPU. `harness.capacity.generator_cost` runs this
probe beside the generator, over the same window, and takes the wakeups beyond `wrk`'s off the
generator's CPU per request at the probe's price. That price is an estimate either way: a probe
wakeup runs a whole `gevent.sleep` (a timer, two greenlet switches), an answer's wakeup a callback,
but the generator's touches more memory.

    python -m harness.capacity.wakeup_probe --seconds 5 --hz 500 [--start-at UNIX]   # one JSON line
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

from facts.lifetime import dying_with_this_process

DEFAULT_HZ = 500.0


@dataclass(frozen=True)
class WakeupCost:
    wakeups: int
    cpu_seconds: float

    @property
    def seconds_per_wakeup(self) -> float | None:
        return self.cpu_seconds / self.wakeups if self.wakeups else None


def start(seconds: float, hz: float = DEFAULT_HZ, at: float | None = None) -> subprocess.Popen[str]:
    """The probe, measuring for `seconds` from Unix time `at` (started early, so its own start-up is
    over by then) or from as soon as it is up: `result()` its answer."""
    when = [] if at is None else ["--start-at", repr(at)]
    return subprocess.Popen(
        [sys.executable, "-m", "harness.capacity.wakeup_probe", "--seconds", str(seconds), "--hz", str(hz), *when],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, preexec_fn=dying_with_this_process(),
    )  # fmt: skip


def result(proc: subprocess.Popen[str], timeout: float = 30.0) -> WakeupCost | None:
    """The probe's figures; None if it failed (the caller then reports no split, not a wrong one)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        return None
    if proc.returncode != 0 or not out.strip():
        return None
    data = json.loads(out.strip().splitlines()[-1])
    return WakeupCost(int(data["wakeups"]), float(data["cpu_seconds"]))


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill the probe if it still runs, and reap it (nothing when `result` already did)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def probe(seconds: float, hz: float, start_at: float | None = None) -> WakeupCost:
    import gevent  # only in the probe's own process

    gap = 1.0 / hz
    gevent.sleep(0.1)  # the loop's first iteration (imports, allocation) is not a wakeup's cost
    if start_at is not None:
        gevent.sleep(max(0.0, start_at - time.time()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        gevent.sleep(gap)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return WakeupCost(after.ru_nvcsw - before.ru_nvcsw, cpu)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.capacity.wakeup_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--hz", type=float, default=DEFAULT_HZ, help="wakeups per second asked for")
    p.add_argument("--start-at", type=float, help="Unix time to start measuring at (default: at once)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.hz <= 0:
        p.error("--seconds and --hz must be positive")
    cost = probe(args.seconds, args.hz, args.start_at)
    print(json.dumps({"wakeups": cost.wakeups, "cpu_seconds": round(cost.cpu_seconds, 6)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
