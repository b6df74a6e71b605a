"""bench capacity without a stack: the search over fake steps, the service level file, the judge,
the ratios and the last-capacity file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.capacity.ceilings import Ceiling
from harness.capacity.ceilings_http import parse_wrk
from harness.capacity.ceilings_kafka import parse_consumer_performance, parse_producer_performance
from harness.capacity.command import measure_tracing_costs, scales_runs
from harness.capacity.config import (
    ACCEPTANCE_LIMITS,
    ALL_LIMITS,
    API_P99,
    BACKLOG,
    LIMITS_FILE,
    ConfigError,
    Disturbed,
    SearchSettings,
    ServiceLevel,
    load_config,
)
from harness.capacity.report import (
    CapacityReport,
    GeneratorFigures,
    PipelineCapacity,
    TracingCost,
    cpu_bounds,
    last_capacities,
    last_file,
    print_report,
    ratios,
    times,
    top_rate,
)
from harness.capacity.runner import StepRunner, _not_started
from harness.capacity.search import SearchResult, held_on_every_play, search
from harness.capacity.step import Step, judge, slope
from harness.generator_health import load_limits
from tests.synthetic_run import write_capacity

LEVEL = ServiceLevel(api_p99_seconds=0.1, error_ratio=0.001, backlog_growth_ratio=0.02)
SETTINGS = SearchSettings(
    start_rate=100, max_rate=6400, warmup_seconds=1, measure_seconds=1, resolution=0.05, min_step=5,
    drain_seconds=1, ceiling_seconds=1, generator_seconds=1,
)  # fmt: skip


def fake_step(
    rate: float, *, api_p99: float = 0.01, service_p99: float | None = None, errors: float = 0.0,
    backlog_growth: float | None = None, generator: list[str] | None = None, pipeline: str = "sync",
) -> Step:  # fmt: skip
    service = api_p99 if service_p99 is None else service_p99
    return Step(
        pipeline=pipeline, rate=rate, seconds=1.0, sent=int(rate), acknowledged=int(rate), failed=0, unknown=0,
        missed=0, achieved_rate=rate, error_ratio=errors, api_p50_seconds=api_p99 / 2, api_p99_seconds=api_p99,
        service_p99_seconds=service, lag_p99_seconds=0.0, lag_max_seconds=0.0,
        backlog_growth_per_second=backlog_growth,
        cpu_cores={"reaction": min(1.0, rate / 1000), "notification": min(1.0, rate / 700), "loadgen": rate / 1500},
        breaches=judge(LEVEL, pipeline, rate, api_p99=api_p99, error_ratio=errors, backlog_growth=backlog_growth),
        breaches_without_lag=judge(LEVEL, pipeline, rate, api_p99=service, error_ratio=errors,
                                   backlog_growth=backlog_growth),
        generator_reasons=generator or [],
    )  # fmt: skip


class Pipeline:
    """A fake pipeline: latency explodes above `capacity`; the generator lags above `generator_limit`."""

    def __init__(self, capacity: float, generator_limit: float = float("inf")) -> None:
        self.capacity, self.generator_limit = capacity, generator_limit
        self.calls: list[float] = []

    def __call__(self, rate: float) -> Step:
        self.calls.append(rate)
        lagging = rate > self.generator_limit
        over = rate > self.capacity
        api = 0.5 if over else 0.01
        lag = 0.3 if lagging else 0.0
        return fake_step(
            rate, api_p99=api + lag, service_p99=api, generator=["schedule lag p99 300 ms > 50 ms"] if lagging else None
        )


def test_coarse_then_bisection_converges_on_the_capacity() -> None:
    fake = Pipeline(capacity=650)
    result = search(fake, ALL_LIMITS, SETTINGS)
    assert result.bound == "pipeline"
    assert result.rate is not None and result.broke_at is not None
    assert result.rate <= 650 < result.broke_at
    assert result.broke_at - result.rate <= max(SETTINGS.resolution * result.rate, SETTINGS.min_step)
    assert fake.calls[:4] == [100, 200, 400, 800]  # doubling until a step breaks
    assert all(400 <= r <= 800 for r in fake.calls[4:])  # then only between held and broke
    assert any("API p99" in r for r in result.reasons)
    assert result.busiest == "notification"  # the component with the most CPU, the generator excluded
    assert result.cpu_cores_at_break["notification"] > 0.9


class LuckyBoundary(Pipeline):
    """Holds up to `capacity`; between `capacity` and `lucky` a rate holds the first time only."""

    def __init__(self, capacity: float, lucky: float) -> None:
        super().__init__(capacity)
        self.lucky = lucky

    def __call__(self, rate: float) -> Step:
        first = rate not in self.calls
        self.calls.append(rate)
        over = rate > self.lucky or (rate > self.capacity and not first)
        return fake_step(rate, api_p99=0.5 if over else 0.01)


def test_the_capacity_found_is_played_again_and_held_again() -> None:
    fake = Pipeline(capacity=650)
    result = search(fake, ALL_LIMITS, SETTINGS.model_copy(update={"confirm": 2}))
    assert result.rate is not None and result.rate <= 650 < (result.broke_at or 0)
    assert fake.calls.count(result.rate) == 3  # found once, then played twice more
    assert fake.calls[-2:] == [result.rate, result.rate]
    assert (result.confirmed, result.unconfirmed) == (2, [])
    assert "held again on 2 replays" in result.summary()


def test_a_rate_that_held_by_luck_breaks_on_its_replay_and_the_search_goes_below_it() -> None:
    fake = LuckyBoundary(capacity=500, lucky=700)  # 500-700/s hold once, never twice
    once = search(fake, ALL_LIMITS, SETTINGS)
    assert once.rate is not None and once.rate > 500  # without a replay the lucky window is the answer
    fake = LuckyBoundary(capacity=500, lucky=700)
    result = search(fake, ALL_LIMITS, SETTINGS.model_copy(update={"confirm": 1}))
    assert result.rate is not None and result.rate <= 500 < (result.broke_at or 0)
    assert result.unconfirmed and all(500 < r <= 700 for r in result.unconfirmed)
    assert (result.broke_at or 0) - result.rate <= max(SETTINGS.resolution * result.rate, SETTINGS.min_step)
    assert fake.calls[-1] == result.rate and result.confirmed == 1  # the answer itself was replayed
    assert "held, then broke on a replay" in result.summary()


def test_a_search_limit_that_breaks_on_its_replay_is_not_the_capacity() -> None:
    small = SETTINGS.model_copy(update={"max_rate": 800, "confirm": 1})
    held = search(Pipeline(capacity=10_000), ALL_LIMITS, small)
    assert (held.bound, held.rate, held.confirmed) == ("search-limit", 800, 1)
    lucky = search(LuckyBoundary(capacity=500, lucky=900), ALL_LIMITS, small)
    assert lucky.bound == "pipeline" and 800 in lucky.unconfirmed
    assert lucky.rate is not None and lucky.rate <= 500 < (lucky.broke_at or 0)


def test_a_generator_bound_step_is_never_reported_as_capacity() -> None:
    fake = Pipeline(capacity=5000, generator_limit=900)
    result = search(fake, ALL_LIMITS, SETTINGS)
    assert result.bound == "generator"
    assert result.rate is not None and result.rate <= 900 < (result.broke_at or 0)
    assert any(r.startswith("generator:") for r in result.reasons)
    assert "GENERATOR-BOUND" in result.summary()


def test_a_breach_that_survives_without_the_generator_lag_is_the_pipeline() -> None:
    # The generator lags from 500/s, but the service itself is slow above 600/s: not generator-bound there.
    fake = Pipeline(capacity=600, generator_limit=500)
    step = fake(800)
    assert step.verdict(ALL_LIMITS) == "broke"
    assert fake(550).verdict(ALL_LIMITS) == "generator-bound"
    assert any(r.startswith("generator:") for r in step.why(ALL_LIMITS))  # both are said


def test_the_reason_names_the_limit_that_broke() -> None:
    def errors_above_300(rate: float) -> Step:
        return fake_step(rate, errors=0.05 if rate > 300 else 0.0)

    result = search(errors_above_300, ALL_LIMITS, SETTINGS)
    assert result.reasons == ["errors 5.00% > 0.10%"]


def test_async_delivery_and_acceptance_capacities_from_the_same_steps() -> None:
    measured: dict[float, Step] = {}

    def consumer_slower_than_api(rate: float) -> Step:
        if rate not in measured:
            growth = max(0.0, rate - 1000)  # the consumer delivers 1,000/s
            api = 0.5 if rate > 2000 else 0.01
            measured[rate] = fake_step(rate, pipeline="async", api_p99=api, backlog_growth=growth)
        return measured[rate]

    delivery = search(consumer_slower_than_api, ALL_LIMITS, SETTINGS)
    acceptance = search(consumer_slower_than_api, ACCEPTANCE_LIMITS, SETTINGS)
    assert delivery.rate is not None and delivery.rate <= 1020 < (delivery.broke_at or 0)
    assert any("consumer falls behind" in r for r in delivery.reasons)
    assert acceptance.rate is not None and 1600 <= acceptance.rate <= 2000 < (acceptance.broke_at or 0)
    assert BACKLOG not in acceptance.limits


def test_the_first_step_breaking_bisects_downwards() -> None:
    result = search(Pipeline(capacity=60), ALL_LIMITS, SETTINGS)
    assert result.rate is not None and result.rate <= 60 < (result.broke_at or 0)


def test_nothing_breaking_stops_at_the_search_limit() -> None:
    small = SETTINGS.model_copy(update={"max_rate": 800})
    result = search(Pipeline(capacity=10_000), ALL_LIMITS, small)
    assert (result.bound, result.rate, result.broke_at) == ("search-limit", 800, None)


def test_judge_backlog_only_for_async() -> None:
    assert judge(LEVEL, "sync", 1000, api_p99=0.01, error_ratio=0, backlog_growth=500) == []
    (b,) = judge(LEVEL, "async", 1000, api_p99=0.01, error_ratio=0, backlog_growth=500)
    assert b.limit == BACKLOG and b.allowed == pytest.approx(20)
    (b,) = judge(LEVEL, "sync", 1000, api_p99=0.2, error_ratio=0, backlog_growth=None)
    assert b.limit == API_P99


def test_slope() -> None:
    assert slope([(0, 10), (1, 20), (2, 30)]) == pytest.approx(10)
    assert slope([(0, 10)]) is None


# -- the service level file -----------------------------------------------------------------------


def test_the_shipped_file_is_valid() -> None:
    config = load_config()
    assert config.search.quick.measure_seconds < config.search.full.measure_seconds


def test_a_bad_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    text = LIMITS_FILE.read_text().replace("error_ratio: 0.001", "error_ratio: 2")
    text = text.replace("    resolution: 0.2", "    resolutoin: 0.2")
    bad = tmp_path / "capacity.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    message = str(e.value)
    assert str(bad) in message
    assert "service_level.error_ratio" in message
    assert "search.quick.resolutoin" in message  # the typo
    assert "search.quick.resolution" in message  # and the field it left missing


def test_a_search_that_would_start_above_its_max_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "capacity.yaml"
    bad.write_text(re.sub(r"(?m)^(    start_rate:) .*$", r"\1 100000", LIMITS_FILE.read_text(), count=1))
    with pytest.raises(ConfigError, match=r"start_rate \(100000\) is above max_rate"):
        load_config(bad)


def test_a_bad_generator_limits_file_stops_the_search_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import generator_health, provision
    from harness.capacity import command

    monkeypatch.setenv("SYNC_ASYNC_BENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(generator_health, "load_limits", lambda: (_ for _ in ()).throw(ValueError("g.yaml: bad")))
    monkeypatch.setattr(provision, "locate", lambda: pytest.fail("went on past a bad limits file"))
    assert command.main(["sync"], quick=True) == 2
    assert "bench capacity: g.yaml: bad" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_search_reads_each_limits_file_once_and_plays_by_what_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file edited while a 50-minute search plays must not change its rules halfway: bench capacity
    reads them before anything starts and hands on what it read."""
    from harness import generator_health, measured_tracing, provision
    from harness.capacity import command

    read: list[str] = []
    limits, tracing = generator_health.load_limits(), measured_tracing.load()

    def reading(name: str, value: Any) -> Any:
        read.append(name)
        return value

    monkeypatch.setattr(generator_health, "load_limits", lambda: reading("generator", limits))
    monkeypatch.setattr(measured_tracing, "load", lambda: reading("tracing", tracing))
    monkeypatch.setattr(provision, "locate", lambda: None)
    given: dict[str, Any] = {}
    monkeypatch.setattr(command, "run_capacity", lambda *a, **kw: given.update(kw))
    assert command.main(["sync"], quick=True) == 0
    assert sorted(read) == ["generator", "tracing"]  # once each
    assert given["generator"] is limits and given["measured"] is tracing


def test_a_bad_generator_limits_file_stops_the_generator_measure_before_wrk_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import generator_health
    from harness.capacity import generator_cost

    monkeypatch.setattr(generator_health, "load_limits", lambda: (_ for _ in ()).throw(ValueError("g.yaml: bad")))
    monkeypatch.setattr(generator_cost, "measure_wrk", lambda *_: pytest.fail("wrk ran past a bad limits file"))
    with pytest.raises(SystemExit) as exited:
        generator_cost.main(["--rates", "100"])
    assert exited.value.code == 2
    assert "g.yaml: bad" in capsys.readouterr().err


def test_capacity_files_written_before_generator_seconds_read_as_they_were_played() -> None:
    older = _report().model_dump(mode="json")
    del older["search"]["generator_seconds"]
    for ceiling, played in ((3, 5.0), (10, 10.0)):  # max(ceiling_seconds, 5)
        older["search"]["ceiling_seconds"] = ceiling
        assert CapacityReport.model_validate(older).search.generator_seconds == played
    older["search"]["ceiling_seconds"] = "x"  # nothing to derive it from: the usual errors
    with pytest.raises(ValueError, match="ceiling_seconds"):
        CapacityReport.model_validate(older)


def test_capacity_yaml_must_name_generator_seconds(tmp_path: Path) -> None:
    """The rule for old capacity.json files is not capacity.yaml's: there a missing setting is an error."""
    text = LIMITS_FILE.read_text()
    assert "    generator_seconds: 5\n" in text
    bad = tmp_path / "capacity.yaml"
    bad.write_text(text.replace("    generator_seconds: 5\n", ""))
    with pytest.raises(ConfigError, match=r"search\.quick\.generator_seconds"):
        load_config(bad)


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "x.yaml").write_text("a: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "x.yaml")


# -- the report, its ratios, the last-capacity file -------------------------------------------------


def _report() -> CapacityReport:
    config = load_config()
    sync = search(Pipeline(capacity=650), ALL_LIMITS, SETTINGS)
    report = CapacityReport(
        run_id="r", hostname="h", cpus=2, quick=True, started_unix=0.0,
        service_level=config.service_level, search=config.search.quick,
        pipelines={"sync": PipelineCapacity(pipeline="sync", capacity=sync, cpu_rate=100)},
        ceilings=[
            Ceiling(name="grpc.notify", tool="t", what="w", per_second=1300.0),
            Ceiling(name="http.wrk.post.sync", tool="wrk", what="w", per_second=None, error="boom"),
        ],
    )  # fmt: skip
    report.ratios = ratios(report)
    return report


def test_the_printed_ceilings_line_up_whatever_their_names(capsys: pytest.CaptureFixture[str]) -> None:
    report = _report()
    report.ceilings = [
        Ceiling(name="grpc.bare", tool="t", what="w", per_second=4901.0),
        Ceiling(name="http.wrk.post.sync-resilient", tool="wrk", what="w", per_second=1175.0),
    ]
    print_report(report)
    out = capsys.readouterr().out.splitlines()
    rows = out[out.index("ceilings:") + 1 : out.index("ceilings:") + 3]
    assert [r.split()[0] for r in rows] == ["grpc.bare", "http.wrk.post.sync-resilient"]
    assert rows[0].index("4,901/s") + len("4,901") == rows[1].index("1,175/s") + len("1,175")  # one column


def test_the_printed_generator_line_says_where_it_never_fell_behind(capsys: pytest.CaptureFixture[str]) -> None:
    report = _report()
    report.generator = GeneratorFigures(kept_up_max_rate=800.0, fell_behind_min_rate=None, cpu_seconds_per_1000=0.27,
                                        wrk_cpu_seconds_per_1000=0.015)  # fmt: skip
    print_report(report)
    assert "generator: kept up to 800/s, fell behind at no step; CPU s per 1,000" in capsys.readouterr().out
    report.generator.fell_behind_min_rate = 1600.0
    print_report(report)
    assert "generator: kept up to 800/s, fell behind from 1600/s;" in capsys.readouterr().out
    report.generator.kept_up_max_rate = None
    print_report(report)
    out = capsys.readouterr().out
    assert "generator: kept up at no step, fell behind from 1600/s;" in out
    assert "CPU bounds" not in out  # no bound, no heading


def test_a_ratio_prints_one_way_in_the_printout_and_the_report() -> None:
    # one decimal where it decides a target (within 3x), whole from 10x up; "-" when not measured
    figures = (None, 2.96, 3.04, 9.94, 9.96, 10.0, 32.4)
    assert [times(v) for v in figures] == ["-", "3.0x", "3.0x", "9.9x", "10x", "10x", "32x"]


def _costed(rate: float, per_1000: dict[str, float], *, api_p99: float = 0.01, pipeline: str = "sync") -> Step:
    st = fake_step(rate, api_p99=api_p99, pipeline=pipeline)
    st.cpu_seconds_per_1000 = per_1000
    return st


def _bounded(steps: list[Step]) -> CapacityReport:
    """`_report()` whose sync capacity (650/s) was played as `steps`, with bare gRPC at 4,000/s."""
    report = _report()
    report.pipelines["sync"].steps = steps
    report.ceilings.append(Ceiling(name="grpc.bare", tool="t", what="w", per_second=4000.0))
    report.cpu_bounds = cpu_bounds(report)
    report.ratios = ratios(report)
    return report


def test_the_cpu_bound_is_read_at_the_capacity_from_the_services_alone() -> None:
    fixed = {"reaction": 1.0, "notification": 1.5, "pushsink": 0.5, "toxiproxy": 0.4, "loadgen": 0.3, "other": 9.0}
    steps = [
        _costed(100, {k: 3 * v for k, v in fixed.items()}),  # the CPU step: fixed costs weigh more there
        _costed(650, {**fixed, "pushsink": 5.0}),  # an earlier play that held: the last one is read
        _costed(650, fixed),
        _costed(650, {**fixed, "pushsink": 7.0}, api_p99=0.5),  # broke: not read
        _costed(700, {**fixed, "pushsink": 6.0}, api_p99=0.5),
    ]
    report = _bounded(steps)
    (bound,) = report.cpu_bounds
    assert bound.name == "sync" and bound.rate == 650
    assert bound.components == ["notification", "pushsink", "reaction"]  # not Toxiproxy, the generator, the rest
    assert bound.cpu_seconds_per_1000 == pytest.approx(3.0)
    assert bound.per_second == pytest.approx(2 * 1000 / 3.0)
    bare = next(r for r in report.ratios if r.name == "sync.grpc_bare")
    assert bare.value == pytest.approx(650 / 4000)
    assert bare.most == pytest.approx(666.7 / 4000, rel=1e-3)
    assert "(at most 0.167 at its CPU bound)" in bare.text
    report.ceilings.append(Ceiling(name="http.wrk.post.sync", tool="wrk", what="w", per_second=700.0))  # the last
    http = next(r for r in ratios(report) if r.name == "sync.http")  # wrk's POST is the whole stack's: no bound
    assert http.value == pytest.approx(650 / 700) and http.most is None and "at most" not in http.text


@pytest.mark.parametrize(("services_ms", "reachable"), [(3.0, False), (0.8, True)])
def test_the_cpu_bound_says_whether_half_the_bare_ceiling_is_within_reach(services_ms: float, reachable: bool) -> None:
    """The rule can go either way: cheap enough services put 0.5 of bare gRPC within the CPU bound."""
    third = services_ms / 3
    report = _bounded([_costed(650, {"reaction": third, "notification": third, "pushsink": third})])
    bare = next(r for r in report.ratios if r.name == "sync.grpc_bare")
    assert bare.most is not None and (bare.most >= 0.5) is reachable


def test_no_cpu_bound_without_every_service_read_or_a_held_play_at_the_capacity() -> None:
    assert _bounded([_costed(650, {"reaction": 1.0, "notification": 1.5})]).cpu_bounds == []
    assert _bounded([_costed(650, {"reaction": 1, "notification": 1, "pushsink": 1}, api_p99=0.5)]).cpu_bounds == []
    report = _bounded([])
    assert all(r.most is None and "at most" not in r.text for r in report.ratios)
    report = _bounded([_costed(650, {"reaction": 1, "notification": 1, "pushsink": 1})])
    assert report.cpu_bounds and (report.pipelines["sync"].capacity.rate == 650)
    report.cpus = None  # the machine's CPU count unknown
    assert cpu_bounds(report) == []


def test_replicas_count_in_the_cpu_bound_and_acceptance_is_bound_by_the_reaction_service_alone() -> None:
    report = _report()
    per_1000 = {"reaction": 1.0, "notification": 1.0, "notification-2": 0.5, "pushsink": 0.5, "kafka": 2.0}
    steps = [_costed(500, per_1000, pipeline="async"), _costed(800, {**per_1000, "reaction": 0.8}, pipeline="async")]
    report.pipelines = {
        "async": PipelineCapacity(
            pipeline="async", cpu_rate=100, steps=steps,
            capacity=SearchResult(limits=list(ALL_LIMITS), rate=500, broke_at=550, bound="pipeline", reasons=["p"]),
            acceptance=SearchResult(
                limits=list(ACCEPTANCE_LIMITS), rate=800, broke_at=850, bound="pipeline", reasons=["p"]
            ),
        )
    }  # fmt: skip
    report.replicas = 3
    assert {b.name for b in cpu_bounds(report)} == {"async.acceptance"}  # notification-3 unread: no bound
    report.replicas = 2
    bounds = {b.name: b for b in cpu_bounds(report)}
    assert bounds["async"].components == ["notification", "notification-2", "pushsink", "reaction"]
    assert bounds["async"].cpu_seconds_per_1000 == pytest.approx(3.0)
    assert bounds["async.acceptance"].components == ["reaction"] and bounds["async.acceptance"].rate == 800
    assert bounds["async.acceptance"].per_second == pytest.approx(2 * 1000 / 0.8)


def test_the_generator_is_measured_again_at_the_highest_capacity_found_above_the_cpu_steps() -> None:
    report = _report()
    sync_rate = report.pipelines["sync"].capacity.rate
    assert sync_rate is not None and top_rate(report, 100) == sync_rate
    # at or below the CPU steps' rate it would measure the same thing twice: nothing
    assert top_rate(report, sync_rate) is None
    # async's acceptance above every capacity: that is the top
    accepted = SearchResult(limits=["api.p99"], rate=sync_rate + 300, broke_at=None, bound="search-limit",
                            reasons=[])  # fmt: skip
    held = SearchResult(limits=list(ALL_LIMITS), rate=sync_rate + 100, broke_at=None, bound="pipeline",
                        reasons=[])  # fmt: skip
    report.pipelines["async"] = PipelineCapacity(pipeline="async", capacity=held, acceptance=accepted,
                                                 cpu_rate=100)  # fmt: skip
    assert top_rate(report, 100) == sync_rate + 300
    # nothing held anywhere: no top to measure at
    nothing = SearchResult(limits=list(ALL_LIMITS), rate=None, broke_at=100, bound="pipeline", reasons=["x"])
    report.pipelines = {"sync": PipelineCapacity(pipeline="sync", capacity=nothing, cpu_rate=100)}
    assert top_rate(report, 100) is None


def test_ratios_divide_by_the_ceiling_and_survive_a_failed_one() -> None:
    by_name = {r.name: r for r in _report().ratios}
    assert by_name["sync.grpc"].value == pytest.approx(by_name["sync.grpc"].value or 0)
    sync_rate = _report().pipelines["sync"].capacity.rate or 0
    assert by_name["sync.grpc"].value == pytest.approx(sync_rate / 1300)
    assert by_name["sync.http"].value is None  # wrk failed: no ratio, no crash


def test_last_capacity_file_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_ASYNC_BENCH_STATE", str(tmp_path))
    assert last_capacities() is None
    report = _report()
    report.write(last_file())
    caps = last_capacities()
    assert caps is not None and caps.rates["sync"] == report.pipelines["sync"].capacity.rate
    assert caps.source == str(last_file())
    assert caps.tracing == report.tracing  # what a run compares its own tracing with
    # compose cannot be searched: it scales from this machine's native capacity
    compose = last_capacities("compose")
    assert compose is not None and compose.source == str(last_file("native"))
    last_file().write_text('{"schema_version": 99}')
    with pytest.raises(ValueError, match="schema"):
        last_capacities()


# -- the tools' outputs ---------------------------------------------------------------------------


def test_parse_wrk() -> None:
    text = """Running 3s test @ http://127.0.0.1:8080/healthz
  1 threads and 64 connections
  12345 requests in 3.00s, 1.2MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   4115.00
"""
    assert parse_wrk(text) == (12345, 3.0, 7)
    with pytest.raises(ValueError):
        parse_wrk("nothing")


def test_parse_kafka_tools() -> None:
    prod = "50000 records sent, 41736.2 records/sec (2.79 MB/sec), 300.1 ms avg latency, 700.0 ms max latency"
    assert parse_producer_performance(prod) == (50000, 41736.2)
    cons = (
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, "
        "fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-01-01 00:00:00:000, 2026-01-01 00:00:03:000, 3.3, 1.1, 50000, 16666.7, 2500, 500, 6.6, 100000.0\n"
    )
    assert parse_consumer_performance(cons) == (50000, 100000.0)


def test_a_busy_machine_is_named_in_the_reason() -> None:
    step = fake_step(800, api_p99=0.3).model_copy(
        update={"cpu_cores": {"reaction": 0.4, "other": 1.1}, "played": 3, "disturbed": True}
    )
    # a capacity.json from before the disturbance was recorded: other processes were all it looked at
    assert step.why(ALL_LIMITS)[-1] == "the machine was busy: other processes took 1.10 cores (3 plays)"
    assert step.verdict(ALL_LIMITS) == "broke"  # said, not judged
    stolen = step.model_copy(update={"disturbance": ["the hypervisor withheld 0.30 cores (> 0.1)"]})
    assert stolen.why(ALL_LIMITS)[-1] == "the machine was busy: the hypervisor withheld 0.30 cores (> 0.1) (3 plays)"


def test_a_generator_that_did_not_start_is_generator_bound(tmp_path: Path) -> None:
    step = _not_started("async", 400, 5, tmp_path / "locust.log")
    assert step.verdict(ALL_LIMITS) == "generator-bound"
    assert "did not start" in step.why(ALL_LIMITS)[0]


def test_if_missing_reuses_this_machine_s_capacity_and_measures_only_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import cli
    from harness.capacity import command

    monkeypatch.setenv("SYNC_ASYNC_BENCH_STATE", str(tmp_path))
    measured: list[list[str]] = []

    def fake_main(pipelines: list[str], *_: object) -> int:
        measured.append(list(pipelines))
        return 0

    monkeypatch.setattr(command, "main", fake_main)
    assert cli.main(["capacity", "--if-missing", "--quick"]) == 0
    assert measured == [["sync", "sync-resilient", "async"]]  # nothing known: measured
    write_capacity(last_file())
    assert cli.main(["capacity", "--if-missing", "--quick"]) == 0
    assert len(measured) == 1 and "last capacity is used (sync 250/s" in capsys.readouterr().out
    assert cli.main(["capacity", "--quick"]) == 0 and len(measured) == 2  # without the flag: always
    # with replicas a capacity is never kept as the machine's: the flag measures anyway, and says so
    assert cli.main(["capacity", "--if-missing", "--quick", "--replicas", "2", "--balancer", "haproxy"]) == 0
    assert len(measured) == 3 and "--if-missing measures anyway with 2 replicas" in capsys.readouterr().err


def test_only_a_capacity_measured_with_the_runs_tracing_becomes_the_last_one() -> None:
    assert scales_runs("0.1", "0.1") and scales_runs("1", "1.0")
    assert not scales_runs("off", "0.1") and not scales_runs("1", "0.1")


class Replaying(StepRunner):
    """A runner whose plays are fake steps with the given cores of other processes (and of steal),
    one per play."""

    def __init__(self, others: list[float], retries: int = 2, steal: list[float] | None = None) -> None:
        super().__init__(
            None,
            Path("."),
            LEVEL,
            SETTINGS,
            Disturbed(other_cores=0.1, steal_cores=0.1, retries=retries),
            load_limits(),
        )
        self.others, self.steal = others, steal or [0.0] * len(others)
        self.labels: list[str] = []

    def _play(self, pipeline: str, rate: float, label: str = "") -> Step:
        self.labels.append(label)
        st = fake_step(rate)
        st.cpu_cores |= {"other": self.others[len(self.labels) - 1], "steal": self.steal[len(self.labels) - 1]}
        return st


def test_a_disturbed_step_is_played_again_and_named_if_it_stays_disturbed(capsys: pytest.CaptureFixture[str]) -> None:
    calm_again = Replaying([0.3, 0.02])
    st = calm_again.measure("sync", 400)
    assert (st.played, st.disturbed, calm_again.labels) == (2, False, ["", "play2"])
    assert st.why(ALL_LIMITS) == []  # the second play was calm: nothing to name
    assert "disturbed: other processes took 0.30 cores (> 0.1); played again" in capsys.readouterr().out

    busy = Replaying([0.3, 0.25, 0.2])
    st = busy.measure("sync", 400)
    assert (st.played, st.disturbed, len(busy.labels)) == (3, True, 3)  # 1 + 2 retries, then named
    assert st.why(ALL_LIMITS) == ["the machine was busy: other processes took 0.20 cores (> 0.1) (3 plays)"]
    assert busy.measure("sync", 400) is st  # memoized: the search never plays it a fourth time

    # steal is the hypervisor's, named as such; below its own limit it disturbs nothing
    stolen = Replaying([0.02, 0.02], retries=1, steal=[0.3, 0.4])
    st = stolen.measure("sync", 400)
    assert (st.played, st.disturbed) == (2, True)
    assert st.why(ALL_LIMITS) == ["the machine was busy: the hypervisor withheld 0.40 cores (> 0.1) (2 plays)"]
    assert "disturbed: the hypervisor withheld 0.30 cores (> 0.1); played again" in capsys.readouterr().out
    assert Replaying([0.02], steal=[0.08]).measure("sync", 400).played == 1

    once = Replaying([0.05])
    assert once.measure_once("sync", 200, "tracing-off").played == 1 and once.labels == ["tracing-off"]


class Remembering(StepRunner):
    """A runner whose plays are fake steps breaking API p99 where asked; it notes, at each play, the last
    step the runner had seen: what decides whether the reaction service restarts first."""

    def __init__(self, slow: set[float]) -> None:
        super().__init__(
            None, Path("."), LEVEL, SETTINGS, Disturbed(other_cores=0.9, steal_cores=0.9, retries=0), load_limits()
        )
        self.slow = slow
        self.seen: list[float | None] = []

    def _play(self, pipeline: str, rate: float, label: str = "") -> Step:
        self.seen.append(None if self._last is None else self._last.rate)
        return fake_step(rate, api_p99=0.5 if rate in self.slow else 0.01)


def test_every_play_counts_as_the_last_one_tracing_steps_included() -> None:
    runner = Remembering(slow={800})
    runner.measure("sync", 800)  # broke: the next play restarts the reaction service
    runner.measure_once("sync", 100, "tracing-off")  # held
    runner.measure_once("sync", 100, "tracing-0")
    assert runner.seen == [None, 800, 100]  # the second tracing step follows the first, not the broken one


def test_the_shipped_disturbance_rule_loads() -> None:
    d = load_config().disturbed
    assert 0 < d.other_cores < 1 and d.retries >= 1


def _played(rate: float, api_p99: float, *, replay: bool = False, growth: float = 0.0) -> Step:
    st = fake_step(rate, pipeline="async", api_p99=api_p99, backlog_growth=growth)
    st.replay = replay
    return st


def test_async_capacity_is_never_above_its_acceptance_every_play_must_hold() -> None:
    """This VM's run 20261130-232712: the full search held 1,150/s twice, then the acceptance search's
    replays broke API p99 at 1,150, 1,100 and 1,000/s and it found 925/s."""
    ok, slow = 0.02, 0.2
    plays = [
        _played(800, ok), _played(1600, 1.0), _played(1200, slow), _played(1000, ok), _played(1100, ok),
        _played(1150, ok), _played(1150, ok, replay=True),  # the full search: 1,150/s, confirmed
        _played(1150, slow, replay=True), _played(1100, slow, replay=True), _played(1050, 1.0),
        _played(1000, slow, replay=True), _played(900, ok), _played(950, 0.101), _played(925, ok),
        _played(925, ok, replay=True),  # the acceptance search: 925/s, confirmed
    ]  # fmt: skip
    full = SearchResult(limits=list(ALL_LIMITS), rate=1150, broke_at=1200, bound="pipeline",
                        reasons=["API p99 200 ms > 100 ms"], confirmed=1)  # fmt: skip
    accepted = full.model_copy(update={"limits": list(ACCEPTANCE_LIMITS), "rate": 925, "broke_at": 950})
    capped = held_on_every_play(full, accepted, plays)
    assert (capped.rate, capped.broke_at, capped.confirmed, capped.lowered_from) == (925, 950, 1, 1150)
    assert capped.reasons == ["API p99 101 ms > 100 ms"]
    assert capped.unconfirmed == [1000, 1100, 1150]  # each held, then broke on a replay
    assert capped.summary().startswith(
        "925/s (held again on 1 replay) (the search found 1150/s; later plays broke at or below it); "
        "1000, 1100, 1150/s held, then broke on a replay; broke at 950/s: API p99 101 ms > 100 ms"
    )
    assert SearchResult.model_validate_json(capped.model_dump_json()) == capped  # as capacity.json keeps it
    assert held_on_every_play(full, accepted, []) is full  # no plays given: no evidence to judge by
    # every play at the acceptance's rate must hold every limit: a growing backlog there sends it lower,
    # to a rate never replayed, which the summary says
    growing = [*plays, _played(925, ok, replay=True, growth=100.0)]
    lower = held_on_every_play(full, accepted, growing)
    assert (lower.rate, lower.broke_at, lower.confirmed) == (900, 925, 0) and "consumer falls behind" in lower.reasons[
        0
    ]
    assert lower.summary().startswith("900/s (not replayed) (the search found 1150/s")


def test_a_search_rate_every_play_held_stands_and_one_that_broke_on_a_later_play_does_not() -> None:
    ok = 0.02
    full = SearchResult(limits=list(ALL_LIMITS), rate=1150, broke_at=1200, bound="pipeline",
                        reasons=["API p99 200 ms > 100 ms"], confirmed=1)  # fmt: skip
    base = [_played(800, ok), _played(1100, ok), _played(1150, ok), _played(1150, ok, replay=True),
            _played(1200, 0.2)]  # fmt: skip
    # the acceptance search found less, but no play at or below 1,150/s broke: nothing contradicts it
    accepted = full.model_copy(update={"limits": list(ACCEPTANCE_LIMITS), "rate": 1100})
    assert held_on_every_play(full, accepted, base) is full
    # the acceptance at the capacity, its replay there broke the backlog only (a limit it does not judge)
    same = full.model_copy(update={"limits": list(ACCEPTANCE_LIMITS)})
    backlog = [*base, _played(1150, ok, replay=True, growth=100.0)]
    lowered = held_on_every_play(full, same, backlog)
    assert (lowered.rate, lowered.broke_at, lowered.lowered_from) == (1100, 1150, 1150)
    assert "consumer falls behind" in lowered.reasons[0] and lowered.unconfirmed == [1150]
    # a generator that fell behind on the play that broke: the bound says so
    lagging = [*base, _played(1150, ok, replay=True)]
    lagging[-1].generator_reasons = ["schedule lag p99 300 ms > 50 ms"]
    assert held_on_every_play(full, same, lagging).bound == "generator"
    # nothing at or below the capacity held on every play
    shaky = [_played(1150, ok), _played(1150, 0.2, replay=True)]
    none = held_on_every_play(full, same, shaky)
    assert (none.rate, none.broke_at, none.confirmed) == (None, 1150, 0) and none.summary().startswith("nothing held")


# -- what tracing costs: one restart a setting --------------------------------------------------


class TracingStack:
    """What measure_tracing_costs drives: the services' restarts, logged with each step played."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline, self.tracing = pipeline, "0.1"
        self.log: list[str] = []

    def use_tracing(self, tracing: object) -> None:
        self.tracing = str(tracing)
        self.log.append(f"restart {tracing}")


class TracingRunner:
    def __init__(self, stack: TracingStack) -> None:
        self.s, self.stack = SETTINGS, stack
        self.steps = {(p, 100.0): fake_step(100, pipeline=p, api_p99=0.05) for p in ("sync", "async")}

    def measure_once(self, pipeline: str, rate: float, label: str) -> Step:
        self.stack.pipeline = pipeline  # the runner switches the reaction service's pipeline as needed
        self.stack.log.append(f"{pipeline} {label}")
        return fake_step(rate, pipeline=pipeline, api_p99=0.2 if label == "tracing-1" else 0.01)


def test_tracing_costs_restart_the_services_once_a_setting_and_switch_pipelines_least(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.capacity import command

    monkeypatch.setattr(command, "tracing_of", lambda setting: setting)
    stack = TracingStack("async")  # where the last search left it
    kept: list[dict[str, list[str]]] = []  # the costs handed out after each setting, as they stood then

    def keep(costs: dict[str, list[TracingCost]]) -> None:
        kept.append({p: [c.setting for c in of_p] for p, of_p in costs.items()})
        stack.log.append("kept")

    costs = measure_tracing_costs(TracingRunner(stack), ["sync", "async"], "0.1", ["off", "0.1", "0", "1"], keep)  # type: ignore[arg-type]
    assert stack.log == [
        "async tracing-0.1", "sync tracing-0.1", "kept",  # the search's setting again, in this phase: no restart
        "restart off", "sync tracing-off", "async tracing-off", "kept",
        "restart 0", "async tracing-0", "sync tracing-0", "kept",
        "restart 1", "sync tracing-1", "async tracing-1", "kept",
        "restart 0.1",  # left with the search's setting
    ]  # fmt: skip
    assert kept[0] == {"sync": ["0.1"], "async": ["0.1"]} and kept[-1]["sync"] == ["0.1", "off", "0", "1"]
    assert stack.tracing == "0.1"
    for p in ("sync", "async"):  # the search's setting first, then the others in the file's order
        assert [c.setting for c in costs[p]] == ["0.1", "off", "0", "1"]
        assert [c.held for c in costs[p]] == [True, True, True, False]  # each cost is its own step's
        assert costs[p][0].api_p99_seconds != 0.05  # played again, not the search's step (api p99 0.05)
    unchanged = TracingStack("sync")
    kept.clear()
    only = measure_tracing_costs(TracingRunner(unchanged), ["sync"], "off", ["off"], keep)  # type: ignore[arg-type]
    assert unchanged.log == [] and [c.setting for c in only["sync"]] == ["off"]  # nothing else: no restart
    assert kept == [{"sync": ["off"]}]
