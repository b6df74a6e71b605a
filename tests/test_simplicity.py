"""What each pipeline costs to run and understand: counted from the source, and it can change."""

from __future__ import annotations

from pathlib import Path

from harness import report, simplicity
from tests.synthetic_run import article_cells, write_run


def test_counts_come_from_the_source(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        '"""doc\nstring"""\n\nimport argparse\n\n# a comment\n\ndef parse() -> None:\n'
        '    p = argparse.ArgumentParser()\n    p.add_argument("--a")\n    g = p.add_argument_group("one")\n'
        '    g.add_argument("--b")\n    g.add_argument("--c")\n    g = p.add_argument_group("two")\n'
        '    g.add_argument("--d")\n'
    )
    assert simplicity.code_lines(tmp_path / "m.py") == 9
    assert simplicity.option_groups(tmp_path / "m.py") == {None: 1, "one": 2, "two": 1}


def test_async_needs_the_broker_and_more_of_everything() -> None:
    by = {c.pipeline: c for c in simplicity.costs()}
    assert (by["sync"].processes, by["async"].processes) == (3, 4)
    assert (by["sync"].hops, by["async"].hops) == (3, 4)
    assert by["async"].config_keys > by["sync"].config_keys  # the broker's settings come with it
    assert by["sync-resilient"].own_lines > by["sync"].own_lines  # the breaker is its own code
    assert all(c.own_lines > 0 for c in by.values())


def test_every_file_and_option_group_named_exists() -> None:
    for files in simplicity.CODE.values():
        assert all((simplicity.REPO / f).is_file() for f in files)
    titles = {t for s in simplicity.SERVICES for t in simplicity.option_groups(simplicity.REPO / s) if t}
    named = {g for groups in simplicity.OPTION_GROUPS.values() for g in groups} | set(simplicity.SHARED_GROUPS)
    assert named <= titles, named - titles  # a renamed group would silently drop out of the count


def test_the_report_shows_the_costs(tmp_path: Path) -> None:
    _, md = report.write(write_run(tmp_path / "run", article_cells()))
    text = md.read_text()
    assert "## What each pipeline costs" in text
    assert "| async | 4 | 4 |" in text
