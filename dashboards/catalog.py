"""The metric names rules and dashboards may use, taken from the code that exports them.

Each service's registry is importable without starting it (targets.metrics builds them at import);
the load generator's and the harness' registries are built here the way their processes build
them. A rule or panel naming anything else has a typo or reads a series nobody serves.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

RULES_DIR = Path(__file__).resolve().parent / "prometheus" / "rules"
# Series Prometheus itself adds to every scrape target.
PROMETHEUS_BUILTINS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# toxiproxy-server -proxy-metrics (labels direction, proxy, listener, upstream); not our code, so
# listed here, and checked by the live dashboard test against the real server.
TOXIPROXY_SENT_BYTES_TOTAL = "toxiproxy_proxy_sent_bytes_total"
TOXIPROXY = frozenset({"toxiproxy_proxy_received_bytes_total", TOXIPROXY_SENT_BYTES_TOTAL})


def registries() -> dict[str, CollectorRegistry]:
    """scrape job (facts.topology.SCRAPE_TARGETS) -> its registry, with a sample in each series."""
    from chaos.engine import ChaosMetrics
    from loadtests.counters import LoadStats
    from loadtests.loadgen_metrics import LoadgenCollector, RunInfo, registry_for
    from loadtests.outcome import Outcome
    from targets import metrics

    stats = LoadStats()
    stats.on_arrival(True)
    stats.on_arrival(False)
    stats.on_start(0.001)
    stats.on_response(Outcome.ACK, 202, 0.01)
    loadgen = registry_for(
        LoadgenCollector(lambda: stats, lambda: 10.0, lambda: 1, lambda: RunInfo("r", "p", "poisson"))
    )
    chaos = CollectorRegistry()
    chaos_metrics = ChaosMetrics(chaos)
    chaos_metrics.fault_active.labels("toxic", "link:push", "latency(downstream) on push").set(1)
    chaos_metrics.cell_active.labels("async", "baseline").set(1)
    return {
        "reaction": metrics.REACTION_REGISTRY,
        "notification": metrics.NOTIFICATION_REGISTRY,
        "pushsink": metrics.PUSHSINK_REGISTRY,
        "loadgen": loadgen,
        "chaos": chaos,
    }


def series_names(registry: CollectorRegistry) -> set[str]:
    """Every name a query can select: counters with _total, histograms with _bucket/_count/_sum."""
    names = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
    return names


def exported_names() -> set[str]:
    """Every series the scraped jobs serve."""
    out = set(PROMETHEUS_BUILTINS | TOXIPROXY)
    for registry in registries().values():
        out |= series_names(registry)
    return out


def recording_rules() -> dict[str, list[str]]:
    """Recorded name -> the expressions recording it (one per quantile, for instance)."""
    out: dict[str, list[str]] = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    out.setdefault(rule["record"], []).append(rule["expr"])
    return out


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right", "on", "by"})


def referenced_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        following = text[m.end() :].lstrip()
        if following.startswith("(") or m.group() in _KEYWORDS:
            continue  # a function call or an operator keyword
        names.add(m.group())
    return names
