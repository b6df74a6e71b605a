"""harness.supervisor's readiness with trivial components: no ports, no stack."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.supervisor import ComponentSpec, StartError, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    s = Supervisor(tmp_path / "logs")
    try:
        yield s
    finally:
        s.stop_all()


def flag_spec(flag: Path, argv: list[str] = SLEEPER, ready_timeout: float = 60.0) -> ComponentSpec:
    """Ready once `flag` exists: the test decides when, no clock involved."""
    return ComponentSpec("sleeper", argv, [], ready=flag.exists, ready_timeout=ready_timeout)


def test_poll_ready_is_false_while_starting_then_true(sup: Supervisor, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    sup.start(flag_spec(flag), wait=False)  # returns although not ready
    assert sup.is_alive("sleeper")
    assert sup.poll_ready("sleeper") is False
    assert sup.poll_ready("sleeper") is False
    flag.touch()
    assert sup.poll_ready("sleeper") is True
    flag.unlink()
    assert sup.poll_ready("sleeper") is True, "ready since its latest start: not probed again"


def test_a_new_start_without_waiting_is_probed_afresh(sup: Supervisor, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    flag.touch()
    first = sup.start(flag_spec(flag))  # wait=True: ready already
    flag.unlink()
    sup.stop("sleeper")
    second = sup.start(flag_spec(flag), wait=False)
    assert second.pid != first.pid and sup.is_alive("sleeper")
    assert sup.poll_ready("sleeper") is False, "the new start is probed afresh"
    flag.touch()
    assert sup.poll_ready("sleeper") is True


def test_poll_ready_raises_when_the_process_exited(sup: Supervisor, tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom on start', flush=True); sys.exit(3)"]
    sup.start(flag_spec(tmp_path / "never", argv), wait=False)
    # False while it still runs; the only way out of the loop is the StartError.
    with pytest.raises(StartError, match=r"(?s)sleeper exited with code 3 while starting; log .*boom on start"):
        while not sup.poll_ready("sleeper"):
            time.sleep(0.05)
    assert "sleeper" not in sup.running
    with pytest.raises(StartError, match="'sleeper' is not running"):
        sup.poll_ready("sleeper")


def test_poll_ready_raises_and_stops_it_after_the_ready_timeout(sup: Supervisor, tmp_path: Path) -> None:
    r = sup.start(flag_spec(tmp_path / "never", ready_timeout=0), wait=False)
    with pytest.raises(StartError, match=r"sleeper not ready after 0s; log .*sleeper\.log"):
        sup.poll_ready("sleeper")
    assert "sleeper" not in sup.running and not psutil.pid_exists(r.pid), "stopped, and reaped"


def test_start_waits_on_the_same_poll(sup: Supervisor, tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.exit(4)"]
    with pytest.raises(StartError, match="sleeper exited with code 4 while starting"):
        sup.start(flag_spec(tmp_path / "never", argv))
    with pytest.raises(StartError, match="sleeper not ready after 0s"):
        sup.start(flag_spec(tmp_path / "never", ready_timeout=0))
    assert sup.running == {}


def test_a_stack_restart_starts_from_a_fresh_spec_without_waiting(tmp_path: Path) -> None:
    # The reaction service's readiness remembers its first answer: reusing it after a kill would
    # call a restarted service ready before its transport is.
    from harness.stack import Stack

    started: list[tuple[ComponentSpec, bool]] = []

    class FakeSupervisor:
        def stop(self, name: str) -> None:
            pass

        def start(self, spec: ComponentSpec, wait: bool = True) -> None:
            started.append((spec, wait))

    stack = Stack(tmp_path, "sync")
    stack.sup = FakeSupervisor()  # type: ignore[assignment]
    stack.restart("reaction")
    stack.restart("reaction")
    (first, wait1), (second, wait2) = started
    assert first.name == second.name == "reaction" and not wait1 and not wait2
    assert first.ready is not second.ready
    assert "sync" in " ".join(first.argv)


@pytest.mark.parametrize("count", [1, 3])
def test_use_tracing_restarts_every_notification_replica(
    tmp_path: Path, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All three services restart with the new flags, every replica included; with HAProxy in front,
    the reaction service starts only once HAProxy sees every replica UP again, and in every case once
    the consumer group holds every replica's consumer and nothing else."""
    from harness import kafka_admin
    from harness.replicas import HAPROXY, Replicas
    from harness.stack import Stack, Tracing

    events: list[str] = []
    balancer_probes = iter([False, False, True])
    group_probes = iter([False, True])

    def group_settled(members: int) -> bool:
        events.append(f"probe group of {members}")
        return next(group_probes)

    monkeypatch.setattr(kafka_admin, "group_settled", group_settled)

    def balancer_ready() -> bool:
        events.append("probe haproxy")
        return next(balancer_probes)

    class FakeSupervisor:
        def __init__(self) -> None:
            self.specs = {HAPROXY: ComponentSpec(HAPROXY, ["haproxy"], [], ready=balancer_ready, ready_timeout=5)}
            self.argv: dict[str, list[str]] = {}

        def stop(self, name: str) -> None:
            events.append(f"stop {name}")

        def start(self, spec: ComponentSpec, wait: bool = True) -> None:
            assert wait, f"{spec.name}: a restart for new flags waits until it is ready"
            events.append(f"start {spec.name}")
            self.argv[spec.name] = spec.argv

    stack = Stack(tmp_path, "sync", replicas=Replicas.of(count))
    sup = FakeSupervisor()
    stack.sup = sup  # type: ignore[assignment]
    stack.use_tracing(Tracing(enabled=False))

    notifications = ["notification"] + [f"notification-{n}" for n in range(2, count + 1)]
    probes = ["probe haproxy"] * 3 if count > 1 else []
    assert events == [
        "stop reaction",
        *(f"stop {n}" for n in reversed(notifications)),
        "stop pushsink",
        "start pushsink",
        *(f"start {n}" for n in notifications),
        *probes,
        f"probe group of {count}",
        f"probe group of {count}",
        "start reaction",
    ]
    assert set(sup.argv) == {"pushsink", "reaction", *notifications}
    for name, argv in sup.argv.items():
        assert argv[-2:] == ["--tracing", "off"], name
    assert stack.tracing == Tracing(enabled=False)


def test_ctrl_c_stops_a_harness_started_with_sigint_ignored() -> None:
    """A script's background job inherits SIGINT ignored; `bench up --foreground` must still stop on it."""
    code = (
        "import sys, time\n"
        "from harness import supervisor\n"
        "try:\n"
        "    with supervisor.terminating_signals():\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(42)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 42


HELPED = """\
import os, subprocess, sys, time

# A helper of its own in another session, as Kafka's or Locust's may start.
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
with open(sys.argv[1] + ".partial", "w") as f:
    f.write(str(helper.pid))
os.rename(sys.argv[1] + ".partial", sys.argv[1])  # whole when it appears: the readiness probe reads it
time.sleep(120)
"""


def _count_signals(monkeypatch: pytest.MonkeyPatch, groups: dict[int, int]) -> list[tuple[int, int]]:
    """(pid, signal) in the order each of `groups`' processes (pid -> its group) is sent one, through
    its group or by itself."""
    sent: list[tuple[int, int]] = []
    real_killpg, real_send = os.killpg, psutil.Process.send_signal

    def killpg(pgid: int, sig: int) -> None:
        sent.extend((p, sig) for p, g in groups.items() if g == pgid)
        real_killpg(pgid, sig)

    def send_signal(self: psutil.Process, sig: int) -> None:
        sent.append((self.pid, sig))
        real_send(self, sig)

    monkeypatch.setattr(os, "killpg", killpg)
    monkeypatch.setattr(psutil.Process, "send_signal", send_signal)
    return sent


def _each_once(sent: list[tuple[int, int]], pids: tuple[int, ...], *sigs: int) -> bool:
    """Each of `pids` got each of `sigs` exactly once, in that order, and nothing else."""
    return sorted(sent) == sorted((p, s) for p in pids for s in sigs) and all(
        [s for q, s in sent if q == p] == list(sigs) for p in pids
    )


def test_stopping_a_component_sends_each_of_its_processes_one_sigterm(
    sup: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why once matters: terminate_group's comment. Whether a second SIGTERM lands after the service
    removed its handler is a race, so the signals are counted as sent, not as felt."""
    pid_file = tmp_path / "helper.pid"
    sup.start(ComponentSpec("helped", [sys.executable, "-c", HELPED, str(pid_file)], [], ready=pid_file.exists))
    component, helper = sup.running["helped"].pid, int(pid_file.read_text())
    groups = {p: os.getpgid(p) for p in (component, helper)}
    assert groups[helper] != groups[component]
    sent = _count_signals(monkeypatch, groups)
    sup.stop("helped")
    # SIGCONT first (a paused process cannot act on SIGTERM), then SIGTERM, each once; no SIGKILL: the
    # helper, an orphan once the component is gone, is gone as a zombie
    assert _each_once(sent, (component, helper), signal.SIGCONT, signal.SIGTERM), sent


def test_a_zombie_that_is_not_our_child_counts_as_gone() -> None:
    """`bench down` stops the detached `bench up`'s orphans: one that exited stays a zombie until PID 1
    reaps it (never, in a container without an init), and waiting for it to go would wait the grace out."""
    from harness.supervisor import _wait_gone

    parent_code = (  # starts a child and never reaps it: the child, once it exits, is a zombie not ours
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'pass'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        while child.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.05)
        assert _wait_gone([child], timeout=60) == []
    finally:
        parent.kill()
        parent.wait()


# A component that leaves a child behind in its process group: it writes the child's pid once the
# child is ready, then exits when told to (the test's flag file). The child never learns its parent
# died (no death signal of its own); on SIGTERM it writes its own flag file and exits, as a service
# shuts down.
LEAVES_A_CHILD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[3], sys.argv[1]], start_new_session=sys.argv[4] == "own")
while not os.path.exists(sys.argv[1] + ".handled"):  # its SIGTERM handler is in place
    time.sleep(0.05)
with open(sys.argv[1] + ".partial", "w") as f:
    f.write(str(child.pid))
os.rename(sys.argv[1] + ".partial", sys.argv[1])
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
"""
SHUTS_DOWN_ON_SIGTERM = """
import signal, sys, time
def term(*_):
    open(sys.argv[1] + ".term", "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
open(sys.argv[1] + ".handled", "w").close()
time.sleep(120)
"""


def _left_behind(
    sup: Supervisor, tmp_path: Path, reaped: bool, own_session: bool = False
) -> tuple[int, psutil.Process, Path]:
    """Start such a component and let its leader exit: (leader pid, the child left, the child's SIGTERM
    flag). `own_session`: the child left the component's group (a session of its own)."""
    pid_file, exit_flag = tmp_path / "child.pid", tmp_path / "exit"
    argv = [sys.executable, "-c", LEAVES_A_CHILD, str(pid_file), str(exit_flag), SHUTS_DOWN_ON_SIGTERM]
    argv.append("own" if own_session else "group")
    leader = sup.start(ComponentSpec("leaves", argv, [], ready=pid_file.exists)).pid
    child = psutil.Process(int(pid_file.read_text()))
    assert (os.getpgid(child.pid) == leader) != own_session
    exit_flag.touch()
    if reaped:
        os.waitpid(leader, 0)
    else:
        deadline = time.monotonic() + 60
        while psutil.Process(leader).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the leader did not exit"
            time.sleep(0.05)
    return leader, child, Path(str(pid_file) + ".term")


@pytest.mark.parametrize("reaped", [False, True], ids=["leader-a-zombie", "leader-reaped"])
def test_stopping_a_component_whose_leader_is_gone_stops_what_it_left_in_its_group(
    sup: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reaped: bool
) -> None:
    leader, child, term_flag = _left_behind(sup, tmp_path, reaped)
    child.suspend()  # paused (a chaos pause): it can act on SIGTERM only once continued
    try:
        sent = _count_signals(monkeypatch, {child.pid: leader})
        sup.stop("leaves", grace=10)
        assert not _still_running(child), "the child the component left in its group outlived the stop"
        assert term_flag.exists(), "the child did not shut down on SIGTERM (paused through the grace: SIGKILLed)"
        assert _each_once(sent, (child.pid,), signal.SIGCONT, signal.SIGTERM), sent
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


def test_what_left_the_group_before_its_leader_died_is_still_the_components(sup: Supervisor, tmp_path: Path) -> None:
    """A fault signal and the stop reach it by the start's token: through the group they would not."""
    _, child, term_flag = _left_behind(sup, tmp_path, reaped=True, own_session=True)
    try:
        sup.signal("leaves", signal.SIGSTOP)  # a chaos pause
        deadline = time.monotonic() + 60
        while child.status() != psutil.STATUS_STOPPED:
            assert time.monotonic() < deadline, "the pause did not reach the process that left the group"
            time.sleep(0.05)
        sup.stop("leaves", grace=10)
        assert not _still_running(child) and term_flag.exists()
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


def test_a_group_left_behind_without_the_components_token_is_not_ours(sup: Supervisor, tmp_path: Path) -> None:
    """Once a group is empty its number may name another's group: only the token tells ours."""
    from harness.supervisor import terminate_group

    _, child, _ = _left_behind(sup, tmp_path, reaped=True)
    try:
        r = sup.running["leaves"]
        terminate_group(dataclasses.replace(r, token="another start's"), grace=1)
        assert _still_running(child), "a process of the same group number but not of this start was stopped"
        sup.stop("leaves")
        assert not _still_running(child)
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


def test_a_state_file_from_before_the_token_loads_and_takes_nothing_left_behind(
    sup: Supervisor, tmp_path: Path
) -> None:
    """`bench down` after an upgrade: the old state file has no token; its leader gone, nothing of the
    group is taken for its own."""
    from harness.supervisor import stop_from_state

    _, child, _ = _left_behind(sup, tmp_path, reaped=True)
    try:
        old = {k: v for k, v in dataclasses.asdict(sup.running["leaves"]).items() if k != "token"}
        state = tmp_path / "state.json"
        state.write_text(json.dumps({"components": [old]}))
        assert stop_from_state(state) == ["leaves"] and not state.exists()
        assert _still_running(child)
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _still_running(p: psutil.Process) -> bool:
    """A zombie is stopped: an orphan's waits for PID 1 to reap it."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_state_file_a_newer_version_wrote_is_read_and_stopped(tmp_path: Path) -> None:
    from harness.supervisor import stop_from_state

    state = tmp_path / "stack.json"
    up = Supervisor(tmp_path / "logs", state_file=state, detached=True)
    flag = tmp_path / "ready"
    flag.touch()
    sleeper = psutil.Process(up.start(flag_spec(flag)).pid)
    data = json.loads(state.read_text())
    data["components"][0]["cgroup"] = "/bench/sleeper"  # a field this version does not know
    state.write_text(json.dumps(data))
    try:
        assert stop_from_state(state) == ["sleeper"] and not state.exists()
        assert not _still_running(sleeper)
    finally:
        up.stop_all()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not a state file of `bench up` (JSONDecodeError"),
        ('{"stack": []}', "not a state file of `bench up` (KeyError"),
        ('{"components": [{"name": "kafka"}]}', "components[0]: "),
        ('{"components": [{"name": "kafka", "pid": 0, "argv": [], "ports": [], "log": "", "create_time": 1.0}]}',
         "components[0]: pid 0 is not a process id"),
    ],
)  # fmt: skip
def test_bench_down_names_the_state_file_it_cannot_read_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    from harness import cli

    monkeypatch.setenv("SYNC_ASYNC_BENCH_STATE", str(tmp_path))
    state = tmp_path / "stack.json"
    state.write_text(text)
    assert cli.main(["down"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"bench down: {state}: ") and says in err, err
    assert state.read_text() == text


def test_a_second_ctrl_c_while_stopping_still_stops_every_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import supervisor

    state = tmp_path / "state.json"
    sup = Supervisor(tmp_path / "logs", state_file=state)
    pids = [sup.start(dataclasses.replace(flag_spec(tmp_path), name=n)).pid for n in ("first", "second")]
    real = supervisor.terminate_group
    graces: list[float] = []

    def interrupted_once(r: supervisor.Running, grace: float = 10.0) -> None:
        graces.append(grace)
        if len(graces) == 1:  # the Ctrl-C lands in the first stop's grace, its process still running
            raise KeyboardInterrupt
        real(r, grace)

    monkeypatch.setattr(supervisor, "terminate_group", interrupted_once)
    with pytest.raises(KeyboardInterrupt):  # passed on once the stop is done
        sup.stop_all()
    assert graces == [10.0, 0, 10.0]  # the interrupted one again without grace, then the next as usual
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert sup.running == {} and not state.exists()


def test_a_child_whose_start_is_interrupted_before_it_is_recorded_is_stopped(
    sup: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    real = psutil.Process

    def interrupted(pid: int) -> psutil.Process:
        started.append(pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(psutil, "Process", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sup.start(flag_spec(tmp_path))
    monkeypatch.setattr(psutil, "Process", real)
    assert len(started) == 1 and not psutil.pid_exists(started[0])  # killed and reaped
    assert "sleeper" not in sup.running


def test_a_tool_run_whole_answers_like_subprocess_run() -> None:
    from harness.supervisor import run_whole

    done = run_whole(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    with pytest.raises(FileNotFoundError):
        run_whole(["/nonexistent/tool"], timeout=30)


def test_a_tool_past_its_timeout_is_stopped_with_what_it_forked(tmp_path: Path) -> None:
    # subprocess.run would kill `sh` alone, and its background sleep (a go compile, a dpkg) ran on.
    from harness.supervisor import run_whole

    pid_file = tmp_path / "forked"
    with pytest.raises(subprocess.TimeoutExpired):
        run_whole(["sh", "-c", f"sleep 120 & echo $! > {pid_file}; wait"], timeout=3, grace=1)
    forked = int(pid_file.read_text())
    assert not psutil.pid_exists(forked) or psutil.Process(forked).status() == psutil.STATUS_ZOMBIE
