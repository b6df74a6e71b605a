"""Totals over the dashboard's time range, one value per pipeline."""

from __future__ import annotations

from dashboards.grafana.common import COUNT, FULL, PIPELINE, PanelBuilder, query, single_stat


def _increase(metric: str) -> str:
    return f"sum by (pipeline) (increase({metric}{{{PIPELINE}}}[$__range]))"


def totals(dead_letters: bool = True) -> list[PanelBuilder]:
    """`dead_letters`: add the dead-letter count (a Kafka series: meaningful for async only)."""
    stats = [
        ("Requests answered", _increase("reaction_requests_total"), "{{pipeline}}", ""),
        ("Delivered (first)", _increase("pushsink_first_deliveries_total"), "{{pipeline}}", ""),
        (
            "Redeliveries",
            f"{_increase('pushsink_deliveries_total')} - {_increase('pushsink_first_deliveries_total')}",
            "{{pipeline}}",
            "Pushes the phone got again for a key it already had (raw - first).",
        ),
    ]
    if dead_letters:
        stats.append(
            (
                "Dead letters (async)",
                "sum(increase(notification_dead_lettered_total[$__range]))",
                "async",
                "Records the consumer wrote to the dead-letter topic; none yet shows no value.",
            )
        )
    width = FULL // len(stats)
    return [
        single_stat(title, COUNT, [query(expr, legend, instant=True)], description=text, width=width)
        for title, expr, legend, text in stats
    ]
