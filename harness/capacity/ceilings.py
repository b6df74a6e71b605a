"""What each pipeline is built on, measured bare on the same machine: the ceilings `bench capacity`
divides its capacities by. Here, what a ceiling is and what the measurements share; each kind is
measured in its own module: HTTP (`wrk`) in ceilings_http.py, the bare gRPC loops in
ceilings_grpc.py, Kafka's own tools and the bare aiokafka loops in ceilings_kafka.py. Every
measurement is bounded in time and leaves nothing running.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid

from pydantic import BaseModel, ConfigDict

from facts.lifetime import dying_with_this_process
from protos import reaction_pb2


class Ceiling(BaseModel):
    """One bare measurement: `value` per second of `what`, by `tool`."""

    model_config = ConfigDict(extra="forbid")

    name: str  # e.g. "http.wrk.post.async", "grpc.notify", "kafka.produce.aiokafka"
    tool: str
    what: str
    per_second: float | None  # None: the measurement failed (see `error`)
    count: int = 0
    seconds: float = 0.0
    errors: int = 0
    cpu_seconds_per_1000: float | None = None  # of the measuring tool itself, when known
    wakeups_per_request: float | None = None  # the tool's sleeps (voluntary switches) per request, when known
    detail: str = ""
    error: str | None = None

    def rate_and_cpu(self) -> tuple[float, float] | None:
        """(per second, CPU seconds per 1,000 requests) of a run that gave both; None when it failed
        or its tool's CPU is not known."""
        if self.per_second is None or self.cpu_seconds_per_1000 is None:
            return None
        return self.per_second, self.cpu_seconds_per_1000

    def detail_line(self) -> str:
        """`detail` on one line, for a table row or a sentence: it may quote a tool's output."""
        return " ".join(self.detail.split())


def sample_event() -> reaction_pb2.ReactionEvent:
    """A ReactionEvent as the reaction service builds it (uuid id, post-<k>, user-<k>)."""
    return reaction_pb2.ReactionEvent(
        reaction_id=str(uuid.uuid4()),
        post_id="post-123",
        user_id="user-1234",
        kind=reaction_pb2.LOVE,
        created_unix_nanos=time.time_ns(),
    )


def failed(name: str, tool: str, what: str, error: BaseException | str) -> Ceiling:
    return Ceiling(name=name, tool=tool, what=what, per_second=None, error=str(error) or type(error).__name__)


def run_with_rusage(cmd: list[str], timeout: float) -> tuple[int, str, float, int]:
    """(exit code, stdout+stderr, CPU seconds of the child, its voluntary switches); killed at `timeout`."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=dying_with_this_process()
        )
        deadline = time.monotonic() + timeout
        reaped = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    reaped = True
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    reaped = True
                    break
                time.sleep(0.05)
        finally:  # interrupted (Ctrl-C, SIGTERM made KeyboardInterrupt): the tool never outlives the wait
            if not reaped:
                proc.kill()
                os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return proc.returncode, text, usage.ru_utime + usage.ru_stime, usage.ru_nvcsw
