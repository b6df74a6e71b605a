"""The load generator as a child process: Locust headless with the open-loop locustfile."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facts import topology
from facts.lifetime import die_with_parent
from facts.paths import REPO
from loadtests.loadgen_metrics import RUN_START_METRIC
from loadtests.outcome import SUMMARY_GLOB, OutcomeRecord, read_outcomes
from loadtests.profile import Profile, SteadyProfile, to_yaml
from loadtests.reaction import REACTIONS
from loadtests.settings import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    DEFAULT_SEED,
    DEFAULT_WAKE_INTERVAL_SECONDS,
)

LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
# What one load run leaves in its folder (a cell's, a capacity step's): the profile Locust played,
# the generator's own files (outcomes, series, summaries), and Locust's log.
PROFILE_FILE, OUT_DIR, LOG_FILE = "profile.yaml", "loadgen", "locust.log"


def steady(name: str, rate: float, seconds: float, description: str) -> SteadyProfile:
    """A steady profile built in code: a capacity step's, a generator measure's."""
    return SteadyProfile(kind="steady", name=name, rate=rate, duration=seconds, description=description)


@dataclass
class LoadRun:
    profile: str
    duration: float  # seconds of load (the profile compressed or stretched to it)
    out_dir: Path
    seed: int = DEFAULT_SEED
    processes: int = 1
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    nice: int = 0  # scheduling priority (harness/limits/generator.yaml); below 0 needs root
    wake_interval: float = DEFAULT_WAKE_INTERVAL_SECONDS  # seconds between its wakeups at most (ditto)
    endpoint: str = REACTIONS  # or HEALTHZ: the generator measured on the cheapest answer
    log: Path = Path(os.devnull)  # Locust's output (in_folder: the folder's LOG_FILE)

    @classmethod
    def in_folder(cls, folder: Path, profile: Profile, **options: Any) -> LoadRun:
        """The run of `profile` with all its files in `folder` (a cell's, a capacity step's, a
        generator measure's): the profile as played, the generator's own files and Locust's log."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PROFILE_FILE).write_text(to_yaml(profile))
        return cls(str(folder / PROFILE_FILE), profile.duration, folder / OUT_DIR, log=folder / LOG_FILE, **options)

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", topology.url(topology.REACTION_HTTP_PORT),
            "--load-profile", self.profile, "--duration", f"{self.duration:g}",
            "--seed", str(self.seed), "--request-timeout", f"{self.request_timeout:g}",
            "--max-in-flight", str(self.max_in_flight), "--wake-interval", f"{self.wake_interval:g}",
            "--outcomes-dir", str(self.out_dir), "--csv", str(self.out_dir / "locust"),
            # The profile's shape ends the run (--run-time would only start after it). Failed
            # requests are what chaos runs measure, not a reason for Locust to exit non-zero.
            "--exit-code-on-error", "0", "--loglevel", "WARNING", "--only-summary",
        ]  # fmt: skip
        if self.processes > 1:
            cmd += ["--processes", str(self.processes)]
        if self.endpoint != REACTIONS:
            cmd += ["--endpoint", self.endpoint]
        return cmd

    def start(self) -> subprocess.Popen[bytes]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            # Its own session: Ctrl-C reaches the harness, which stops Locust in order; and the
            # parent-death signal: a harness killed outright takes Locust (and its workers) along.
            return subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=functools.partial(self._in_child, os.getpid()),
            )

    def _in_child(self, parent: int) -> None:
        die_with_parent(parent)
        if self.nice:
            # Its own session is its own autogroup (Linux's sched_autogroup): the scheduler shares
            # the CPU between autogroups first, so the nice that counts against the stack's
            # processes is the group's; the process's own only ranks it within the group. Not
            # root: the default priority, and the schedule lag shows whether that was enough.
            with contextlib.suppress(OSError):
                Path("/proc/self/autogroup").write_text(str(self.nice))
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, 0, self.nice)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
        """SIGTERM the master (it stops its workers and writes its outcomes), then kill the group."""
        try:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
        finally:  # even when a second Ctrl-C cuts the grace short
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a master that did not stop
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    @staticmethod
    def epoch(timeout: float, alive: Callable[[], bool]) -> float | None:
        """The load's time zero (Unix seconds) as Locust plans it, read from its /metrics."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"^{RUN_START_METRIC} (\S+)$", re.MULTILINE)
        while time.monotonic() < deadline and alive():
            with contextlib.suppress(OSError, ValueError):
                # Locust is our child, so it is local whatever the runtime.
                with urllib.request.urlopen(
                    topology.url(topology.LOADGEN_METRICS_PORT, topology.METRICS_PATH), timeout=1
                ) as r:
                    m = pattern.search(r.read().decode())
                if m and float(m.group(1)) > 0:
                    return float(m.group(1))
            time.sleep(0.05)
        return None

    def outcomes(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in read_outcomes(self.out_dir)]

    def iter_outcomes(self) -> Iterator[OutcomeRecord]:
        """Every record, streamed (nothing held): what the ledger and the cost figures read."""
        return read_outcomes(self.out_dir)

    def summaries(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.out_dir.glob(SUMMARY_GLOB))]
