"""harness.loadgen.LoadRun as a process: its folder (the profile Locust plays, its outputs and its
log all live there), its start and its stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness import loadgen
from harness.loadgen import LoadRun
from loadtests.profile import load_profile


def test_a_run_in_a_folder_writes_the_profile_it_plays_and_keeps_every_file_there(tmp_path: Path) -> None:
    folder = tmp_path / "cell"
    profile = loadgen.steady("step", 125, 7.5, "a step")
    load = LoadRun.in_folder(folder, profile, processes=2, nice=-3)
    assert load_profile(folder / loadgen.PROFILE_FILE) == profile  # what Locust reads is what was planned
    assert (load.out_dir, load.log) == (folder / loadgen.OUT_DIR, folder / loadgen.LOG_FILE)
    assert (load.duration, load.processes, load.nice) == (7.5, 2, -3)
    cmd = load.command()
    assert cmd[cmd.index("--load-profile") + 1] == str(folder / loadgen.PROFILE_FILE)
    assert cmd[cmd.index("--duration") + 1] == "7.5"
    assert cmd[cmd.index("--outcomes-dir") + 1] == str(folder / loadgen.OUT_DIR)


def test_start_sends_locusts_output_to_the_folders_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LoadRun, "command", lambda self: ["sh", "-c", "echo started; echo oops >&2"])
    load = LoadRun.in_folder(tmp_path, loadgen.steady("s", 1, 1, ""))
    assert load.start().wait(timeout=10) == 0
    assert load.log.read_text().split() == ["started", "oops"]
    assert load.out_dir.is_dir()  # made before Locust runs: it writes its outcomes there


def test_a_stop_cut_short_by_a_second_ctrl_c_still_kills_the_generator() -> None:
    # A master that ignores SIGTERM stands for one still writing its outcomes when the user presses
    # Ctrl-C again: the grace ends there, the kill of its group must not.
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); "
    stubborn += "time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # its handler is in place
        real_wait = proc.wait
        calls: list[float | None] = []

        def wait(timeout: float | None = None) -> int:
            calls.append(timeout)
            if len(calls) == 1:
                raise KeyboardInterrupt  # during the grace
            return real_wait(timeout)

        proc.wait = wait  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            LoadRun.stop(proc, grace=30)
        assert proc.returncode == -9  # killed with its group, and reaped
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert not psutil.pid_exists(proc.pid)
