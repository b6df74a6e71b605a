"""Process supervision: start with readiness probes, stop whole process groups, leave nothing behind.

Each component runs in its own session (process group), so a stop reaches every process it
forked; what it left behind once its leader is gone carries its start's token (terminate_group).
Attached children also get PR_SET_PDEATHSIG=SIGKILL: if the harness itself dies (kill -9, crash)
the kernel kills them, so no orphan outlives it. `bench up` starts detached components instead and
records them in a state file for `bench down`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import psutil

from facts import topology
from facts.lifetime import dying_with_this_process
from facts.probe import Pending

COMPONENT_TOKEN = "SAB_COMPONENT_TOKEN"


class StartError(RuntimeError):
    pass


@dataclass(frozen=True)
class Port:
    port: int
    what: str  # e.g. "kafka PRODUCE listener"


@dataclass
class ComponentSpec:
    name: str
    argv: list[str]
    ports: list[Port]
    ready: Callable[[], bool]
    ready_timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class Running:
    name: str
    pid: int
    argv: list[str]
    ports: list[int]
    log: str
    create_time: float
    # In the component's environment (COMPONENT_TOKEN), so inherited by what it starts: how a stop
    # knows a process of its group is ours once the leader is gone. "": a state file from before it.
    token: str = ""


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((topology.HOST, port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def listener_pid(port: int) -> int | None:
    """The pid listening on TCP `port`, None when nothing does (or it cannot be told)."""
    with contextlib.suppress(psutil.Error):
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                return int(c.pid)
    return None


def port_owner(port: int) -> str:
    """Who listens on `port`, as 'pid N (name)', or 'an unknown process'."""
    if (pid := listener_pid(port)) is not None:
        with contextlib.suppress(psutil.Error):
            return f"pid {pid} ({' '.join(psutil.Process(pid).cmdline()[:3])})"
    return "an unknown process"


def check_ports_free(spec: ComponentSpec) -> None:
    for p in spec.ports:
        if port_in_use(p.port):
            raise StartError(
                f"port {topology.HOST}:{p.port} ({p.what}), wanted by component {spec.name!r}, "
                f"is already in use by {port_owner(p.port)}; stop it (or `bench down`) and retry"
            )


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _alive(r: Running) -> psutil.Process | None:
    """The process if it is still the one we started (pids get reused)."""
    try:
        p = psutil.Process(r.pid)
        if abs(p.create_time() - r.create_time) < 1.0 and p.status() != psutil.STATUS_ZOMBIE:
            return p
    except psutil.Error:
        pass
    return None


def terminate_group(r: Running, grace: float = 10.0) -> None:
    """SIGTERM the component's processes, then SIGKILL what is left after `grace` seconds (SIGCONT first:
    a paused process cannot act on SIGTERM). Each process gets each signal once (`_signal`). A component
    whose leader is gone is still stopped: what it left behind would hold its ports."""
    members, by_group = _members(r)
    if not members:
        return
    _signal(r, members, signal.SIGCONT, by_group)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        # Never twice: a service removes its SIGTERM handler once it starts shutting down
        # (targets/runtime.py), and a second SIGTERM then kills it half-way (no LeaveGroup, no flush).
        # SIGKILL through the group only while a member is still in it: an empty group's number may be
        # another's by then.
        _signal(r, members, sig, by_group and any(_in_group(m, r.pid) for m in members))
        members = _wait_gone(members, grace if sig == signal.SIGTERM else 5)
        if not members:
            break
    # Reap our own child so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(r.pid, os.WNOHANG)


def _members(r: Running) -> tuple[list[psutil.Process], bool]:
    """The component's processes, and whether to signal them through its group: while its leader runs,
    the leader and every descendant (through the group, pid == pgid: each component leads its own
    session); once it is gone (exited, or a zombie), every process that carries this start's token and
    their descendants, one by one: a group's number is free for reuse once its members are gone."""
    leader = _alive(r)
    found = [leader] if leader is not None else _left_behind(r)
    every = {p.pid: p for p in found}
    for p in found:
        with contextlib.suppress(psutil.Error):
            every.update((c.pid, c) for c in p.children(recursive=True))
    return list(every.values()), leader is not None


def _signal(r: Running, members: list[psutil.Process], sig: int, by_group: bool) -> None:
    """`sig` to each of `members` once: through the group when `by_group`, then each member outside
    it by itself."""
    if by_group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(r.pid, sig)
    for m in members:
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if not (by_group and _in_group(m, r.pid)):
                m.send_signal(sig)


def _in_group(p: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(p.pid) == pgid
    except OSError:
        return False


def _left_behind(r: Running) -> list[psutil.Process]:
    """What a start whose leader is gone left running: the processes carrying its token in their
    environment (random per start: never another's), in its group or not. A state file from before
    the token has none, and nothing is taken for its."""
    if not r.token:
        return []
    left = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if p.pid != r.pid and _running(p) and p.environ().get(COMPONENT_TOKEN) == r.token:
                left.append(p)
    return left


def _wait_gone(members: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those still running after up to `timeout` seconds. A zombie is gone: an orphan's waits for
    PID 1 to reap it (seconds here, never in a container without an init), our child's for us."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [m for m in members if _running(m)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Supervisor:
    """Starts components in order and stops them in reverse; the state file lists what runs."""

    def __init__(self, log_dir: Path, state_file: Path | None = None, detached: bool = False) -> None:
        self.log_dir = log_dir
        self.state_file = state_file
        self.detached = detached
        self.running: dict[str, Running] = {}
        self.specs: dict[str, ComponentSpec] = {}
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        # Components started but not yet seen ready -> their readiness probe and its ready_timeout.
        self._starting: dict[str, Pending] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def _save(self) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        data = {"components": [asdict(r) for r in self.running.values()]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)

    def start(self, spec: ComponentSpec, wait: bool = True) -> Running:
        """Start `spec`; with wait=False return at once and let the caller `poll_ready` it."""
        if spec.name in self.running and self.is_alive(spec.name):
            raise StartError(f"component {spec.name!r} is already running")
        check_ports_free(spec)
        log = self.log_dir / f"{spec.name}.log"
        token = secrets.token_hex(8)
        env = dict(os.environ, **spec.env, **{COMPONENT_TOKEN: token})
        with open(log, "ab") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(spec.argv)}\n".encode())
            out.flush()
            try:
                popen = subprocess.Popen(
                    spec.argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=spec.cwd,
                    env=env,
                    start_new_session=True,
                    preexec_fn=None if self.detached else dying_with_this_process(),
                )
            except OSError as e:
                raise StartError(f"cannot start {spec.name!r} ({spec.argv[0]}): {e}") from e
        try:
            created = psutil.Process(popen.pid).create_time()
            r = Running(spec.name, popen.pid, spec.argv, [p.port for p in spec.ports], str(log), created, token)
            self.running[spec.name] = r
            self.specs[spec.name] = spec
            self._popen[spec.name] = popen
            self._save()
        except BaseException:  # interrupted (or it died) before it was recorded: nothing else would stop it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            self.running.pop(spec.name, None)
            raise
        # Any exception of the probe is one failed probe: the ready_timeout decides.
        self._starting[spec.name] = Pending(spec.ready, spec.ready_timeout, spec.name, tolerate=(Exception,))
        if wait:
            self._wait_ready(spec.name)
        return r

    def poll_ready(self, name: str) -> bool:
        """One readiness probe of the component's latest start, without waiting: True once ready
        (and from then on), False while starting. Raises StartError, after stopping it, if it
        exited or its ready_timeout passed; also if it is not running at all."""
        starting = self._starting.get(name)
        if starting is None:
            if name in self.running:
                return True  # seen ready since its latest start; a later crash is no start failure
            raise StartError(f"component {name!r} is not running")
        log = Path(self.running[name].log)
        code = self._popen[name].poll()
        if code is not None:
            self.stop(name)
            raise StartError(f"{name} exited with code {code} while starting; log {log}:\n{_log_tail(log)}")
        try:
            ready = starting.poll()
        except TimeoutError:
            self.stop(name)
            raise StartError(f"{name} not ready after {starting.timeout:.0f}s; log {log}:\n{_log_tail(log)}") from None
        if ready:
            del self._starting[name]
        return ready

    def _wait_ready(self, name: str) -> None:
        while not self.poll_ready(name):
            time.sleep(0.2)

    def is_alive(self, name: str) -> bool:
        r = self.running.get(name)
        if r is None:
            return False
        popen = self._popen.get(name)
        if popen is not None:
            return popen.poll() is None
        return _alive(r) is not None

    def stop(self, name: str, grace: float = 10.0) -> None:
        self._starting.pop(name, None)
        r = self.running.get(name)
        if r is None:
            return
        terminate_group(r, grace)
        del self.running[name]  # only once stopped: an interrupted stop leaves it for stop_all or the state file
        popen = self._popen.pop(name, None)
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        self._save()

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Deliver a fault signal (SIGKILL, SIGSTOP, SIGCONT) to each of the component's processes once."""
        r = self.running.get(name)
        if r is None:
            raise StartError(f"component {name!r} is not running")
        members, by_group = _members(r)
        _signal(r, members, sig, by_group)
        if sig == signal.SIGKILL:
            popen = self._popen.get(name)
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=10)

    def stop_all(self) -> None:
        interrupted: KeyboardInterrupt | None = None
        for name in reversed(list(self.running)):
            try:
                self.stop(name)
            except KeyboardInterrupt as e:  # a second Ctrl-C during the grace: no grace, and the rest still stop
                interrupted = e
                self.stop(name, grace=0)
        if self.state_file is not None and not self.running:
            self.state_file.unlink(missing_ok=True)
        if interrupted is not None:
            raise interrupted


def run_whole(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None, grace: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """subprocess.run(capture_output=True, text=True) for a tool that forks (go build, apt-get and
    dpkg, Chromium): its own process group, dying with us; at the timeout, or interrupted, the whole
    group gets SIGTERM, then SIGKILL after `grace`, where subprocess.run kills only the process it
    started. Raises subprocess.TimeoutExpired as subprocess.run does."""
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd,
        start_new_session=True, preexec_fn=dying_with_this_process(),
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.communicate(timeout=wait)
                    break
            raise
        finally:  # what it forked and left running (a daemonized helper) goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def stop_from_state(state_file: Path) -> list[str]:
    """Stop what a detached `bench up` recorded; returns the names it stopped. A file it cannot read
    is a StartError naming it and what is wrong, before anything is stopped (and it is kept)."""
    if not state_file.exists():
        return []
    recorded = read_state(state_file)
    stopped = []
    for r in reversed(recorded):
        terminate_group(r)
        stopped.append(r.name)
    state_file.unlink(missing_ok=True)
    return stopped


def read_state(state_file: Path) -> list[Running]:
    """The components a state file records. Fields this version does not know (a newer one wrote it)
    are ignored; a field it needs that is missing or of the wrong kind is an error naming it."""
    try:
        data = json.loads(state_file.read_text())
        raws = data["components"]
        if not isinstance(raws, list):
            raise TypeError("components is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StartError(f"{state_file}: not a state file of `bench up` ({type(e).__name__}: {e})") from None
    known = {f.name for f in fields(Running)}
    recorded = []
    for i, raw in enumerate(raws):
        try:
            r = Running(**{k: v for k, v in raw.items() if k in known})
            if not isinstance(r.pid, int) or isinstance(r.pid, bool) or r.pid <= 1:
                raise TypeError(f"pid {r.pid!r} is not a process id")
            if not isinstance(r.create_time, int | float):
                raise TypeError(f"create_time {r.create_time!r} is not a time")
        except (TypeError, AttributeError) as e:
            raise StartError(f"{state_file}: components[{i}]: {e}") from None
        recorded.append(r)
    return recorded


@contextlib.contextmanager
def terminating_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `finally` teardown runs, as it does for Ctrl-C.
    Ctrl-C itself is set to raise too: a process started in the background of a script inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""

    def _raise(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
