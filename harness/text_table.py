"""A plain-text table for a terminal: columns as wide as their widest cell, two spaces between."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(rows: Sequence[Sequence[str]], *, numbers_right: bool = False, rule: bool = False) -> str:
    """`rows[0]` is the head. `numbers_right`: every column but the first aligned right (figures);
    `rule`: a line of dashes under the head. Trailing spaces are dropped."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.rjust(w) if numbers_right and i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
