"""Outcome classification and files, stats snapshots, the per-second series, metrics, plan, settings."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest
from geventhttpclient.useragent import RetriesExceeded
from prometheus_client import generate_latest

from facts import topology
from loadtests.arrivals import Share
from loadtests.counters import LoadStats
from loadtests.loadgen_metrics import LoadgenCollector, RunInfo, registry_for
from loadtests.outcome import (
    RECORD,
    RECORD_SIZE,
    Outcome,
    OutcomeFileError,
    OutcomeLog,
    OutcomeRecord,
    classify,
    describe,
    outcomes_path,
    read_outcome_ids,
    read_outcomes,
)
from loadtests.reaction import KINDS, ReactionFactory
from loadtests.run_plan import START_LEAD_SECONDS, RunPlan
from loadtests.series import Series, quantile
from loadtests.settings import Settings, SettingsError, add_arguments


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, Outcome.ACK),
        (202, None, Outcome.ACK),
        (503, None, Outcome.FAILED),
        (504, None, Outcome.UNKNOWN),  # the service gave up waiting; it may still be delivered
        (400, None, Outcome.FAILED),
        (None, TimeoutError("timed out"), Outcome.UNKNOWN),
        (None, ConnectionResetError(104, "reset"), Outcome.UNKNOWN),
        (None, None, Outcome.UNKNOWN),
        # Refused: nothing reached the server, so it is certain nothing was processed.
        (None, ConnectionRefusedError(111, "refused"), Outcome.FAILED),
        (None, RetriesExceeded("http://x", 0, original=ConnectionRefusedError(111, "refused")), Outcome.FAILED),
        (None, RetriesExceeded("http://x", 0, original=TimeoutError("slow")), Outcome.UNKNOWN),
    ],
)
def test_classify(status, error, outcome):
    assert classify(status, error) is outcome


def test_describe_names_the_root_cause():
    wrapped = RetriesExceeded("http://x", 0, original=TimeoutError("slow"))
    assert describe(wrapped) == "TimeoutError: slow"
    assert describe(None) is None


def record(rid: str, worker: int = 0, outcome: Outcome = Outcome.ACK, status: int | None = 202) -> OutcomeRecord:
    return OutcomeRecord(rid, "post-1", worker, 1_000, 2_000, 501_000, outcome, status, None)


def test_outcome_log_round_trip_across_workers(tmp_path):
    for worker in (0, 1):
        log = OutcomeLog(outcomes_path(tmp_path, worker), worker)
        log.add(record(f"a{worker}", worker))
        assert log.flush() == 1  # periodic flush writes what is there
        log.add(record(f"b{worker}", worker, Outcome.UNKNOWN, None))
        log.close()  # closing flushes the rest
        assert log.written == 2
    rows = list(read_outcomes(tmp_path))
    assert [r.reaction_id for r in rows] == ["a0", "b0", "a1", "b1"]
    assert rows[1].outcome is Outcome.UNKNOWN and rows[1].status is None
    assert rows[0].latency_seconds == pytest.approx(0.0005)
    data = (tmp_path / "outcomes-w0.bin").read_bytes()  # a header slot, then one fixed-size slot per record
    assert len(data) == 3 * RECORD_SIZE
    assert RECORD.unpack_from(data, RECORD_SIZE)[:5] == (b"a0".ljust(36, b"\0"), 1_000, 2_000, 501_000, 1)
    assert [r.worker for r in rows] == [0, 0, 1, 1] and rows[0].post_id == "post-1"


def _written(tmp_path, records=3) -> bytes:
    log = OutcomeLog(outcomes_path(tmp_path, 0), 0)
    for i in range(records):
        log.add(OutcomeRecord(f"id-{i}", "post-7", 0, 1, 2, 3, Outcome.FAILED, 503, f"HTTP 503 #{i % 2}"))
    log.close()
    return outcomes_path(tmp_path, 0).read_bytes()


def test_outcome_records_keep_error_texts_and_read_lean(tmp_path):
    _written(tmp_path)
    rows = list(read_outcomes(tmp_path))
    assert [(r.reaction_id, r.status, r.error) for r in rows] == [
        ("id-0", 503, "HTTP 503 #0"), ("id-1", 503, "HTTP 503 #1"), ("id-2", 503, "HTTP 503 #0"),
    ]  # fmt: skip
    assert list(read_outcome_ids(tmp_path)) == [("id-0", "failed"), ("id-1", "failed"), ("id-2", "failed")]


def test_a_truncated_or_garbled_outcomes_file_names_the_file_and_the_record(tmp_path):
    data = _written(tmp_path)
    path = outcomes_path(tmp_path, 0)
    # slots: 1 header, 2 error text "#0" + its text, 4 id-0, 5-6 error "#1", 7 id-1, 8 id-2
    garbled = bytearray(data)
    garbled[7 * RECORD_SIZE - 3] = 0x7A  # id-1's kind byte
    bad_code = bytearray(data)
    bad_code[8 * RECORD_SIZE - 4] = 9  # id-2's outcome code
    cases = {
        data[:-10]: "record 8: truncated (62 of 72 bytes)",
        bytes(garbled): "record 7: not an outcomes record",
        bytes(bad_code): "record 8: outcome code 9",
    }
    for content, message in cases.items():
        path.write_bytes(content)
        for reader in (read_outcomes, read_outcome_ids):
            with pytest.raises(OutcomeFileError) as e:
                list(reader(tmp_path))
            assert str(path) in str(e.value) and message in str(e.value), str(e.value)
    path.unlink()
    legacy = tmp_path / "outcomes-w0.jsonl"  # a run written before the binary format
    legacy.write_text(record("a").to_json() + "\n" + record("b").to_json()[:30] + "\n")
    with pytest.raises(OutcomeFileError, match=r"outcomes-w0\.jsonl: line 2: JSONDecodeError"):
        list(read_outcomes(tmp_path))


def test_stats_snapshot_round_trip_and_merge():
    a, b = LoadStats(in_flight_limit=10), LoadStats(in_flight_limit=10)
    for s, status in ((a, 202), (b, 503)):
        s.on_arrival(started=True)
        s.on_start(0.002)
        s.on_response(Outcome.ACK if status == 202 else Outcome.FAILED, status, 0.2)
        s.on_arrival(started=False)
    b.on_arrival(started=True)  # still in flight
    wire_a = LoadStats.from_wire(a.to_wire())
    assert wire_a == a
    total = LoadStats.merged([wire_a, LoadStats.from_wire(b.to_wire())])
    assert (total.arrivals, total.started, total.missed, total.in_flight) == (5, 3, 2, 1)
    assert total.in_flight_limit == 20
    assert total.responses == {"ack": {"202": 1}, "failed": {"503": 1}}
    assert total.latency["ack"].count == 1 and total.latency["failed"].count == 1
    assert total.lag.count == 2 and total.lag.total == pytest.approx(0.004)


def test_histogram_buckets_are_upper_inclusive():
    s = LoadStats()
    s.on_start(0.001)  # exactly on a bound: belongs to le="0.001"
    assert dict(s.lag.cumulative())["0.001"] == 1


def test_series_buckets_by_intended_second():
    series = Series(lambda t: 10.0 if t < 2 else 30.0, duration=3, epoch_unix_seconds=100.0)
    Series.started_in(series.bucket(0.5), 0.003)
    series.missed(0.7)
    Series.completed_in(series.bucket(0.5), Outcome.ACK, 1.7)  # answered in second 2, counted in second 0
    Series.started_in(series.bucket(2.2), 0.0)
    Series.completed_in(series.bucket(2.2), Outcome.UNKNOWN, 10.0)
    rows = series.rows()
    assert [r["second"] for r in rows] == [0, 1, 2]
    first = rows[0]
    assert (first["intended"], first["started"], first["missed"], first["ack"]) == (2, 1, 1, 1)
    assert first["unix_seconds"] == 100.0 and first["target_rate"] == 10.0
    assert first["latency_p50_seconds"] == 1.7 and first["lag_max_seconds"] == 0.003
    assert rows[1]["latency_p50_seconds"] is None
    assert rows[2]["unknown"] == 1 and rows[2]["target_rate"] == 30.0


def test_quantile():
    assert quantile([], 0.5) is None
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0


def exposition() -> str:
    stats = LoadStats(in_flight_limit=100)
    stats.on_arrival(started=True)
    stats.on_start(0.0004)
    stats.on_response(Outcome.ACK, 202, 0.012)
    stats.on_arrival(started=True)
    stats.on_start(0.0004)
    stats.on_response(Outcome.UNKNOWN, None, 10.0)
    stats.on_arrival(started=False)
    collector = LoadgenCollector(lambda: stats, lambda: 42.0, lambda: 2, lambda: RunInfo("r1", "surge", "poisson"))
    return generate_latest(registry_for(collector)).decode()


def test_metrics_names_and_values():
    text = exposition()
    for line in (
        'loadgen_run_info{arrivals="poisson",profile="surge",run_id="r1"} 1.0',
        "loadgen_target_requests_per_second 42.0",
        "loadgen_workers 2.0",
        "loadgen_arrivals_total 3.0",
        "loadgen_requests_started_total 2.0",
        "loadgen_missed_arrivals_total 1.0",
        "loadgen_requests_in_flight 0.0",
        "loadgen_requests_in_flight_limit 100.0",
        'loadgen_responses_total{outcome="ack",status="202"} 1.0',
        'loadgen_responses_total{outcome="unknown",status="none"} 1.0',
        'loadgen_request_latency_seconds_bucket{le="0.025",outcome="ack"} 1.0',
        'loadgen_request_latency_seconds_count{outcome="unknown"} 1.0',
        'loadgen_schedule_lag_seconds_bucket{le="0.0005"} 2.0',
    ):
        assert line in text.splitlines(), line


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (make setup installs it)")
def test_metrics_pass_promtool():
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""  # no lint warnings either


def test_plan_round_trip_and_dense_shares():
    plan = RunPlan.new(["w-b", "w-a", "w-c"], now_unix_nanos=1_700_000_000_000_000_000)
    assert plan.epoch_unix_nanos == 1_700_000_000_000_000_000 + int(START_LEAD_SECONDS * 1e9)
    assert plan.run_id.startswith("20231114T221320Z-")
    assert RunPlan.from_wire(plan.to_wire()) == plan
    shares = [plan.share_for(w) for w in ("w-b", "w-a", "w-c")]
    assert [(s.index, s.count) for s in shares if s] == [(0, 3), (1, 3), (2, 3)]
    assert plan.share_for("late-joiner") is None
    # The master fixes the run id at test start and the shares once the users asked for the plan.
    later = RunPlan.new(["w-a"], now_unix_nanos=1_700_000_005_000_000_000, run_id=plan.run_id)
    assert later.run_id == plan.run_id and later.share_for("w-a") == Share(0, 1)


def test_reaction_factory_bodies():
    factory = ReactionFactory(post_count=3, user_count=5, seed=1)
    reactions = [factory.make() for _ in range(200)]
    assert len({r.reaction_id for r in reactions}) == 200
    assert {r.post_id for r in reactions} == {"post-0", "post-1", "post-2"}
    assert {r.kind for r in reactions} == set(KINDS)
    r = reactions[0]
    assert r.path == f"/v1/posts/{r.post_id}/reactions"
    assert r.body() == {"user_id": r.user_id, "kind": r.kind, "reaction_id": r.reaction_id}
    again = ReactionFactory(post_count=3, user_count=5, seed=1).make()
    assert (again.post_id, again.user_id, again.kind) == (r.post_id, r.user_id, r.kind)
    assert again.reaction_id != r.reaction_id  # ids never repeat across runs


class _Parser(argparse.ArgumentParser):
    def add_argument(self, *args, include_in_web_ui=True, **kwargs):  # Locust's extra keyword
        return super().add_argument(*args, **kwargs)


def parse(*argv: str) -> argparse.Namespace:
    parser = _Parser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_settings_defaults_and_overrides():
    s = Settings.from_options(parse())
    assert s.profile.name.startswith("smoke-") and s.metrics_port == topology.LOADGEN_METRICS_PORT
    quick = Settings.from_options(parse("--load-profile", "smoke", "--duration", "12", "--rate-scale", "0.5"))
    assert quick.profile.duration == 12 and quick.profile.rate_at(4) == 25
    assert quick.outcomes_dir_for("R").as_posix() == "runs/loadgen/R"
    assert s.endpoint == "reactions"
    healthz = Settings.from_options(parse("--endpoint", "healthz"))
    assert healthz.endpoint == "healthz" and healthz.describe()["endpoint"] == "healthz"
    assert s.wake_interval == 0.0  # standalone Locust wakes for every arrival and answer
    batched = Settings.from_options(parse("--wake-interval", "0.002"))
    assert batched.wake_interval == 0.002 and batched.describe()["wake_interval_seconds"] == 0.002


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--load-profile", "nope"], "--load-profile: nope: matches no profile"),
        (["--max-in-flight", "0"], "--max-in-flight must be > 0"),
        (["--request-timeout", "-1"], "--request-timeout must be > 0"),
        (["--duration", "-3"], "--duration must be >= 0"),
        (["--wake-interval", "-0.001"], "--wake-interval must be within 0 and 0.05 s"),
        (["--wake-interval", "0.5"], "--wake-interval must be within 0 and 0.05 s"),
    ],
)
def test_settings_errors_name_the_option(argv, words):
    with pytest.raises(SettingsError, match=words):
        Settings.from_options(parse(*argv))


def test_an_unknown_endpoint_is_named():
    options = parse()
    options.endpoint = "metrics"  # past argparse's choices, as a worker's options could be
    with pytest.raises(SettingsError, match="--endpoint must be one of reactions, healthz, got 'metrics'"):
        Settings.from_options(options)
