"""Synthetic cells of the replicated topology (harness/replicas.py), beside tests/synthetic_run.py's
article-shaped matrix: the balancer's hop at steady load, through HAProxy and its control (gRPC
client-side round robin over the same replicas), and async on the same replicas."""

from __future__ import annotations

from typing import Any

from harness.result import CellResult, StackTopology
from tests.synthetic_run import result


def balancer_cells(changes: dict[tuple[str, str], dict[str, Any]] | None = None, replicas: int = 2) -> list[CellResult]:
    """sync x balancer-hop (HAProxy adds ~1 ms to a 2 ms call), sync x balancer-hop-client (the
    control), async x balancer-hop (the broker's hop, no balancer). `changes` as article_cells'."""
    specs: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
        ("sync", "balancer-hop"): ("haproxy", {"e2e": 0.003, "api": 0.005}),
        ("sync", "balancer-hop-client"): ("client", {"e2e": 0.002, "api": 0.004}),
        ("async", "balancer-hop"): ("haproxy", {"e2e": 0.02}),
        ("async", "balancer-hop-client"): ("client", {"e2e": 0.02}),
    }
    cells = []
    for (pipeline, scenario), (balancer, kwargs) in specs.items():
        cell = result(pipeline, scenario, **{**kwargs, **(changes or {}).get((pipeline, scenario), {})})
        cell.topology = StackTopology(replicas=replicas, balancer=balancer)
        cells.append(cell)
    return cells
