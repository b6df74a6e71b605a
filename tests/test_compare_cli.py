"""`bench compare BASE NEW`: exit 0 when nothing regressed, 1 when a threshold is crossed, 2 on bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness import cli
from harness.result import CellResult
from tests.synthetic_run import article_cells, result, write_run


def regressed(cells: list[CellResult]) -> list[CellResult]:
    """The same run, except async's surge API p99 went from 5 ms to 200 ms and one acknowledged reaction was lost."""
    out = []
    for c in cells:
        if (c.pipeline, c.scenario) == ("async", "surge"):
            c = result("async", "surge", rate=300, api=0.2, backlog_peak=2000, lost=1, e2e=0.02)
        out.append(c)
    return out


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_run(tmp_path / "base", article_cells(), run_id="base-run")


def test_unchanged_run_passes(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_run(tmp_path / "new", article_cells(), run_id="new-run")
    assert cli.main(["compare", str(base), str(new / "run.json")]) == 0
    out = capsys.readouterr().out
    assert "base base-run -> new new-run" in out
    assert "0 crossed" in out and "FAIL" not in out
    assert "async     surge" in out or "async  " in out  # the table lists the cells


def test_regressed_run_fails_and_says_why(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_run(tmp_path / "new", regressed(article_cells()))
    assert cli.main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "crossed: async.surge.lost == 0: new 1 (base 0)" in out
    assert "crossed: async.surge.api.p99 <" in out
    assert "*.*.lost == 0" in out


def test_markdown_output(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_run(tmp_path / "new", regressed(article_cells()))
    assert cli.main(["compare", str(base), str(new), "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("## bench compare")
    assert "| pipeline | scenario | metric | base | new | change | new - base (95 %) | threshold | status |" in out
    assert "| **async** | **surge** | **lost** |" in out


def test_custom_thresholds_and_all_metrics(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_run(tmp_path / "new", regressed(article_cells()))
    path = tmp_path / "t.yaml"
    path.write_text("thresholds:\n  - 'sync.*.lost == 0'\n  - 'sync.nope.lost == 0'\n")
    assert cli.main(["compare", str(base), str(new), "--thresholds", str(path), "--all"]) == 0
    out = capsys.readouterr().out
    assert "api.p999" in out  # --all lists every metric
    assert "line 3: 'sync.nope.lost == 0' matched nothing in either run" in out


def test_bad_thresholds_exit_2_naming_file_and_line(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("thresholds:\n  - '*.*.lost == 0'\n  - '*.*.lots == 0'\n")
    assert cli.main(["compare", str(base), str(base), "--thresholds", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: 'lots' matches no metric" in err


def test_thresholds_that_are_not_text_or_a_one_argument_max_exit_2_naming_the_file(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"thresholds:\n  - '*.*.lost == 0 \xff'\n")
    assert cli.main(["compare", str(base), str(base), "--thresholds", str(path)]) == 2
    assert f"{path}: not UTF-8 text" in capsys.readouterr().err
    path.write_text("thresholds:\n  - '*.*.lost <= max(base)'\n")  # was a TypeError once evaluated
    assert cli.main(["compare", str(base), str(base), "--thresholds", str(path)]) == 2
    assert "max() takes two or more arguments" in capsys.readouterr().err


def test_missing_run_exits_2(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", str(base), str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(base), str(tmp_path / "empty")]) == 2
    assert "no results" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("block", "raise_it"),
    [
        ("ledger", lambda c: setattr(c.ledger, "lost", c.ledger.lost + 7)),
        ("api_latency_seconds", lambda c: setattr(c.api_latency_seconds, "p99", (c.api_latency_seconds.p99 or 0) * 5)),
        ("e2e_latency_seconds", lambda c: setattr(c.e2e_latency_seconds, "p99", (c.e2e_latency_seconds.p99 or 0) * 5)),
    ],
)
def test_a_figure_raised_in_its_block_is_caught(
    tmp_path: Path, base: Path, block: str, raise_it: Callable[[CellResult], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # Each figure is stored once: whichever block a figure lives in, compare reads that one.
    cells = article_cells()
    for c in cells:
        if (c.pipeline, c.scenario) == ("async", "baseline"):
            raise_it(c)
    new = write_run(tmp_path / "new", cells)
    assert cli.main(["compare", str(base), str(new)]) == 1, block
    assert "crossed: async.baseline." in capsys.readouterr().out
