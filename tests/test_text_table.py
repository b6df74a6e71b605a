"""harness.text_table: the terminal tables of `bench compare`, the service profile and the like."""

from __future__ import annotations

from harness.text_table import text_table


def test_columns_are_as_wide_as_their_widest_cell_and_figures_align_right() -> None:
    rows = [["service", "samples", "ours"], ["reaction", "1418", "7%"], ["push sink", "876", "12%"]]
    assert text_table(rows, numbers_right=True).splitlines() == [
        "service    samples  ours",
        "reaction      1418    7%",
        "push sink      876   12%",
    ]


def test_a_rule_under_the_head_and_no_trailing_spaces() -> None:
    rows = [["metric", "base", "verdict"], ["api.p99", "12 ms", ""], ["lost", "0", "FAIL"]]
    assert text_table(rows, rule=True).splitlines() == [
        "metric   base   verdict",
        "-------  -----  -------",
        "api.p99  12 ms",
        "lost     0      FAIL",
    ]
