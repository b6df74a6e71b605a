"""`bench up` / `bench down` on the real stack: readiness, clean teardown, no orphans, clear port errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from facts import topology
from harness.supervisor import listener_pid, port_in_use
from tests import stackclient as sc

pytestmark = [pytest.mark.stack, pytest.mark.own_stack]

BENCH = [sys.executable, "-m", "harness.cli"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = dict(os.environ, SYNC_ASYNC_BENCH_STATE=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    yield e
    # Whatever a test did, leave no stack for the next one.
    subprocess.run([*BENCH, "down"], env=e, capture_output=True, timeout=120)


def busy_ports() -> dict[int, str]:
    return {p: what for p, what in topology.listening_ports().items() if port_in_use(p)}


def wait_ports_free(timeout: float = 30.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    busy = busy_ports()
    while busy and time.monotonic() < deadline:
        time.sleep(0.5)
        busy = busy_ports()
    return busy


def start_foreground(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*BENCH, "up", "--foreground", "--pipeline", "sync"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            return proc
    proc.wait(timeout=30)
    pytest.fail("bench up --foreground did not come up:\n" + "".join(lines))


def test_up_then_down_leaves_nothing(env: dict[str, str]) -> None:
    assert busy_ports() == {}, "ports busy before the test"
    up = subprocess.run(
        [*BENCH, "up", "--pipeline", "sync", "--tracing", "0.1"], env=env, capture_output=True, text=True, timeout=300
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert "tracing        10% of reactions" in up.stdout
    answer = sc.post_reactions(1)[0]
    assert answer.status == 200, answer
    # the services run with the tracing asked for (the default, every reaction, passes no flag)
    for name in topology.SERVICES:
        pid = listener_pid(topology.SCRAPE_TARGETS[name])
        assert pid is not None and " --trace-sample-ratio 0.1" in " ".join(psutil.Process(pid).cmdline()), name
    down = subprocess.run([*BENCH, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0
    for name in ("reaction", "notification", "pushsink", "kafka", "toxiproxy", "prometheus"):
        assert name in down.stdout
    assert wait_ports_free() == {}


def test_ctrl_c_stops_everything(env: dict[str, str]) -> None:
    proc = start_foreground(env)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0
    assert wait_ports_free() == {}


def test_killed_harness_leaves_no_orphans(env: dict[str, str]) -> None:
    proc = start_foreground(env)
    proc.kill()  # SIGKILL: no teardown code runs; the kernel's parent-death signal must do it
    proc.wait(timeout=30)
    assert wait_ports_free() == {}


def test_taken_port_is_named_and_nothing_is_left_running(env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((topology.HOST, topology.PUSHSINK_HTTP_PORT))
        squatter.listen()
        up = subprocess.run([*BENCH, "up"], env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 1
        assert f"port {topology.HOST}:{topology.PUSHSINK_HTTP_PORT}" in up.stderr
        assert "'pushsink'" in up.stderr
    # With the squatter gone, every port must be free: what started before the failure was stopped.
    assert wait_ports_free() == {}
