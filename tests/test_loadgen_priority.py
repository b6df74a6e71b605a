"""The load generator starts ahead of the stack in the scheduler: its autogroup's nice and its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.generator_health import load_limits
from harness.loadgen import LoadRun


def test_the_shipped_limits_put_the_generator_ahead_of_the_stack() -> None:
    assert load_limits().nice < 0


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/proc/self/autogroup").exists(), reason="needs root and autogroups")
def test_the_generator_gets_its_nice_in_its_own_autogroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LoadRun, "command", lambda self: ["sh", "-c", "cat /proc/self/autogroup; cat /proc/self/stat"])
    log = tmp_path / "log"
    assert LoadRun("unused.yaml", 1.0, tmp_path, nice=-7, log=log).start().wait(timeout=10) == 0
    autogroup, stat = log.read_text().splitlines()
    assert autogroup != Path("/proc/self/autogroup").read_text().strip()  # a group of its own (its session)
    assert autogroup.endswith(" nice -7")
    assert int(stat.rpartition(")")[2].split()[16]) == -7  # the process's own nice, field 19 of stat
