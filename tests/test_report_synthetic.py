"""Synthetic run folders with the schema `bench run` writes (harness/result.py), for the report,
claims and compare tests; and the guard that keeps this fixture in step with run.py."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path
from typing import Any

from chaos.scenario import METRICS
from facts import quantiles
from harness import results

REPO = Path(__file__).resolve().parent.parent
MACHINE: dict[str, Any] = {
    "hostname": "ci-runner-7",
    "cpus": 2,
    "memory_gib": 7.8,
    "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
    "python": "3.11.7",
    "kafka": "4.4.0",
    "toxiproxy": "v2.12.0",
    "versions": {"python": "3.11.7", "java": "17.0.15", "maven": "3.8.7", "go": "1.26.8", "prometheus": "2.42.0"},
}


def fault(label: str, start: float, end: float, kind: str = "link-down", target: str = "link:x") -> dict[str, Any]:
    return {
        "index": 0, "kind": kind, "target": target, "label": label, "start": start, "end": end,
        "applied_at": start, "undone_at": end, "applied_unix": 1e9 + start, "undone_unix": 1e9 + end,
        "applied_offset": start + 0.02, "undone_offset": end + 0.03, "error": None,
    }  # fmt: skip


def result(
    pipeline: str,
    scenario: str,
    *,
    seconds: int = 20,
    rate: float = 100.0,
    api: float = 0.004,
    e2e: float = 0.002,
    faults: tuple[dict[str, Any], ...] = (),
    fault_error: float = 0.0,
    fault_api: float | None = None,
    fault_e2e: float | None = None,
    backlog_peak: int = 0,
    lost: int = 0,
    drain: int = 3,
    seed: int = 1,
    measured: dict[str, float | None] | None = None,
    **overrides: float | None,
) -> dict[str, Any]:
    """One result.json: steady `rate`, and inside the fault windows a share `fault_error` of failures
    and latencies `fault_api`/`fault_e2e`; async-like backlog rising to `backlog_peak` then draining.
    `measured` and `overrides` (for names without dots) replace values of the measured table."""
    rnd = random.Random(seed)
    in_fault = [any(f["start"] <= i + 0.5 < f["end"] for f in faults) for i in range(seconds)]
    n = seconds + drain
    ack, failed, unknown, delivered = [0] * n, [0] * n, [0] * n, [0] * n
    api_samples: list[tuple[float, float]] = []
    e2e_samples: list[tuple[float, float]] = []
    for i in range(seconds):
        sent = int(rate)
        bad = round(sent * fault_error) if in_fault[i] else 0
        ack[i], failed[i] = sent - bad, bad
        for k in range(sent):
            t = i + k / sent
            lat = (fault_api if in_fault[i] and fault_api is not None else api) * rnd.uniform(0.4, 1.0)
            api_samples.append((t, lat))
            if k >= bad:
                el = (fault_e2e if in_fault[i] and fault_e2e is not None else e2e) * rnd.uniform(0.4, 1.0)
                e2e_samples.append((t + el, el))
    for t, _ in e2e_samples:
        delivered[min(int(t), n - 1)] += 1
    backlog: list[int | None] = [0] * n
    if backlog_peak:
        top = seconds // 2
        backlog = [round(backlog_peak * min(i / top, max(0.0, (n - i) / (n - top)))) for i in range(n)]
        backlog[-1] = 0
    attempted, acknowledged, n_failed = sum(ack) + sum(failed), sum(ack), sum(failed)
    api_sum, e2e_sum = quantiles.summary(v for _, v in api_samples), quantiles.summary(v for _, v in e2e_samples)
    n_delivered = len(e2e_samples) - lost
    ledger = {
        "attempted": attempted, "acknowledged": acknowledged, "failed": n_failed, "unknown": 0,
        "delivered": n_delivered, "redeliveries": 0, "lost": lost, "unexpected": 0, "recovered": 0,
        "dead_lettered": 0,
    }  # fmt: skip
    table: dict[str, float | None] = {
        **{k: float(v) for k, v in ledger.items()},
        "error_ratio": n_failed / attempted,
        "ack_ratio": acknowledged / attempted,
        "delivered_ratio": n_delivered / attempted,
        "missed_arrivals": 0.0,
        "achieved_rate": attempted / seconds,
        **{f"api.{k}": api_sum[k] for k in ("p50", "p90", "p99", "p999", "max")},
        **{f"e2e.{k}": e2e_sum[k] for k in ("p50", "p90", "p99", "p999", "max")},
        "peak_backlog": float(backlog_peak),
        "drain_seconds": float(drain),
    }
    table.update({**(measured or {}), **overrides})
    checks = [{"check": "lost == 0", "metric": "lost", "measured": table["lost"], "passed": table["lost"] == 0}]
    return {
        "pipeline": pipeline,
        "scenario": scenario,
        "description": f"synthetic {scenario}",
        "profile": {"name": "steady-100rps-60s", "description": f"{rate:g} reactions/s", "kind": "steady",
                    "rate": rate, "duration": float(seconds)},
        "timings": {"load_start_unix": 1e9, "load_seconds": float(seconds), "load_end_unix": 1e9 + seconds,
                    "drain_seconds": float(drain), "drain_timeout_seconds": 60.0, "drained": True},
        "rate": {"target_mean": rate, "target_peak": rate, "achieved_mean": table["achieved_rate"]},
        "ledger": {**ledger, "no_loss": lost == 0, "samples": {}},
        "api_latency_seconds": api_sum,
        "e2e_latency_seconds": e2e_sum,
        "backlog": {"peak": float(backlog_peak), "left_after_drain": 0},
        "dead_letter": {"records": 0, "by_reason": {}},
        "faults": list(faults),
        "series": {
            "second": list(range(n)),
            "target_rate": [rate] * seconds + [0.0] * drain,
            "acknowledged": ack, "failed": failed, "unknown": unknown, "delivered": delivered,
            "api_p50": quantiles.per_second_quantile(api_samples, 0, n, 0.5),
            "api_p99": quantiles.per_second_quantile(api_samples, 0, n, 0.99),
            "e2e_p50": quantiles.per_second_quantile(e2e_samples, 0, n, 0.5),
            "e2e_p99": quantiles.per_second_quantile(e2e_samples, 0, n, 0.99),
            "backlog": backlog,
        },
        "measured": table,
        "hypothesis": {"passed": all(c["passed"] for c in checks), "checks": checks},
        "locust_exit_code": 0,
    }  # fmt: skip


def write_run(root: Path, cells: list[dict[str, Any]], run_id: str = "20260101-000000", machine: bool = True) -> Path:
    """A run folder as `bench run` leaves it: run.json + <pipeline>--<scenario>/result.json."""
    root.mkdir(parents=True, exist_ok=True)
    index = []
    for r in cells:
        rel = f"{r['pipeline']}--{r['scenario']}/result.json"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(r, indent=2, sort_keys=True))
        index.append(
            {"pipeline": r["pipeline"], "scenario": r["scenario"], "passed": r["hypothesis"]["passed"], "result": rel}
        )
    doc: dict[str, Any] = {"run_id": run_id, "cells": index}
    if machine:
        doc["machine"] = MACHINE
    (root / "run.json").write_text(json.dumps(doc, indent=2))
    return root


def article_cells() -> list[dict[str, Any]]:
    """A full matrix shaped like the article says it should be (sync blocks and cascades, async absorbs)."""
    down = (fault("notification down", 5, 12),)
    broker = (fault("kafka-produce down", 5, 12), fault("kafka-consume down", 5, 12))
    slow = (fault("latency(downstream) on push", 5, 15, kind="toxic", target="link:push"),)
    crash = (fault("kill notification", 5, 8, kind="kill", target="process:notification"),)
    flaky = (fault("reset_peer on notification", 2, 20, kind="toxic"),)
    cells = []
    for p in ("sync", "sync-resilient", "async"):
        is_async = p == "async"
        e2e = 0.02 if is_async else 0.002
        cells += [
            result(p, "baseline", e2e=e2e),
            result(p, "push-slow", faults=slow, fault_api=0.004 if is_async else 0.45, fault_e2e=0.45, e2e=e2e),
            result(p, "notification-down", faults=down, fault_error=0.0 if is_async else 1.0,
                   fault_e2e=6.0 if is_async else None, backlog_peak=700 if is_async else 0, e2e=e2e),
            result(p, "broker-down", faults=broker, fault_error=1.0 if is_async else 0.0, e2e=e2e),
            *(result(p, surge, rate=300, api=0.005 if is_async else 0.9, fault_error=0.0, e2e=e2e,
                     backlog_peak=2000 if is_async else 0, error_ratio=0.0 if is_async else 0.2)
              for surge in ("surge", "surge-over-capacity")),
            result(p, "consumer-crash", faults=crash, fault_error=0.0 if is_async else 1.0, e2e=e2e),
            result(p, "flaky-network", faults=flaky, fault_error=0.0 if is_async else 0.05, e2e=e2e),
        ]  # fmt: skip
    return cells


def _run_py_result_keys() -> set[str]:
    """The top-level keys of the dict harness/result.py's build() returns, plus those run.py's run_cell() adds."""
    tree = ast.Module(
        body=[*ast.parse((REPO / "harness" / "result.py").read_text()).body,
              *ast.parse((REPO / "harness" / "run.py").read_text()).body],
        type_ignores=[],
    )  # fmt: skip
    keys: set[str] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name == "build":
            ret = next(n for n in ast.walk(fn) if isinstance(n, ast.Return))
            assert isinstance(ret.value, ast.Dict)
            keys |= {str(k.value) for k in ret.value.keys if isinstance(k, ast.Constant)}
        if isinstance(fn, ast.FunctionDef) and fn.name == "run_cell":
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Subscript)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "result"
                    and isinstance(node.slice, ast.Constant)
                    and isinstance(node.ctx, ast.Store)
                ):
                    keys.add(str(node.slice.value))
    return keys


def test_fixture_has_the_schema_run_py_writes() -> None:
    r = result("async", "baseline")
    assert set(r) == _run_py_result_keys()
    assert set(r["measured"]) == set(METRICS)
    assert set(r["series"]) == {
        "second", "target_rate", "acknowledged", "failed", "unknown", "delivered",
        "api_p50", "api_p99", "e2e_p50", "e2e_p99", "backlog",
    }  # fmt: skip


def test_fixture_run_loads(tmp_path: Path) -> None:
    run = results.load(write_run(tmp_path / "run", article_cells()))
    assert run.pipelines == ["sync", "sync-resilient", "async"]
    assert run.scenarios[0] == "baseline"
    env = run.env()
    assert env["sync.notification-down.fault.error_ratio"] == 1.0
    assert env["async.notification-down.fault.error_ratio"] == 0.0
    assert env["sync.baseline.fault.error_ratio"] is None  # no fault window: nothing to measure
