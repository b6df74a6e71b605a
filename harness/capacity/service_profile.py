"""Where each service's CPU goes under load: py-spy samples the three services while wrk drives the POST.

    .venv/bin/bench up --pipeline sync
    .venv/bin/python -m harness.capacity.service_profile --seconds 20 --out /tmp/profile
    .venv/bin/bench down

Against a running stack, `wrk` sends the reaction service's POST as fast as it answers (a closed
loop, 16 connections by default), and `py-spy record --nonblocking` samples each service over the
same window without pausing it (py-spy reads other processes' memory: root, or ptrace allowed by
kernel.yama.ptrace_scope; with notification replicas, the first is sampled). py-spy shows Python
frames only: time in C (uvloop, grpc's core, sockets) is counted at the Python frame that called
it, the event loop's run or a thread's: the "native" layer. Each service's samples are shared out
by the layer of the innermost frame (`LAYERS`; a stack without a Python frame, a thread only C
code runs, is native) and, since a layer's work calls into others, also inclusively (`INCLUSIVE`):
the samples with our code (targets/, protos/) above the event loop's or a thread's run, and those
with OpenTelemetry above our innermost frame (what tracing costs at the stack's sampling ratio,
its wrappers around our handlers, traced or not, left out). Prints one table; `--out` keeps
py-spy's raw stacks per service (collapsed stacks: flamegraph.pl or speedscope) and profile.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from facts import topology
from facts.lifetime import dying_with_this_process
from harness import measured_tracing, provision, supervisor
from harness.capacity import ceilings, ceilings_http
from harness.stack import Tracing
from harness.text_table import text_table

ROOT = Path(__file__).resolve().parents[2]
OURS = tuple(str(ROOT / d) + "/" for d in ("targets", "protos"))
# A leaf frame's layer: the first whose marker is in its file's path.
LIBRARIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OpenTelemetry", ("/opentelemetry/",)),
    ("gRPC", ("/grpc/", "/google/protobuf/")),
    ("aiohttp", ("/aiohttp/", "/yarl/", "/multidict/", "/aiosignal/", "/propcache/", "/frozenlist/")),
    ("aiokafka", ("/aiokafka/",)),
    ("prometheus_client", ("/prometheus_client/",)),
)
# Frames that stand for the C code they called: the event loop's run (uvloop's callbacks and I/O,
# grpc's core polled from it) and a thread's run (a thread in C). Other functions of these files
# (an Event.set, a call_soon) are the standard library's.
NATIVE = {
    "asyncio/runners.py": ("Runner.run", "run"),
    "asyncio/base_events.py": (
        "BaseEventLoop.run_forever",
        "BaseEventLoop.run_until_complete",
        "BaseEventLoop._run_once",
    ),
    "threading.py": ("Thread.run", "Thread._bootstrap_inner", "Thread._bootstrap"),
}
LAYERS = ("ours", *(name for name, _ in LIBRARIES), "native", "standard library", "other")
INCLUSIVE = ("ours", "OpenTelemetry")  # also counted with what they call


def frame_parts(frame: str) -> tuple[str, str]:
    """(file, function) of one py-spy frame, `function (file:line)`, as `layer` takes them; ('', '')
    for one without."""
    if not frame.endswith(")") or " (" not in frame:
        return "", ""
    cut = frame.index(" (")  # a function name has no space, a path may
    where = frame[cut + 2 : -1]
    return where.rsplit(":", 1)[0] if ":" in where else where, frame[:cut]


def layer(path: str, function: str = "") -> str:
    """The layer of a frame: its file's, or native for a loop's or a thread's run."""
    if path.startswith(OURS):
        return "ours"
    for name, markers in LIBRARIES:
        if any(m in path for m in markers):
            return name
    if any(path.endswith("/" + f) and function in runs for f, runs in NATIVE.items()):
        return "native"
    if ("/lib/python3" in path and "/site-packages/" not in path) or path.startswith("<frozen"):
        return "standard library"
    return "other"


@dataclass
class Profile:
    """One service's samples, by the innermost frame's layer and inclusively (`INCLUSIVE`)."""

    service: str
    tracing: str  # as harness/measured_tracing.py reads it: "off", or the share of reactions traced
    samples: int = 0
    by_layer: dict[str, int] = field(default_factory=dict)
    inclusive: dict[str, int] = field(default_factory=dict)

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


def _above(layers: list[str], name: str) -> list[str]:
    """The layers above the innermost `name` (all of them without one)."""
    return layers[len(layers) - layers[::-1].index(name) :] if name in layers else layers


def read_raw(service: str, path: Path, tracing: str) -> Profile:
    """A py-spy `--format raw` file (one `frame;frame;... count` line per stack), folded by layer."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            raise ValueError(f"{path}:{number}: not a py-spy raw stack line ('frame;frame;... count'): {line[:80]!r}")
        # No frame at all: a thread that never ran Python (a C library's own), all native.
        layers = [layer(*frame_parts(f)) for f in stack.split(";")] if stack else ["native"]
        leaf[layers[-1]] += int(count)
        # Below the innermost loop's or thread's run is how the process started (our __main__ is
        # under every sample of its main thread): only what runs above it counts.
        above = _above(layers, "native")
        if "ours" in above:
            inclusive["ours"] += int(count)
        # OpenTelemetry's wrappers (the gRPC interceptor, the server middleware) sit under our handlers
        # whether the request is traced or not: only what runs above our innermost frame is its work.
        if "OpenTelemetry" in _above(above, "ours"):
            inclusive["OpenTelemetry"] += int(count)
    return Profile(
        service, tracing, sum(leaf.values()), {n: leaf[n] for n in LAYERS}, {n: inclusive[n] for n in INCLUSIVE}
    )


def service_pids() -> dict[str, int]:
    """Each service's pid, found by the port it serves HTTP (or its metrics) on."""
    pids = {}
    for name in topology.SERVICES:
        port = topology.SCRAPE_TARGETS[name]
        pid = supervisor.listener_pid(port)
        if pid is None:
            raise RuntimeError(
                f"no process listens on {topology.addr(port)} ({name}), or not one of this user's: "
                "start the stack with `bench up`"
            )
        pids[name] = pid
    return pids


def tracing_setting(pid: int) -> str:
    """The tracing a service was started with, read back from its command line."""
    return Tracing.from_argv(psutil.Process(pid).cmdline()).setting


def py_spy() -> Path:
    """The venv's py-spy, the version pyproject.toml pins (another on PATH only without it)."""
    ours = Path(sys.executable).with_name("py-spy")
    found = ours if ours.exists() else Path(shutil.which("py-spy") or ours)
    if not found.exists():
        raise RuntimeError("py-spy is not installed: `make venv` installs it (pyproject.toml)")
    return found


def _record(spy: Path, pid: int, seconds: float, rate: int, to: Path) -> subprocess.Popen[str]:
    cmd = [str(spy), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
           "--nonblocking", "--full-filenames", "--format", "raw", "--output", str(to)]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=dying_with_this_process()
    )


def profile(seconds: float, rate: int, connections: int, out: Path) -> tuple[list[Profile], ceilings.Ceiling]:
    """wrk on the POST for `seconds` + 2, py-spy on every service over the middle `seconds`."""
    pids, spy, wrk_bin = service_pids(), py_spy(), provision.locate().wrk
    out.mkdir(parents=True, exist_ok=True)
    done: list[ceilings.Ceiling] = []
    load = threading.Thread(
        target=lambda: done.append(
            ceilings_http.wrk(
                wrk_bin, "http.wrk.post", ceilings_http.POST_PATH, seconds + 2, post=True, connections=connections
            )
        ),
        daemon=True,
    )
    load.start()
    time.sleep(1.0)  # wrk connected and the services busy before sampling starts
    spies: dict[str, subprocess.Popen[str]] = {}
    failures = []
    try:
        for name, pid in pids.items():  # in the try: one failing to start stops those started before it
            spies[name] = _record(spy, pid, seconds, rate, out / f"{name}.txt")
        for name, proc in spies.items():
            text, _ = proc.communicate(timeout=seconds + 60)
            if proc.returncode != 0 or not (out / f"{name}.txt").exists():
                failures.append(f"py-spy on {name} (pid {pids[name]}) exited {proc.returncode}: {text.strip()[-300:]}")
    finally:  # none left sampling after an error or Ctrl-C
        for proc in spies.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    load.join(timeout=seconds + 60)
    if failures:
        raise RuntimeError("; ".join(failures))
    if not done or done[0].per_second is None:
        raise RuntimeError(f"wrk on the POST failed: {done[0].error if done else 'it did not finish'}")
    return [read_raw(name, out / f"{name}.txt", tracing_setting(pid)) for name, pid in pids.items()], done[0]


def table(profiles: list[Profile]) -> str:
    heads = ["service", "tracing", "samples", *LAYERS, *(f"{n} inclusive" for n in INCLUSIVE)]
    rows = [
        [p.service, measured_tracing.words(p.tracing), str(p.samples),
         *(f"{p.share(p.by_layer[n]):.0%}" for n in LAYERS), *(f"{p.share(p.inclusive[n]):.0%}" for n in INCLUSIVE)]
        for p in profiles
    ]  # fmt: skip
    return text_table([heads, *rows], numbers_right=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.capacity.service_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="the sampled window (wrk runs 2 s longer)")
    p.add_argument("--rate", type=int, default=100, help="py-spy's samples per second")
    p.add_argument("--connections", type=int, default=16, help="wrk's connections (closed loop)")
    p.add_argument("--out", type=Path, help="keep py-spy's raw stacks and profile.json here")
    args = p.parse_args(argv)
    if args.seconds < 1 or args.rate < 1 or args.connections < 1:
        p.error("--seconds, --rate and --connections must be at least 1")
    with tempfile.TemporaryDirectory(prefix="service-profile-") as tmp:
        out = args.out or Path(tmp)
        try:
            with supervisor.terminating_signals():  # SIGTERM too stops py-spy and wrk on the way out
                profiles, wrk = profile(args.seconds, args.rate, args.connections, out)
        except KeyboardInterrupt:
            print("\nservice_profile: interrupted; py-spy and wrk stopped", file=sys.stderr)
            return 130
        except (RuntimeError, ValueError, provision.ProvisionError, subprocess.TimeoutExpired) as e:
            print(f"service_profile: {e}", file=sys.stderr)
            return 1
        print(f"wrk POST {ceilings_http.POST_PATH}: {wrk.per_second or 0:,.0f}/s ({wrk.what}); py-spy at {args.rate}/s")
        print(table(profiles))
        if args.out:
            figures = {"wrk": wrk.model_dump(), "profiles": [asdict(x) for x in profiles]}
            (out / "profile.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
            print(f"written: {out}/<service>.txt (py-spy raw stacks) and {out / 'profile.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
