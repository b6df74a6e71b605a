"""facts.lifetime: a child dies with its parent, even one that died before the child could ask."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from facts.paths import REPO
from harness.capacity import ceilings

ASK = "import os, sys; from facts.lifetime import die_with_parent; die_with_parent(int(sys.argv[1])); print('alive')"


def _ask(parent: int) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", ASK, str(parent)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=30)


def test_a_child_of_the_parent_it_names_lives_on() -> None:
    assert _ask(os.getpid()).stdout == "alive\n"


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    # Its parent is this test process, not the one it names: as if that one had died before the call.
    done = _ask(1)
    assert (done.returncode, done.stdout) == (1, "")


def test_a_child_started_with_it_is_killed_when_its_parent_dies(tmp_path: Path) -> None:
    # The parent (a Python process) starts a sleeper dying with it, writes its pid, then is killed.
    pid_file = tmp_path / "child"
    parent_code = (
        "import subprocess, sys, time; from facts.lifetime import dying_with_this_process; "
        f"p = subprocess.Popen(['sleep', '120'], preexec_fn=dying_with_this_process()); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=REPO)
    try:
        while not pid_file.exists() or not pid_file.read_text():
            assert parent.poll() is None
            time.sleep(0.05)
        child = psutil.Process(int(pid_file.read_text()))
        parent.kill()
        parent.wait()
        _, alive = psutil.wait_procs([child], timeout=20)  # the kernel's kill is immediate; 20 s is slack
        assert not alive, "the sleeper outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_an_interrupted_measure_leaves_no_tool_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "tool"

    def interrupt(_: float) -> None:
        if pid_file.exists() and pid_file.read_text():
            raise KeyboardInterrupt  # Ctrl-C (or SIGTERM made one) while wrk or a Kafka tool runs

    monkeypatch.setattr(ceilings.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        ceilings.run_with_rusage(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 120"], timeout=600)
    assert not psutil.pid_exists(int(pid_file.read_text()))  # killed and reaped
