"""What `bench capacity` found (capacity.json), the ratios to the ceilings, and the last capacity of this
machine that capacity-relative rates resolve from."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import Field, ValidationError, model_validator

from facts import paths, topology
from harness.capacity import cpu, generator_cost
from harness.capacity.ceilings import Ceiling
from harness.capacity.config import ALL_LIMITS, Model, SearchSettings, ServiceLevel
from harness.capacity.search import SearchResult
from harness.capacity.step import Step
from loadtests.profile import Capacities

SCHEMA = 1
CAPACITY_FILE = "capacity.json"  # in a capacity run's folder, and copied into each run's that used it
ACCEPTANCE = "{pipeline}.acceptance"  # the name a profile gives a pipeline's acceptance ("0.5 x async.acceptance")


class TracingCost(Model):
    """The CPU step played with one tracing setting: what tracing costs each component."""

    setting: str  # "off", or the share of traces kept
    cpu_seconds_per_1000: dict[str, float] = Field(default_factory=dict)
    api_p50_seconds: float | None = None
    api_p99_seconds: float | None = None
    held: bool = True

    @classmethod
    def of(cls, setting: str, st: Step) -> TracingCost:
        return cls(setting=setting, cpu_seconds_per_1000=st.cpu_seconds_per_1000, api_p50_seconds=st.api_p50_seconds,
                   api_p99_seconds=st.api_p99_seconds, held=st.verdict(ALL_LIMITS) == "held")  # fmt: skip

    def services(self) -> float | None:
        """CPU seconds per 1,000 of the pipeline's own processes (the generator and the rest left out)."""
        own = [v for n, v in self.cpu_seconds_per_1000.items() if n in topology.SERVICES]
        return sum(own) if own else None


class PipelineCapacity(Model):
    pipeline: str
    capacity: SearchResult  # every limit: for async this is the delivery (sustainable) capacity
    acceptance: SearchResult | None = None  # async: API p99 and errors only (what the API accepts)
    cpu_rate: float  # the fixed rate CPU per 1,000 reactions was read at
    cpu_seconds_per_1000: dict[str, float] = Field(default_factory=dict)  # per 1,000 acknowledged
    cpu_step_held: bool = True  # False: that step broke its service level (errors inflate the figure)
    steps: list[Step] = Field(default_factory=list)  # every step measured, in order
    tracing_costs: list[TracingCost] = Field(default_factory=list)  # the CPU step under each tracing setting


CPU_BOUNDS = "CPU bounds (the most the cores could carry, spent on these services alone):"


class CpuBound(Model):
    """The most the machine's cores could carry were they spent on `components` alone, at what each
    reaction cost them at the capacity found: about as far as tuning the rest (generator, broker,
    proxies) could take the capacity without making these components cheaper."""

    name: str  # "<pipeline>" (every limit) or "<pipeline>.acceptance"
    rate: float  # the step the costs were read at (the capacity, held)
    components: list[str]
    cpu_seconds_per_1000: float  # of `components` together, per 1,000 acknowledged
    cpus: int
    per_second: float  # cpus * 1000 / cpu_seconds_per_1000

    @property
    def text(self) -> str:
        took = f"took {self.cpu_seconds_per_1000:.2f} CPU-s per 1,000 reactions at {self.rate:.0f}/s"
        most = f"{self.cpus} cores carry at most {self.per_second:,.0f}/s"
        return f"{self.name}: {', '.join(self.components)} {took}: {most}"


class Ratio(Model):
    name: str
    numerator: str
    denominator: str
    value: float | None
    text: str
    most: float | None = None  # the same ratio at the numerator's CPU bound (None: none, or written before it)


class GeneratorOnHealthz(Model):
    """The load generator alone on GET /healthz (the service's cheapest answer), next to wrk there."""

    rate: float  # offered, open loop
    cpu_seconds_per_1000: float | None
    lag_p99_seconds: float | None
    wrk_cpu_seconds_per_1000: float | None
    # Its sleeps per request, what one wakeup cost beside it (harness/capacity/wakeup_probe.py), and wrk's sleeps:
    # an open loop wakes for each arrival and each answer, wrk's closed loop hardly ever sleeps.
    wakeups_per_request: float | None = None
    wakeup_cpu_seconds: float | None = None
    wrk_wakeups_per_request: float | None = None
    wake_interval_seconds: float | None = None  # the generator's --wake-interval (None: written before it had one)
    # The control at the same rate: wrk paced to the rate the generator achieved (its cost per request
    # is lowest saturating the server, far above this rate). None: written before it was measured, or
    # the generator had no answer to calibrate it with.
    achieved_per_second: float | None = None
    paced_wrk: Ceiling | None = None
    # At its max: offered more than wrk achieves, with at most this many requests in flight (wrk's
    # connections), the arrivals beyond the cap missed (so no lag p99: those it started keep no
    # schedule). None: at a fixed rate, its cap far above what the rate keeps in flight.
    in_flight_cap: int | None = None
    wrk_per_second: float | None = None  # what wrk at its max achieved there (None: written before it was kept)

    def times_wrk(self) -> float | None:
        g, w = self.cpu_seconds_per_1000, self.wrk_cpu_seconds_per_1000
        return g / w if g is not None and w else None

    def times_paced_wrk(self) -> float | None:
        if self.paced_wrk is None or self.achieved_per_second is None:
            return None
        return generator_cost.paced_ratio(
            self.cpu_seconds_per_1000, self.achieved_per_second,
            self.paced_wrk.cpu_seconds_per_1000, self.paced_wrk.per_second,
        )  # fmt: skip

    def at_wrk_wakeups_seconds_per_1000(self) -> float | None:
        """CPU per 1,000 requests less the wakeups beyond wrk's (CPU-s per 1,000 = ms per request)."""
        each = self.wakeup_cpu_seconds
        return generator_cost.at_wrk_wakeups(
            self.cpu_seconds_per_1000, self.wakeups_per_request, self.wrk_wakeups_per_request,
            None if each is None else each * 1000,
        )  # fmt: skip


class GeneratorFigures(Model):
    """The load generator seen through the same steps: how fast it kept up, what it costs."""

    kept_up_max_rate: float | None  # highest step rate where it did not fall behind
    fell_behind_min_rate: float | None  # lowest step rate where it did
    cpu_seconds_per_1000: float | None  # at the fixed CPU rate (async)
    wrk_cpu_seconds_per_1000: float | None  # wrk on the same POST (async)
    # Reports written before the generator could send GET /healthz say so in text.
    healthz: GeneratorOnHealthz | str = "not measured"
    # The same on GET /healthz at the highest capacity this run found (async's acceptance, as a rule):
    # the top of the range its cost and lag are held to, where its fixed per-second work weighs least.
    # None: written before it was measured, a run without ceilings, or no capacity above the CPU steps' rate.
    at_top: GeneratorOnHealthz | None = None
    # The same at its max beside wrk at its max, each tool at its own (the generator's may be below the
    # server's): the like-for-like comparison of what a request costs each. None: written before it was
    # measured, a run without ceilings, or wrk on GET /healthz failed (nothing to offer more than).
    at_max: GeneratorOnHealthz | None = None


class OnHealthz(NamedTuple):
    """The generator's runs on GET /healthz in one capacity run (GeneratorFigures says what each is for)."""

    steps_rate: GeneratorOnHealthz
    top: GeneratorOnHealthz | None
    max: GeneratorOnHealthz | None


class CapacityReport(Model):
    schema_version: int = SCHEMA
    run_id: str
    hostname: str
    cpus: int | None
    runtime: str = "native"
    quick: bool
    tracing: str = "1"  # the search's tracing setting (reports older than the setting traced every reaction)
    started_unix: float
    finished_unix: float = 0.0
    service_level: ServiceLevel
    search: SearchSettings
    pipelines: dict[str, PipelineCapacity] = Field(default_factory=dict)
    ceilings: list[Ceiling] = Field(default_factory=list)
    ratios: list[Ratio] = Field(default_factory=list)
    cpu_bounds: list[CpuBound] = Field(default_factory=list)
    generator: GeneratorFigures | None = None
    # Notification replicas and sync's balancer (harness/replicas.py); 1/none: the single stack.
    replicas: int = 1
    balancer: str = "none"
    scaling_note: str | None = None  # why these figures cannot show scaling, when the machine cannot

    @model_validator(mode="before")
    @classmethod
    def _before_generator_seconds(cls, data: Any) -> Any:
        """Files written before `generator_seconds` was a setting: it was max(ceiling_seconds, 5).
        (Here, not on SearchSettings: capacity.yaml must name it.)"""
        search = data.get("search") if isinstance(data, dict) else None
        if not isinstance(search, dict) or "generator_seconds" in search:
            return data
        ceiling = search.get("ceiling_seconds")
        if isinstance(ceiling, int | float):  # else: the usual errors
            return {**data, "search": {**search, "generator_seconds": max(float(ceiling), 5.0)}}
        return data

    def capacities(self) -> dict[str, float]:
        """The rates capacity-relative profiles may name: `<pipeline>` (every limit) and, for
        async, `async.acceptance`. Only rates that held; a generator-bound one is a lower bound."""
        out: dict[str, float] = {}
        for name, pc in self.pipelines.items():
            if pc.capacity.rate is not None:
                out[name] = pc.capacity.rate
            if pc.acceptance is not None and pc.acceptance.rate is not None:
                out[ACCEPTANCE.format(pipeline=name)] = pc.acceptance.rate
        return out

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


def last_file(runtime: str = "native", host: str | None = None) -> Path:
    """The last capacity of this machine and stack kind."""
    return paths.state_dir() / f"capacity-{host or platform.node()}-{runtime}.json"


class CapacityFileError(ValueError):
    """A capacity.json that cannot be read: the message names the file and what is wrong."""


def load_report(path: Path) -> CapacityReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CapacityFileError(f"{path}: cannot read a capacity result: {e}") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA:
        raise CapacityFileError(f"{path}: not a capacity result of schema {SCHEMA}")
    try:
        return CapacityReport.model_validate(data)
    except ValidationError as e:
        raise CapacityFileError(f"{path}: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None


def last_capacities(runtime: str = "native") -> Capacities | None:
    """What `make_plan(capacities=...)` resolves "0.3 x sync" from; None when never measured here.
    A stack kind `bench capacity` cannot search (compose) uses the native stack's of this machine."""
    for path in dict.fromkeys((last_file(runtime), last_file("native"))):
        if path.exists():
            return capacities_from(path)
    return None


def capacities_from(path: Path) -> Capacities:
    """The capacities of one capacity.json (ValueError naming the file when it is not one)."""
    report = load_report(path)
    return Capacities(rates=report.capacities(), source=str(path), tracing=report.tracing)


def held_step(pc: PipelineCapacity, result: SearchResult) -> Step | None:
    """The last play at `result`'s rate that held under its limits and has CPU figures (None: none)."""
    plays = [
        st for st in pc.steps
        if st.rate == result.rate and st.cpu_seconds_per_1000 and st.verdict(result.limits) == "held"
    ]  # fmt: skip
    return plays[-1] if plays else None


def cpu_bounds(report: CapacityReport) -> list[CpuBound]:
    """Each capacity's CPU bound. Every reaction crosses the three services (every notification
    replica), and the reaction service accepts it (what the acceptance is bound by). Their costs are
    read at the capacity found, where the fixed per-second work weighs least, nothing else is counted
    and each may use every core: generous, though not a proof, since a reaction may cost a little less
    still above the capacity."""
    replicas = [topology.notification_replica(n).process for n in range(1, report.replicas + 1)]
    services = sorted({*topology.SERVICES, *replicas})
    edge = [topology.PORT_COMPONENT[topology.REACTION_HTTP_PORT]]
    out: list[CpuBound] = []
    for name, pc in report.pipelines.items():
        wanted = [(name, pc.capacity, services)]
        if pc.acceptance is not None:
            wanted.append((f"{name}.acceptance", pc.acceptance, edge))
        for label, result, components in wanted:
            st = held_step(pc, result)
            if st is None or result.rate is None or not report.cpus:
                continue
            if any(c not in st.cpu_seconds_per_1000 for c in components):
                continue  # a component unread: no bound rather than a loose one
            cost = sum(st.cpu_seconds_per_1000[c] for c in components)
            if cost > 0:
                out.append(CpuBound(name=label, rate=result.rate, components=components, cpu_seconds_per_1000=cost,
                                    cpus=report.cpus, per_second=report.cpus * 1000 / cost))  # fmt: skip
    return out


def ratios(report: CapacityReport) -> list[Ratio]:
    """Each capacity over what it is built on (and the HTTP POST over the cheapest endpoint), and
    each also at its CPU bound (`cpu_bounds`): the most it could be with these services' costs."""
    ceiling = {c.name: c.per_second for c in report.ceilings}
    bound = {b.name: b.per_second for b in report.cpu_bounds}
    # (name, numerator label, numerator, its CPU bound, denominator label, ceiling name)
    rows: list[tuple[str, str, float | None, float | None, str, str]] = []
    for name, pc in report.pipelines.items():
        rate, most = pc.capacity.rate, bound.get(name)
        # Not beside wrk's POST: that is the whole stack's at its max, the bound the services' alone.
        rows.append((f"{name}.http", f"{name} capacity", rate, None, f"wrk POST ({name})", f"http.wrk.post.{name}"))
        if name.startswith("sync"):
            rows.append((f"{name}.grpc", f"{name} capacity", rate, most, "gRPC Notify loop", "grpc.notify"))
            rows.append((f"{name}.grpc_bare", f"{name} capacity", rate, most, "bare gRPC", "grpc.bare"))
    if (a := report.pipelines.get("async")) is not None:
        acc, dlv = (a.acceptance.rate if a.acceptance else None), a.capacity.rate
        acc_most, dlv_most = bound.get(ACCEPTANCE.format(pipeline="async")), bound.get("async")
        rows += [
            ("async.acceptance.aiokafka", "async acceptance", acc, acc_most, "aiokafka produce",
             "kafka.produce.aiokafka"),
            ("async.acceptance.java", "async acceptance", acc, acc_most, "ProducerPerformance", "kafka.produce.java"),
            ("async.delivery.aiokafka", "async delivery", dlv, dlv_most, "aiokafka consume", "kafka.consume.aiokafka"),
            ("async.delivery.java", "async delivery", dlv, dlv_most, "ConsumerPerformance", "kafka.consume.java"),
        ]  # fmt: skip
    post = ceiling.get("http.wrk.post.async")
    rows.append(("http.post_vs_healthz", "wrk POST (async)", post, None, "wrk GET /healthz", "http.wrk.healthz"))
    out = []
    for name, num_label, num, num_most, den_label, den_name in rows:
        den = ceiling.get(den_name)
        value = num / den if num is not None and den else None
        most = num_most / den if num_most is not None and den else None
        text = f"{name}: {num_label} / {den_label} = " + ("-" if value is None else f"{value:.3g}")
        if most is not None:
            text += f" (at most {most:.3g} at its CPU bound)"
        out.append(Ratio(name=name, numerator=num_label, denominator=den_label, value=value, text=text, most=most))
    return out


def top_rate(report: CapacityReport, start_rate: float) -> float | None:
    """The highest capacity (or async acceptance) the searches found, when above the CPU steps' rate
    `start_rate`: where the generator is measured again, on GET /healthz, next to wrk."""
    top = max(report.capacities().values(), default=None)
    return top if top is not None and top > start_rate else None


def generator_figures(report: CapacityReport, on_healthz: OnHealthz | None) -> GeneratorFigures:
    steps = [st for pc in report.pipelines.values() for st in pc.steps]
    kept = [st.rate for st in steps if not st.generator_reasons]
    behind = [st.rate for st in steps if st.generator_reasons]
    gen_cpu = wrk_cpu = None
    if (a := report.pipelines.get("async")) is not None:
        first = next((st for st in a.steps if st.rate == a.cpu_rate), None)
        if first is not None and first.sent:
            loadgen = first.cpu_cores.get(cpu.LOADGEN)
            gen_cpu = loadgen * first.seconds / first.sent * 1000 if loadgen is not None else None
    for c in report.ceilings:
        if c.name == "http.wrk.post.async":
            wrk_cpu = c.cpu_seconds_per_1000
    return GeneratorFigures(
        kept_up_max_rate=max(kept, default=None),
        fell_behind_min_rate=min(behind, default=None),
        cpu_seconds_per_1000=gen_cpu,
        wrk_cpu_seconds_per_1000=wrk_cpu,
        healthz=on_healthz.steps_rate if on_healthz is not None else "not measured (no ceilings in this run)",
        at_top=None if on_healthz is None else on_healthz.top,
        at_max=None if on_healthz is None else on_healthz.max,
    )


def print_report(report: CapacityReport) -> None:
    print(f"\ncapacity on {report.hostname} ({report.cpus} CPUs), service level: API p99 < "
          f"{report.service_level.api_p99_seconds * 1000:g} ms, errors < {report.service_level.error_ratio:.2%}, "
          f"async backlog growth < {report.service_level.backlog_growth_ratio:.0%} of the rate")  # fmt: skip
    for name, pc in report.pipelines.items():
        print(f"  {name:<15} {pc.capacity.summary()}")
        if pc.acceptance is not None:
            print(f"  {name + ' accepts':<15} {pc.acceptance.summary()}")
    print("ceilings:")
    width = max((len(c.name) for c in report.ceilings), default=0)  # http.wrk.post.sync-resilient is 28
    for c in report.ceilings:
        value = "failed: " + (c.error or "") if c.per_second is None else f"{c.per_second:>10,.0f}/s"
        print(f"  {c.name:<{width}} {value}")
    if report.cpu_bounds:
        print(CPU_BOUNDS)
    for b in report.cpu_bounds:
        print(f"  {b.text}")
    print("ratios:")
    for r in report.ratios:
        print(f"  {r.text}")
    print(f"CPU seconds per 1,000 reactions (at {report.search.start_rate:g}/s):")
    for name, pc in report.pipelines.items():
        note = "" if pc.cpu_step_held else "  (that step broke its service level)"
        print(f"  {name:<15} " + "  ".join(f"{n} {v:.2f}" for n, v in sorted(pc.cpu_seconds_per_1000.items())) + note)
    print(f"what tracing costs (the search traced: {report.tracing}), CPU seconds per 1,000 of the services:")
    for name, pc in report.pipelines.items():
        costs = "  ".join(f"{c.setting}: {number(c.services())}" for c in pc.tracing_costs)
        print(f"  {name:<15} {costs or '-'}")
    if (g := report.generator) is not None:
        cost = f"CPU s per 1,000 requests {number(g.cpu_seconds_per_1000)} vs wrk {number(g.wrk_cpu_seconds_per_1000)}"
        kept = "at no step" if g.kept_up_max_rate is None else f"to {g.kept_up_max_rate:.0f}/s"
        behind = "at no step" if g.fell_behind_min_rate is None else f"from {g.fell_behind_min_rate:.0f}/s"
        print(f"generator: kept up {kept}, fell behind {behind}; {cost}")
        for h, which in ((g.healthz, "the CPU steps' rate"), (g.at_top, "the run's top capacity")):
            if isinstance(h, GeneratorOnHealthz):
                lag = None if h.lag_p99_seconds is None else h.lag_p99_seconds * 1000
                print(f"  at {which}, on GET /healthz at {h.rate:.0f}/s: {number(h.cpu_seconds_per_1000)} ms CPU per "
                      f"request, {times(h.times_wrk())} wrk at its max, {times(h.times_paced_wrk())} wrk paced to "
                      f"the rate, lag p99 {number(lag)} ms")  # fmt: skip
        if (h := g.at_max) is not None:
            print(f"  at its max, on GET /healthz ({h.achieved_per_second or 0:.0f}/s, wrk "
                  f"{h.wrk_per_second or 0:.0f}/s; at most {h.in_flight_cap} in flight): "
                  f"{number(h.cpu_seconds_per_1000)} ms CPU per request, {times(h.times_wrk())} wrk at "
                  "its max")  # fmt: skip


def number(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def times(v: float | None) -> str:
    """A ratio such as the generator's CPU per request to wrk's: one decimal where it decides a target
    (within 3x), whole from 10x up; the printout and the report both format ratios here."""
    if v is None:
        return "-"
    tenths = round(v, 1)  # 9.96 is "10x" as 10.0 is, not "10.0x"
    return f"{v:.0f}x" if tenths >= 10 else f"{tenths:.1f}x"
