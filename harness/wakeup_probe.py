"""What one wakeup costs on this machine, now: a gevent loop that only sleeps, in a process of its own.

An open-loop generator sleeps until its next arrival and wakes again for each answer: about two
wakeups per request at a few hundred requests per second, where `wrk` (closed loop, every
connection always busy) hardly sleeps at all. On the development VM a wakeup costs tens of
microseconds of CPU whatever the process does once awake (a loop that does nothing but
`gevent.sleep(0.001)`: 40-65 us per wakeup on an idle machine, 20-30 us on a busy one), so the
wakeups, not the requests, are most of an open-loop generator's CPU at moderate rates.
`harness.generator_cost` runs this probe beside the generator, over the same window, and
subtracts the wakeups' share from the generator's CPU per request: what is left is its work per
request, which is what compares with `wrk`'s. The probe's wakeups touch less memory than the
generator's, so the share subtracted is if anything too small and the work left too large.

    python -m harness.wakeup_probe --seconds 5 --hz 500    # one JSON line: wakeups, cpu_seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

from harness.supervisor import set_pdeathsig

DEFAULT_HZ = 500.0


@dataclass(frozen=True)
class WakeupCost:
    wakeups: int
    cpu_seconds: float

    @property
    def seconds_per_wakeup(self) -> float | None:
        return self.cpu_seconds / self.wakeups if self.wakeups else None


def start(seconds: float, hz: float = DEFAULT_HZ) -> subprocess.Popen[str]:
    """The probe, running for `seconds` from now: `result()` its answer."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness.wakeup_probe", "--seconds", str(seconds), "--hz", str(hz)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, preexec_fn=set_pdeathsig,
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


def probe(seconds: float, hz: float) -> WakeupCost:
    import gevent  # only in the probe's own process

    gap = 1.0 / hz
    gevent.sleep(0.1)  # the loop's first iteration (imports, allocation) is not a wakeup's cost
    before = resource.getrusage(resource.RUSAGE_SELF)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        gevent.sleep(gap)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return WakeupCost(after.ru_nvcsw - before.ru_nvcsw, cpu)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.wakeup_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--hz", type=float, default=DEFAULT_HZ, help="wakeups per second asked for")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.hz <= 0:
        p.error("--seconds and --hz must be positive")
    cost = probe(args.seconds, args.hz)
    print(json.dumps({"wakeups": cost.wakeups, "cpu_seconds": round(cost.cpu_seconds, 6)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
