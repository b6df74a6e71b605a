"""Reading the traces back from Jaeger: what following one reaction costs a person, per pipeline.

For a set of reaction ids (and the subset the sink says it delivered) `summarise` measures:

- **completeness**: the share of delivered reactions with one trace whose first push to the sink
  (the push sink's server span with `push.first`) hangs, parent by parent, from the reaction
  service's API request span: the API request connected to the push;
- **traces and spans to open**: the traces holding any span tagged with the reaction id, and every
  span in them (gRPC retries, consumer redeliveries and push retries included: they land in the
  same trace because the context travels with the call and in the Kafka record's headers);
- **the critical path split into hops**, consecutive, so they add up to API request -> push:
  `handler` (request start -> the transport call), then for sync `grpc_call` (client call start ->
  the notification's server span) and for async `produce` (leader check -> broker ack) and
  `broker_wait` (ack -> the consumer's process span: time in Kafka plus consumer lag), then
  `delivery` (entry into the notification service -> the push sink's span ended).

The spans come through Jaeger's HTTP query API (`/api/traces`, the one its UI uses), per service
and time window; a window holding more traces than one answer may carry is halved until it fits.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from facts import measures, topology
from facts.quantiles import summary
from facts.spans import PUSH_FIRST, REACTION_ID

HOPS = measures.TRACE_HOPS
SAMPLES = 10  # reaction ids listed per kind of problem


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(_Model):
    """One span as Jaeger's JSON API gives it (times in microseconds since the epoch)."""

    trace_id: str
    span_id: str
    parent_id: str | None  # the CHILD_OF reference
    links: list[str] = Field(default_factory=list)  # span ids of FOLLOWS_FROM references
    operation: str
    service: str
    kind: str  # server, client, producer, consumer, internal
    start_us: int
    duration_us: int
    tags: dict[str, Any] = Field(default_factory=dict)

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    @property
    def reaction_id(self) -> str | None:
        value = self.tags.get(REACTION_ID)
        return str(value) if value is not None else None


class Trace(_Model):
    trace_id: str
    spans: list[Span]


def parse_traces(payload: dict[str, Any]) -> list[Trace]:
    """Jaeger's `{"data": [{"traceID", "spans", "processes"}]}` as typed traces."""
    traces = []
    for raw in payload.get("data") or ():
        processes = {pid: p.get("serviceName", "") for pid, p in (raw.get("processes") or {}).items()}
        spans = []
        for s in raw.get("spans") or ():
            tags = {t["key"]: t.get("value") for t in s.get("tags") or ()}
            refs = s.get("references") or ()
            parent = next((r["spanID"] for r in refs if r.get("refType") == "CHILD_OF"), None)
            links = [r["spanID"] for r in refs if r.get("refType") == "FOLLOWS_FROM"]
            spans.append(
                Span(
                    trace_id=s["traceID"],
                    span_id=s["spanID"],
                    parent_id=parent,
                    links=links,
                    operation=s.get("operationName", ""),
                    service=processes.get(s.get("processID", ""), ""),
                    kind=str(tags.get("span.kind", "internal")),
                    start_us=int(s.get("startTime", 0)),
                    duration_us=int(s.get("duration", 0)),
                    tags=tags,
                )
            )
        traces.append(Trace(trace_id=raw["traceID"], spans=spans))
    return traces


Fetch = Callable[[str], dict[str, Any]]


def _http_get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=60) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


class JaegerQuery:
    """Jaeger's query API (`fetch` is replaceable: the unit tests answer from fakes)."""

    def __init__(self, base_url: str | None = None, fetch: Fetch | None = None, page: int = 5_000) -> None:
        self.base_url = (base_url or topology.url(topology.JAEGER_QUERY_HTTP_PORT)).rstrip("/")
        self._fetch = fetch or _http_get_json
        self.page = page  # traces per answer; a fuller window is split

    def services(self) -> list[str]:
        return list(self._fetch(f"{self.base_url}/api/services").get("data") or [])

    def find(
        self, service: str, start_us: int, end_us: int, *, limit: int | None = None, tags: dict[str, str] | None = None
    ) -> list[Trace]:
        params: dict[str, str | int] = {
            "service": service,
            "start": start_us,
            "end": end_us,
            "limit": limit or self.page,
        }
        if tags:
            params["tags"] = json.dumps(tags)
        return parse_traces(self._fetch(f"{self.base_url}/api/traces?{urllib.parse.urlencode(params)}"))

    def traces(self, trace_ids: Sequence[str]) -> list[Trace]:
        if not trace_ids:
            return []
        query = urllib.parse.urlencode([("traceID", t) for t in trace_ids])
        return parse_traces(self._fetch(f"{self.base_url}/api/traces?{query}"))

    def window(
        self, start_unix: float, end_unix: float, services: Iterable[str] = topology.SERVICES
    ) -> dict[str, Trace]:
        """Every trace with a span of `services` starting in the window, by trace id."""
        return self.windows([(start_unix, end_unix)], services)

    def windows(
        self, windows: Iterable[tuple[float, float]], services: Iterable[str] = topology.SERVICES
    ) -> dict[str, Trace]:
        """Every trace with a span of `services` starting in one of the windows, by trace id (a trace
        met in two answers is kept with the more spans: the later answer saw more of it)."""
        found: dict[str, Trace] = {}
        services = tuple(services)  # read once per window
        for start_unix, end_unix in windows:
            for service in services:
                self._window(service, int(start_unix * 1e6), int(end_unix * 1e6), found)
        return found

    def _window(self, service: str, start_us: int, end_us: int, found: dict[str, Trace]) -> None:
        traces = self.find(service, start_us, end_us)
        if len(traces) >= self.page and end_us - start_us > 1_000:
            middle = (start_us + end_us) // 2
            self._window(service, start_us, middle, found)
            self._window(service, middle, end_us, found)
            return
        for t in traces:
            known = found.get(t.trace_id)
            if known is None or len(t.spans) > len(known.spans):
                found[t.trace_id] = t


# -- per reaction ----------------------------------------------------------------------------------


class ReactionTrace(_Model):
    """What following one reaction takes, and its critical path when connected."""

    reaction_id: str
    traces: int  # traces holding a span with this reaction id
    spans: int  # every span of those traces
    entries: int  # times it entered the notification service (gRPC server or Kafka process spans)
    push_attempts: int  # HTTP client spans of its deliveries
    connected: bool  # one of its pushes hangs from its API request span
    first_push_connected: bool = False  # ... and that push is the sink's first sight of it
    why: str | None = None  # when not connected
    hops: dict[str, float] = Field(default_factory=dict)  # seconds


def _is_entry(span: Span) -> bool:
    return span.service == topology.NOTIFICATION and (
        (span.kind == "server" and "rpc.system" in span.tags) or span.operation.startswith("process ")
    )


def follow(reaction_id: str, traces: Sequence[Trace]) -> ReactionTrace:
    """The traces of one reaction (those holding a span tagged with its id)."""
    spans = [s for t in traces for s in t.spans]
    entries = sum(1 for s in spans if _is_entry(s) and s.reaction_id == reaction_id)
    by_id = {s.span_id: s for s in spans}
    push_attempts = sum(
        1
        for s in spans
        if s.service == topology.NOTIFICATION
        and s.kind == "client"
        and "rpc.system" not in s.tags
        # an HTTP attempt of this reaction's delivery: its parent is a "deliver push" of this id
        and (p := by_id.get(s.parent_id or "")) is not None
        and p.reaction_id == reaction_id
    )
    base = ReactionTrace(
        reaction_id=reaction_id,
        traces=len(traces),
        spans=len(spans),
        entries=entries,
        push_attempts=push_attempts,
        connected=False,
    )
    pushes = [
        s for s in spans if s.service == topology.PUSHSINK and s.kind == "server" and s.reaction_id == reaction_id
    ]
    if not pushes:
        return base.model_copy(update={"why": "no push span"})
    # The first push (the sink's first sight of the id) first; a later push that connects still
    # lets a person follow the reaction when the first one's sender died before exporting its spans.
    pushes.sort(key=lambda s: (s.tags.get(PUSH_FIRST) is not True, s.start_us))
    why = ""
    for push in pushes:
        chain = _chain(push, by_id)
        root = chain[-1]
        if root.service == topology.REACTION and root.kind == "server" and root.parent_id is None:
            return base.model_copy(
                update={"connected": True, "first_push_connected": push is pushes[0], "hops": _hops(chain[::-1])}
            )
        why = why or f"chain breaks above {root.service} {root.operation!r}" + (
            " (its parent span is missing)" if root.parent_id is not None else ""
        )
    return base.model_copy(update={"why": why})


def _chain(span: Span, by_id: dict[str, Span]) -> list[Span]:
    """`span` and its ancestors, nearest first, as far as they are in the trace."""
    chain = [span]
    seen = {span.span_id}
    while chain[-1].parent_id and chain[-1].parent_id in by_id and chain[-1].parent_id not in seen:
        parent = by_id[chain[-1].parent_id]
        seen.add(parent.span_id)
        chain.append(parent)
    return chain


def _hops(path: list[Span]) -> dict[str, float]:
    """Consecutive hops along the path root -> push (seconds, >= 0)."""
    root, push = path[0], path[-1]
    grpc_client = next((s for s in path if s.service == topology.REACTION and s.kind == "client"), None)
    produce = next((s for s in path if s.service == topology.REACTION and s.operation.startswith("produce ")), None)
    entry = next((s for s in path if _is_entry(s)), None)
    if entry is None:
        return {}
    transport = grpc_client or produce
    out: dict[str, int] = {}
    if transport is not None:
        out["handler"] = transport.start_us - root.start_us
    if grpc_client is not None:
        out["grpc_call"] = entry.start_us - grpc_client.start_us
    if produce is not None:
        out["produce"] = produce.duration_us
        out["broker_wait"] = entry.start_us - produce.end_us
    out["delivery"] = push.end_us - entry.start_us
    return {hop: max(0, us) / 1e6 for hop, us in out.items()}


# -- the summary ---------------------------------------------------------------------------------


class Distribution(_Model):
    """Nearest-rank quantiles of one figure (None: nothing to measure)."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    count: int = 0

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        s = summary(values)
        return cls(p50=s["p50"], p90=s["p90"], p99=s["p99"], max=s["max"], mean=s["mean"], count=int(s["count"] or 0))


class TraceSummary(_Model):
    """Traceability of one cell (or any set of reactions), as read from Jaeger."""

    pipeline: str | None = None
    reactions: int  # reaction ids asked about
    delivered: int  # of which the sink received (the completeness denominator)
    traced: int  # reactions with at least one span tagged with their id
    connected: int  # delivered reactions whose API request span connects to a push span of theirs
    first_push_connected: int  # ... to the sink's first push of them (the one the end-to-end latency uses)
    # connected / delivered; with a sample ratio below 1, connected / (delivered and traced): an
    # unsampled reaction has no trace by design
    completeness: float | None
    traces_per_reaction: Distribution  # over traced reactions
    spans_per_reaction: Distribution
    entries_per_reaction: Distribution  # notification entries: >1 is a gRPC retry or a redelivery
    push_attempts_per_reaction: Distribution
    hops: dict[str, Distribution]  # seconds, over connected reactions; keys from HOPS
    unconnected: dict[str, list[str]] = Field(default_factory=dict)  # why -> sample reaction ids
    sample_ratio: float | None = None  # the services' --trace-sample-ratio, when known
    windows: int = 1  # windows of the load read (a long cell is read in parts: tracing.yaml's read_back)


def summarise(
    reaction_ids: Iterable[str],
    traces: Iterable[Trace],
    *,
    delivered: Iterable[str] | None = None,
    pipeline: str | None = None,
    sample_ratio: float | None = None,
) -> TraceSummary:
    wanted = set(reaction_ids)
    delivered_ids = wanted if delivered is None else set(delivered) & wanted
    by_reaction: dict[str, list[Trace]] = defaultdict(list)
    for t in traces:
        for rid in {s.reaction_id for s in t.spans if s.reaction_id is not None} & wanted:
            by_reaction[rid].append(t)
    followed = {rid: follow(rid, ts) for rid, ts in by_reaction.items()}
    if sample_ratio is not None and sample_ratio < 1.0:
        delivered_ids &= set(followed)
    connected = [f for rid, f in followed.items() if f.connected and rid in delivered_ids]
    unconnected: dict[str, list[str]] = defaultdict(list)
    for rid in sorted(delivered_ids):
        f = followed.get(rid)
        if f is None or not f.connected:
            why = "no span with its reaction id" if f is None else f.why or "?"
            if len(unconnected[why]) < SAMPLES:
                unconnected[why].append(rid)
    hop_values: dict[str, list[float]] = defaultdict(list)
    for f in connected:
        for hop, seconds in f.hops.items():
            hop_values[hop].append(seconds)
    return TraceSummary(
        pipeline=pipeline,
        reactions=len(wanted),
        delivered=len(delivered_ids),
        traced=len(followed),
        connected=len(connected),
        first_push_connected=sum(1 for f in connected if f.first_push_connected),
        completeness=len(connected) / len(delivered_ids) if delivered_ids else None,
        traces_per_reaction=Distribution.of(f.traces for f in followed.values()),
        spans_per_reaction=Distribution.of(f.spans for f in followed.values()),
        entries_per_reaction=Distribution.of(f.entries for f in followed.values()),
        push_attempts_per_reaction=Distribution.of(f.push_attempts for f in followed.values()),
        hops={hop: Distribution.of(hop_values[hop]) for hop in HOPS if hop_values.get(hop)},
        unconnected=dict(unconnected),
        sample_ratio=sample_ratio,
    )


def read_windows(start_unix: float, end_unix: float, max_seconds: float, count: int) -> list[tuple[float, float]]:
    """The span itself when it is at most `max_seconds` long; else `count` windows of
    `max_seconds / count` spread evenly over it (their centres at the middles of equal parts)."""
    span = end_unix - start_unix
    if span <= max_seconds:
        return [(start_unix, end_unix)]
    width = max_seconds / count
    centres = (start_unix + (i + 0.5) * span / count for i in range(count))
    return [(c - width / 2, c + width / 2) for c in centres]


def measure(
    reaction_ids: Iterable[str],
    windows: Sequence[tuple[float, float]],
    *,
    delivered: Iterable[str] | None = None,
    pipeline: str | None = None,
    query: JaegerQuery | None = None,
    settle_seconds: float = 30.0,
    poll_seconds: float = 2.0,
    sample_ratio: float | None = None,
) -> TraceSummary:
    """Read the traces of `windows` (start, end unix seconds) from Jaeger and summarise them for
    `reaction_ids` (those started in the windows).

    Spans reach Jaeger a batch interval after they end (and a redelivered record's spans later
    still): read until every delivered reaction is connected, or the connected count stops
    growing between two reads (after a first read that found some), or `settle_seconds` pass.
    """
    query = query or JaegerQuery()
    ids = list(reaction_ids)
    delivered_ids = list(delivered) if delivered is not None else None
    deadline = time.monotonic() + settle_seconds
    previous = -1
    while True:
        found = query.windows(windows)
        result = summarise(ids, found.values(), delivered=delivered_ids, pipeline=pipeline, sample_ratio=sample_ratio)
        result.windows = len(windows)
        stable = result.connected == previous and previous > 0
        if result.connected == result.delivered or stable or time.monotonic() >= deadline:
            return result
        previous = result.connected
        time.sleep(poll_seconds)


# -- what tracing costs ----------------------------------------------------------------------------


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each named process so far (0 for one that is gone)."""
    out = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            out[name] = times.user + times.system
        except psutil.Error:
            out[name] = 0.0
    return out


class CpuPer1000(_Model):
    """CPU seconds per 1,000 reactions, by process, with tracing on or off."""

    tracing: bool
    sample_ratio: float
    reactions: int
    wall_seconds: float
    by_process: dict[str, float]

    @property
    def services(self) -> float:
        """The three services (what tracing adds work to); Jaeger is the backend's own cost."""
        return sum(v for k, v in self.by_process.items() if k in topology.SERVICES)


def cpu_per_1000(
    pids: Mapping[str, int], load: Callable[[], int], *, tracing: bool, sample_ratio: float = 1.0
) -> CpuPer1000:
    """Run `load` (it returns how many reactions it sent and saw delivered) and charge each process."""
    before, started = cpu_seconds(pids), time.monotonic()
    reactions = load()
    after, wall = cpu_seconds(pids), time.monotonic() - started
    per = 1000 / max(1, reactions)
    return CpuPer1000(
        tracing=tracing,
        sample_ratio=sample_ratio,
        reactions=reactions,
        wall_seconds=round(wall, 3),
        by_process={name: round((after[name] - before[name]) * per, 4) for name in pids},
    )


class TracingOverhead(_Model):
    pipeline: str
    machine: str
    off: CpuPer1000
    on: CpuPer1000

    @property
    def services_ratio(self) -> float | None:
        """CPU of the three services with tracing on / off, per reaction (1.25 = 25 % more)."""
        return self.on.services / self.off.services if self.off.services else None
