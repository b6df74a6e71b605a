"""A run reads its limits once, before the stack starts; a bad limits file stops it at once, named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import generator_health, memory, run
from harness.run_limits import RunLimits


def test_the_shipped_limits_load_together() -> None:
    limits = RunLimits.load()
    assert limits.generator == generator_health.load_limits()
    assert limits.memory == memory.load_limits()


def test_a_bad_limits_file_stops_the_run_before_the_stack_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "generator.yaml"
    bad.write_text("lag_p99_seconds: -1\n")
    load = generator_health.load_limits
    monkeypatch.setattr(generator_health, "load_limits", lambda: load(bad))
    opened: list[Any] = []

    def open_stack(*args: Any) -> Any:
        opened.append(args)
        raise AssertionError("the stack must not start")

    plan: Any = object()  # never read: the limits come first
    assert run.run(plan, open_stack, runs_root=tmp_path / "runs") == 1
    assert not opened
    assert not (tmp_path / "runs").exists()  # no run folder, no runs/latest taken over
    assert f"{bad}: field 'lag_p99_seconds'" in capsys.readouterr().err
