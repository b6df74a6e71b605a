"""The harness' tracing setting (harness/limits/tracing.yaml): "off" or a share, and a bad one named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import measured_tracing
from harness.measured_tracing import tracing_of, words
from harness.stack import Tracing


def test_settings_are_off_or_a_share_of_traces() -> None:
    assert tracing_of("off") == Tracing(enabled=False)
    assert tracing_of("0.1") == Tracing(enabled=True, sample_ratio=0.1)
    assert [words(s) for s in ("off", "0.1", "1", "0", "0.004", "0.07")] == [
        "off", "10% of reactions", "every reaction", "0% of reactions (tracing on, none traced)",
        "0.4% of reactions", "7% of reactions",
    ]  # fmt: skip
    for bad in ("1.5", "-0.1", "all"):
        with pytest.raises(ValueError, match="not a tracing setting"):
            tracing_of(bad)


@pytest.mark.parametrize("setting", ["off", "0.1", "0.004", "0", "1"])
def test_a_services_command_line_gives_back_its_setting(setting: str) -> None:
    told = tracing_of(setting)
    argv = ["python", "-m", "targets.reaction", "--pipeline", "sync", *told.argv()]
    assert Tracing.from_argv(argv) == told and Tracing.from_argv(argv).setting == setting


def test_the_shipped_file_is_valid_and_a_bad_setting_names_its_field(tmp_path: Path) -> None:
    shipped = measured_tracing.load()
    assert tracing_of(shipped.sample).enabled and "off" in shipped.overhead
    path = tmp_path / "tracing.yaml"
    path.write_text(
        measured_tracing.SETTINGS_FILE.read_text().replace('overhead: ["off", "0", "1"]', 'overhead: ["off", "2", "1"]')
    )
    with pytest.raises(ValueError) as e:
        measured_tracing.load(path)
    assert str(path) in str(e.value) and "overhead.1" in str(e.value) and "'2' is not a tracing setting" in str(e.value)
