"""Dashboards as code: the committed JSON and provisioning files are what the code generates, uids
are stable and unique, every panel queries Prometheus through the `datasource` variable, and every
query, with its variables substituted, parses (promtool) and reads only metrics that exist."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import catalog, queries
from dashboards.grafana import common, export
from facts import topology

# Grafana links and bookmarks use these: changing one breaks every saved URL.
STABLE_UIDS = {"sab-overview", "sab-detail-sync", "sab-detail-sync-resilient", "sab-detail-async"}
DS = "${datasource}"


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return export.dashboard_dicts()


def panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in d["panels"] if p["type"] != "row"]


def test_committed_files_match_the_code() -> None:
    stale = [
        str(path.relative_to(export.HERE))
        for path, text in export.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"stale generated files {stale}: run `python -m dashboards.grafana`"


def test_no_leftover_generated_dashboards() -> None:
    expected = {p for p in export.outputs() if p.parent == export.GENERATED}
    assert set(export.GENERATED.glob("*.json")) == expected


def test_uids_are_stable_and_unique(dashboards: list[dict[str, Any]]) -> None:
    uids = [d["uid"] for d in dashboards]
    assert len(uids) == len(set(uids))
    assert set(uids) == STABLE_UIDS
    # Generating twice gives the same uids in the same order (no random or time-based parts).
    assert [d["uid"] for d in export.dashboard_dicts()] == uids


def test_every_panel_queries_the_datasource_variable(dashboards: list[dict[str, Any]]) -> None:
    for d in dashboards:
        assert panels(d), d["uid"]
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids, d["uid"]
        for p in panels(d):
            where = f"{d['uid']} / {p['title']}"
            assert p["datasource"] == {"type": "prometheus", "uid": DS}, where
            assert p.get("targets"), f"{where}: no query"
            ref_ids = [t["refId"] for t in p["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), where
            for t in p["targets"]:
                assert t["datasource"] == {"type": "prometheus", "uid": DS}, where
                assert t["expr"].strip(), where
        for a in d["annotations"]["list"]:
            assert a["datasource"]["uid"] == DS, a["name"]


def test_variables(dashboards: list[dict[str, Any]]) -> None:
    for d in dashboards:
        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds = variables["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
        assert ds["current"]["value"] == common.DATASOURCE_UID
        values = queries.pipeline_values(d)
        assert values and set(values) <= set(topology.PIPELINES), d["uid"]
        assert variables["scenario"]["type"] == "query"
    overview = next(d for d in dashboards if d["uid"] == "sab-overview")
    assert queries.pipeline_values(overview) == list(topology.PIPELINES)
    for p in topology.PIPELINES:
        detail = next(d for d in dashboards if d["uid"] == f"sab-detail-{p}")
        assert queries.pipeline_values(detail) == [p]


def test_overview_compares_every_pipeline_side_by_side(dashboards: list[dict[str, Any]]) -> None:
    overview = next(d for d in dashboards if d["uid"] == "sab-overview")
    repeated = [p for p in panels(overview) if p.get("repeat") == "pipeline"]
    assert len(repeated) >= 5
    assert all(p["repeatDirection"] == "h" for p in repeated)
    titles = " ".join(p["title"] for p in panels(overview))
    for topic in ("Requests", "Errors", "API latency", "End-to-end", "Backlog", "redelivered", "faults"):
        assert topic in titles, topic


def test_queries_substitute_every_variable() -> None:
    qs = queries.all_queries()
    assert qs
    for q in qs:
        assert "$" not in q.expr and "[[" not in q.expr, q.where
    with pytest.raises(queries.UnknownVariable):
        queries.substitute("rate(x{a=~'$nope'}[$__rate_interval])", {})
    assert queries.substitute("x[$__range_s] $__range ${pipeline:regex}", {"pipeline": "p"}) == "x[120] 2m p"


def test_queries_parse(tmp_path: Path) -> None:
    # promtool parses PromQL offline: each distinct query becomes a recording rule of its own.
    exprs = sorted({q.expr for q in queries.all_queries()})
    rules = {"groups": [{"name": "panels", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make setup`"
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_queries_read_only_metrics_that_exist() -> None:
    known = catalog.exported_names() | set(catalog.recording_rules())
    for q in queries.all_queries():
        unknown = catalog.referenced_metrics(q.expr) - known
        assert not unknown, f"{q.where}: {sorted(unknown)} is neither exported nor recorded"


def test_provisioning() -> None:
    ds = yaml.safe_load((export.PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert (source["uid"], source["type"], source["url"]) == (
        common.DATASOURCE_UID,
        "prometheus",
        export.PROMETHEUS_URL,
    )
    providers = yaml.safe_load((export.PROVISIONING / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]


def test_jaeger_datasource_and_exemplar_links() -> None:
    """Grafana has Jaeger as a datasource, and Prometheus' exemplars carrying a trace id link to it."""
    folder = export.PROVISIONING / "datasources"
    provisioned = {f.name: yaml.safe_load(f.read_text())["datasources"] for f in folder.glob("*.yml")}
    assert set(provisioned) == {"prometheus.yml", "jaeger.yml"}
    (jaeger,) = provisioned["jaeger.yml"]
    assert (jaeger["uid"], jaeger["type"], jaeger["access"]) == (export.JAEGER_DATASOURCE_UID, "jaeger", "proxy")
    assert jaeger["url"] == f"http://jaeger:{topology.JAEGER_QUERY_HTTP_PORT}" and jaeger["isDefault"] is False
    uids = [d["uid"] for ds in provisioned.values() for d in ds]
    assert len(uids) == len(set(uids)) == 2
    (prometheus,) = provisioned["prometheus.yml"]
    assert prometheus["isDefault"] is True
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": jaeger["uid"]}
    ]
