"""harness/traces.py on fake Jaeger answers, and the services' tracing switch (no stack needed)."""

from __future__ import annotations

import argparse
import itertools
import json
import urllib.parse
from typing import Any

import pytest

from facts import topology
from harness import traces
from harness.stack import Tracing, jaeger_config
from targets import tracing

T0 = 1_700_000_000_000_000  # µs


def _span(
    trace_id: str,
    span_id: str,
    op: str,
    pid: str,
    kind: str,
    start: int,
    duration: int,
    parent: str | None = None,
    **tags: Any,
) -> dict[str, Any]:
    refs = [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent}] if parent else []
    tag_list = [{"key": "span.kind", "type": "string", "value": kind}]
    tag_list += [{"key": k.replace("_", "."), "type": "string", "value": v} for k, v in tags.items()]
    return {
        "traceID": trace_id,
        "spanID": span_id,
        "operationName": op,
        "references": refs,
        "startTime": T0 + start,
        "duration": duration,
        "tags": tag_list,
        "processID": pid,
    }


PROCESSES = {
    "p1": {"serviceName": "reaction"},
    "p2": {"serviceName": "notification"},
    "p3": {"serviceName": "pushsink"},
}


def sync_trace(tid: str, rid: str) -> dict[str, Any]:
    """As Jaeger answered for one sync reaction on the real stack (times shortened)."""
    return {
        "traceID": tid,
        "processes": PROCESSES,
        "spans": [
            _span(tid, "a", "POST /v1/posts/{post_id}/reactions", "p1", "server", 0, 7000, reaction_id=rid),
            _span(tid, "b", "syncasync.v1.Notification/Notify", "p1", "client", 1000, 6000, "a",
                  reaction_id=rid, rpc_system="grpc"),
            _span(tid, "c", "syncasync.v1.Notification/Notify", "p2", "server", 2500, 4000, "b",
                  reaction_id=rid, rpc_system="grpc"),
            _span(tid, "d", "deliver push", "p2", "internal", 2600, 3500, "c", reaction_id=rid),
            _span(tid, "e", "POST", "p2", "client", 2700, 2800, "d"),
            _span(tid, "f", "POST /push", "p3", "server", 5000, 500, "e", reaction_id=rid, push_first=True),
        ],
    }  # fmt: skip


def async_trace(tid: str, rid: str, *, redelivered: bool = False, orphan_first_push: bool = False) -> dict[str, Any]:
    spans = [
        _span(tid, "a", "POST /v1/posts/{post_id}/reactions", "p1", "server", 0, 4000, reaction_id=rid),
        _span(tid, "b", "produce reactions", "p1", "internal", 1000, 3000, "a", reaction_id=rid),
        _span(tid, "c", "send reactions", "p1", "producer", 1100, 100, "b"),
        _span(tid, "e", "process reactions", "p2", "consumer", 10_000, 3000, "c", reaction_id=rid),
        _span(tid, "f", "deliver push", "p2", "internal", 10_100, 2500, "e", reaction_id=rid),
        _span(tid, "g", "POST", "p2", "client", 10_200, 2000, "f"),
        _span(tid, "h", "POST /push", "p3", "server", 11_000, 1000, "g", reaction_id=rid, push_first=True),
    ]
    if redelivered:  # the consumer died after pushing; the record came again to the next one
        spans += [
            _span(tid, "i", "process reactions", "p2", "consumer", 20_000_000, 3000, "c", reaction_id=rid),
            _span(tid, "j", "deliver push", "p2", "internal", 20_000_100, 2500, "i", reaction_id=rid),
            _span(tid, "k", "POST", "p2", "client", 20_000_200, 2000, "j"),
            _span(tid, "l", "POST /push", "p3", "server", 20_001_000, 800, "k", reaction_id=rid, push_first=False),
        ]
    if orphan_first_push:  # the first sender's spans never reached Jaeger: only the sink's span did
        spans = [s for s in spans if s["spanID"] not in ("d", "e", "f", "g")]
    for s in spans:
        for t in s["tags"]:
            if t["key"] == "push.first":
                t["value"] = t["value"] == "True" or t["value"] is True
    return {"traceID": tid, "processes": PROCESSES, "spans": spans}


def test_parse_reads_services_parents_kinds_and_tags() -> None:
    (t,) = traces.parse_traces({"data": [sync_trace("t1", "r1")]})
    by_id = {s.span_id: s for s in t.spans}
    assert by_id["a"].service == "reaction" and by_id["a"].parent_id is None and by_id["a"].kind == "server"
    assert by_id["f"].service == "pushsink" and by_id["f"].parent_id == "e" and by_id["f"].reaction_id == "r1"
    assert by_id["b"].end_us == T0 + 7000
    assert traces.parse_traces({"data": None}) == []


def test_a_sync_reaction_is_one_connected_trace_with_its_hops() -> None:
    parsed = traces.parse_traces({"data": [sync_trace("t1", "r1")]})
    f = traces.follow("r1", parsed)
    assert f.connected and f.first_push_connected
    assert (f.traces, f.spans, f.entries, f.push_attempts) == (1, 6, 1, 1)
    assert f.hops == pytest.approx({"handler": 0.001, "grpc_call": 0.0015, "delivery": 0.003})
    assert sum(f.hops.values()) == pytest.approx((5000 + 500) / 1e6)  # API request -> push, consecutive


def test_an_async_reaction_splits_produce_broker_wait_and_delivery() -> None:
    f = traces.follow("r1", traces.parse_traces({"data": [async_trace("t1", "r1")]}))
    assert f.connected
    assert f.hops == pytest.approx({"handler": 0.001, "produce": 0.003, "broker_wait": 0.006, "delivery": 0.002})


def test_a_redelivery_stays_in_the_trace_and_counts_as_a_second_entry() -> None:
    f = traces.follow("r1", traces.parse_traces({"data": [async_trace("t1", "r1", redelivered=True)]}))
    assert f.connected and f.first_push_connected
    assert (f.traces, f.entries, f.push_attempts) == (1, 2, 2)


def test_a_lost_first_sender_leaves_the_redelivery_to_connect() -> None:
    payload = {"data": [async_trace("t1", "r1", redelivered=True, orphan_first_push=True)]}
    f = traces.follow("r1", traces.parse_traces(payload))
    assert f.connected and not f.first_push_connected
    only_orphan = {"data": [async_trace("t1", "r1", orphan_first_push=True)]}
    g = traces.follow("r1", traces.parse_traces(only_orphan))
    assert not g.connected and g.why is not None and "parent span is missing" in g.why


def test_summary_counts_completeness_over_delivered_and_samples_the_rest() -> None:
    payload = {
        "data": [sync_trace("t1", "r1"), sync_trace("t2", "r2"), async_trace("t3", "r3", orphan_first_push=True)]
    }
    found = traces.parse_traces(payload)
    s = traces.summarise(["r1", "r2", "r3", "r4", "r5"], found, delivered=["r1", "r2", "r3", "r4"], pipeline="sync")
    assert (s.reactions, s.delivered, s.traced, s.connected) == (5, 4, 3, 2)
    assert s.completeness == 0.5
    assert s.unconnected["no span with its reaction id"] == ["r4"]
    assert any("r3" in ids for why, ids in s.unconnected.items() if "missing" in why)
    assert s.traces_per_reaction.max == 1 and s.spans_per_reaction.count == 3
    assert set(s.hops) == {"handler", "grpc_call", "delivery"} and s.hops["delivery"].count == 2
    assert s.model_dump_json()  # it serialises (the lead's CellResult will hold it)


def test_with_a_sample_ratio_unsampled_reactions_do_not_count_against_completeness() -> None:
    found = traces.parse_traces({"data": [sync_trace("t1", "r1")]})
    s = traces.summarise(["r1", "r2"], found, sample_ratio=0.5)
    assert (s.delivered, s.connected, s.completeness) == (1, 1, 1.0)


def test_a_full_window_is_halved_until_each_answer_fits() -> None:
    asked: list[dict[str, list[str]]] = []
    all_traces = [sync_trace(f"t{i}", f"r{i}") for i in range(10)]
    for i, t in enumerate(all_traces):
        for s in t["spans"]:
            s["startTime"] = T0 + i * 1_000_000 + (s["startTime"] - T0)

    def fetch(url: str) -> dict[str, Any]:
        q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        asked.append(q)
        start, end, limit = int(q["start"][0]), int(q["end"][0]), int(q["limit"][0])
        hits = [t for t in all_traces if any(start <= s["startTime"] < end for s in t["spans"])]
        return {"data": hits[:limit]}

    query = traces.JaegerQuery("http://jaeger", fetch=fetch, page=4)
    found = query.window(T0 / 1e6, T0 / 1e6 + 10, services=["reaction"])
    assert sorted(found) == sorted(f"t{i}" for i in range(10))
    assert len(asked) > 1 and all(q["service"] == ["reaction"] for q in asked)


def test_a_long_load_is_read_in_windows_spread_over_it() -> None:
    assert traces.read_windows(100.0, 160.0, 120, 6) == [(100.0, 160.0)]  # short enough: whole
    windows = traces.read_windows(0.0, 1800.0, 120, 6)
    assert len(windows) == 6 and all(end - start == pytest.approx(20) for start, end in windows)
    assert windows[0][0] > 0 and windows[-1][1] < 1800 and windows == sorted(windows)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(windows))  # apart, not overlapping
    assert [round((s + e) / 2) for s, e in windows] == [150, 450, 750, 1050, 1350, 1650]


def test_measure_reads_only_its_windows_and_says_how_many() -> None:
    all_traces = [sync_trace(f"t{i}", f"r{i}") for i in range(100)]  # one reaction a second
    for i, t in enumerate(all_traces):
        for sp in t["spans"]:
            sp["startTime"] = T0 + i * 1_000_000 + (sp["startTime"] - T0)
    asked: list[tuple[int, int]] = []

    def fetch(url: str) -> dict[str, Any]:
        q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        start, end = int(q["start"][0]), int(q["end"][0])
        asked.append((start, end))
        return {"data": [t for t in all_traces if any(start <= sp["startTime"] < end for sp in t["spans"])]}

    query = traces.JaegerQuery("http://jaeger", fetch=fetch)
    t0 = T0 / 1e6
    windows = [(t0 + 10, t0 + 15), (t0 + 60, t0 + 65)]
    ids = [f"r{i}" for i in (*range(10, 15), *range(60, 65))]
    s = traces.measure(ids, windows, pipeline="sync", query=query, settle_seconds=0)
    assert {(int(a), int(b)) for a, b in asked} == {(int(a * 1e6), int(b * 1e6)) for a, b in windows}
    assert (s.reactions, s.traced, s.connected, s.completeness, s.windows) == (10, 10, 10, 1.0, 2)


def test_cpu_per_1000_charges_each_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # CPU seconds read before and after the load: reaction spent 1.0 s, jaeger 0.25 s, push sink 0.5 s
    readings = iter([
        {"reaction": 10.0, "jaeger": 4.0, "pushsink": 2.0},
        {"reaction": 11.0, "jaeger": 4.25, "pushsink": 2.5},
    ])  # fmt: skip
    monkeypatch.setattr(traces, "cpu_seconds", lambda pids: next(readings))
    pids = {"reaction": 1, "jaeger": 2, "pushsink": 3}
    result = traces.cpu_per_1000(pids, lambda: 500, tracing=True, sample_ratio=0.1)
    assert (result.reactions, result.tracing, result.sample_ratio) == (500, True, 0.1)
    assert result.by_process == {"reaction": 2.0, "jaeger": 0.5, "pushsink": 1.0}  # CPU-s per 1,000 reactions
    assert result.services == 3.0  # Jaeger is the backend's cost, not a service's


# -- the services' side ----------------------------------------------------------------------------


def test_tracing_off_installs_nothing_and_spans_are_shared_no_ops() -> None:
    p = argparse.ArgumentParser()
    tracing.add_arguments(p)
    args = p.parse_args(["--tracing", "off"])
    settings = tracing.Settings.from_args(args)
    assert not settings.enabled and settings.otlp_endpoint == topology.url(topology.JAEGER_OTLP_HTTP_PORT)
    tracing.setup("reaction", settings, ("http-server",))
    assert not tracing.traced() and tracing.server_middlewares() == []
    with tracing.span("x") as span:
        assert not span.is_recording()
    tracing.annotate(reaction_id="r1")  # no current span, no error
    assert tracing.consume_context([("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]) is None


def test_sample_ratio_must_be_a_share() -> None:
    p = argparse.ArgumentParser()
    tracing.add_arguments(p)
    assert p.parse_args(["--trace-sample-ratio", "0.25"]).trace_sample_ratio == 0.25
    with pytest.raises(SystemExit):
        p.parse_args(["--trace-sample-ratio", "1.5"])


@pytest.mark.parametrize(
    ("name", "kind", "attributes", "want"),
    [
        ("/syncasync.v1.Notification/Notify", None, {"rpc.system": "grpc"}, "syncasync.v1.Notification/Notify"),
        ("reactions send", tracing.SpanKind.PRODUCER, {}, "send reactions"),
        ("reactions.dlq send", tracing.SpanKind.PRODUCER, {}, "send reactions.dlq"),
        ("process reactions", tracing.SpanKind.CONSUMER, {}, None),
        ("POST /push", tracing.SpanKind.SERVER, {}, None),
    ],
)
def test_instrumentation_span_names_follow_the_conventions(
    name: str, kind: tracing.SpanKind | None, attributes: dict[str, str], want: str | None
) -> None:
    assert tracing.semconv_name(name, kind, attributes) == want


def test_the_services_get_the_tracing_flags_and_jaeger_listens_locally() -> None:
    assert Tracing(enabled=False, sample_ratio=0.1).argv() == ["--tracing", "off", "--trace-sample-ratio", "0.1"]
    assert Tracing().argv() == []  # the defaults: on, every trace, Jaeger's OTLP port
    config = json.dumps(jaeger_config())
    for port in (topology.JAEGER_OTLP_HTTP_PORT, topology.JAEGER_QUERY_HTTP_PORT, topology.JAEGER_QUERY_GRPC_PORT):
        assert f'"{topology.HOST}:{port}"' in config
    assert "0.0.0.0" not in config
