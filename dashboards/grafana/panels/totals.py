"""Totals over the dashboard's time range, one value per pipeline."""

from __future__ import annotations

from dashboards.grafana.common import COUNT, FULL, PIPELINE, PanelBuilder, query, single_stat
from targets import metrics as m


def _increase(metric: str) -> str:
    return f"sum by (pipeline) (increase({metric}{{{PIPELINE}}}[$__range]))"


def totals(dead_letters: bool = True) -> list[PanelBuilder]:
    """`dead_letters`: add the dead-letter count (a Kafka series: meaningful for async only)."""
    stats = [
        ("Requests answered", _increase(m.REACTION_REQUESTS_TOTAL), "{{pipeline}}", ""),
        ("Delivered (first)", _increase(m.PUSHSINK_FIRST_DELIVERIES_TOTAL), "{{pipeline}}", ""),
        (
            "Redeliveries",
            f"{_increase(m.PUSHSINK_DELIVERIES_TOTAL)} - {_increase(m.PUSHSINK_FIRST_DELIVERIES_TOTAL)}",
            "{{pipeline}}",
            "Pushes the phone got again for a key it already had (raw - first).",
        ),
    ]
    if dead_letters:
        stats.append(
            (
                "Dead letters (async)",
                f"sum(increase({m.NOTIFICATION_DEAD_LETTERED_TOTAL}[$__range]))",
                "async",
                "Records the consumer wrote to the dead-letter topic; none yet shows no value.",
            )
        )
    width = FULL // len(stats)
    return [
        single_stat(title, COUNT, [query(expr, legend, instant=True)], description=text, width=width)
        for title, expr, legend, text in stats
    ]
