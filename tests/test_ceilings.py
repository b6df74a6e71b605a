"""The ceilings' measurements (harness/capacity/ceilings_*.py): the Kafka tools with the JVM faked and wrk
faked, the command each one runs and what it makes of the tool's answer; the bare gRPC loop for real,
against its own server. No Java, no broker, no stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from facts import topology
from harness.capacity import ceilings_grpc, ceilings_http, ceilings_kafka

LIBS = Path("/cache/kafka-tools/libs")
PRODUCER_OUT = "50000 records sent, 25000.0 records/sec (1.2 MB/sec), 3.1 ms avg latency, 90.0 ms max latency\n"
CONSUMER_OUT = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, "
    "fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
    "2026-01-01 00:00:00:000, 2026-01-01 00:00:03:000, 3.3, 1.1, 40000, 13333.3, 2500, 500, 6.6, 80000.0\n"
)


class FakeJava:
    """Stands for `run_with_rusage`: records each command and its timeout, answers with `reply`."""

    def __init__(self, reply: tuple[int, str, float, int]) -> None:
        self.reply = reply
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, cmd: list[str], timeout: float) -> tuple[int, str, float, int]:
        self.calls.append((cmd, timeout))
        return self.reply


@pytest.fixture
def java(monkeypatch: pytest.MonkeyPatch) -> FakeJava:
    fake = FakeJava((0, "", 0.0, 0))
    monkeypatch.setattr(ceilings_kafka, "run_with_rusage", fake)
    monkeypatch.setattr(ceilings_kafka, "kafka_tools_libs", lambda: LIBS)
    return fake


def test_producer_performance_runs_the_tool_through_the_produce_link(java: FakeJava) -> None:
    java.reply = (0, PRODUCER_OUT, 2.0, 0)
    c = ceilings_kafka.producer_performance(50000, 60, timeout=90)
    assert java.calls == [
        (
            ["java", "-Xmx512m", "-cp", f"{LIBS}/*", "org.apache.kafka.tools.ProducerPerformance",
             "--bootstrap-server", topology.PROXY_KAFKA_PRODUCE.listen, "--topic", ceilings_kafka.CEILING_TOPIC,
             "--num-records", "50000", "--record-size", "60", "--throughput", "-1",
             "--producer-props", "acks=all", "enable.idempotence=true"],
            90,
        )
    ]  # fmt: skip
    assert (c.name, c.tool, c.error) == ("kafka.produce.java", "org.apache.kafka.tools.ProducerPerformance", None)
    assert (c.per_second, c.count, c.seconds) == (25000.0, 50000, 2.0)
    assert c.cpu_seconds_per_1000 == pytest.approx(0.04)
    assert c.what == "50000 records of 60 B, acks=all, idempotent, unthrottled, via the 'kafka-produce' link"
    assert c.detail == "JVM start-up excluded (the tool times its own sends)"


def test_consumer_performance_waits_past_the_tools_own_timeout(java: FakeJava) -> None:
    java.reply = (0, CONSUMER_OUT, 1.0, 0)
    c = ceilings_kafka.consumer_performance(40000, timeout=30)
    [(cmd, timeout)] = java.calls
    assert cmd[:5] == ["java", "-Xmx512m", "-cp", f"{LIBS}/*", "org.apache.kafka.tools.ConsumerPerformance"]
    group = cmd[cmd.index("--group") + 1]
    assert group.startswith("ceiling-") and len(group) == len("ceiling-") + 8
    assert cmd[5:] == [
        "--bootstrap-server", topology.PROXY_KAFKA_CONSUME.listen, "--topic", ceilings_kafka.CEILING_TOPIC,
        "--num-records", "40000", "--group", group, "--timeout", "30000",
    ]  # fmt: skip
    assert timeout == 50
    assert (c.name, c.tool, c.error) == ("kafka.consume.java", "org.apache.kafka.tools.ConsumerPerformance", None)
    assert (c.per_second, c.count, c.seconds) == (80000.0, 40000, 0.5)
    assert c.cpu_seconds_per_1000 == pytest.approx(0.025)
    assert c.detail == "fetch rate (rebalance excluded)"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((1, "Exception in thread main\nboom\n", 0.5, 0), "exit 1: Exception in thread main\nboom"),
        ((0, "no summary here", 0.5, 0), "no summary in ProducerPerformance's output: 'no summary here'"),
    ],
)
def test_a_failing_tool_is_a_failed_ceiling(java: FakeJava, reply: tuple[int, str, float, int], error: str) -> None:
    java.reply = reply
    c = ceilings_kafka.producer_performance(10, 60, timeout=5)
    assert (c.name, c.tool, c.per_second, c.error) == (
        "kafka.produce.java",
        "org.apache.kafka.tools.ProducerPerformance",
        None,
        error,
    )


def test_tools_that_cannot_be_fetched_are_a_failed_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_maven() -> Path:
        raise RuntimeError("fetching kafka-tools failed")

    monkeypatch.setattr(ceilings_kafka, "kafka_tools_libs", no_maven)
    c = ceilings_kafka.consumer_performance(10, timeout=5)
    assert (c.name, c.per_second, c.error) == ("kafka.consume.java", None, "fetching kafka-tools failed")


def test_the_bare_grpc_ceiling_runs_its_own_server_and_leaves_nothing_running() -> None:
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    c = ceilings_grpc.grpc_bare(0.5, concurrency=4)
    assert c.error is None and c.per_second is not None and c.per_second > 0 and c.errors == 0
    assert c.name == "grpc.bare" and "no delivery" in c.what
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before  # the server was stopped


def test_a_bare_grpc_server_that_cannot_start_is_a_failed_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ceilings_grpc.sys, "executable", "/bin/false")
    c = ceilings_grpc.grpc_bare(0.5)
    assert c.per_second is None and c.error is not None and "did not start" in c.error


WRK_OUT = "  2000 requests in 10.00s, 200.00KB read\nRequests/sec:    200.00\n"


class FakeWrk(FakeJava):
    """Also keeps the Lua script wrk was given (its folder is gone once wrk returns)."""

    scripts: list[str]

    def __call__(self, cmd: list[str], timeout: float) -> tuple[int, str, float, int]:
        self.scripts = getattr(self, "scripts", [])
        self.scripts.append(Path(cmd[cmd.index("-s") + 1]).read_text() if "-s" in cmd else "")
        return super().__call__(cmd, timeout)


def test_wrk_paced_to_a_rate_waits_a_random_delay_before_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWrk((0, WRK_OUT, 0.1, 3000))
    monkeypatch.setattr(ceilings_http, "run_with_rusage", fake)
    # 200/s with 2 ms answers: 21 connections, each waiting 103 ms on average (0..206 ms at random)
    pace = ceilings_http.Pace(200.0, 0.002)
    assert (pace.connections(), pace.span_ms()) == (21, 206)
    assert pace.connections() / (pace.span_ms() / 2000 + pace.latency) == pytest.approx(200, rel=0.01)
    c = ceilings_http.wrk(Path("/bin/wrk"), "paced", "/v1/x", 10, post=True, pace=pace)
    [(cmd, _)] = fake.calls
    assert cmd[:5] == ["/bin/wrk", "-t1", "-c21", "-d10s", "--latency"]
    assert 'wrk.method = "POST"' in fake.scripts[0]  # the POST and the pacing in one script
    assert "function delay() return math.random(0, 206) end" in fake.scripts[0]
    assert c.what.endswith("x 21 connections, paced to about 200/s (each waits 0-206 ms before each request)")
    assert (c.per_second, c.cpu_seconds_per_1000, c.wakeups_per_request) == (200.0, 0.05, 1.5)
    # a slow server: more connections, each still waiting 100 ms on average besides its answer
    slow = ceilings_http.Pace(1000.0, 0.2)
    assert (slow.connections(), slow.span_ms()) == (300, 200)
    ceilings_http.wrk(Path("/bin/wrk"), "paced", "/healthz", 10, post=False, pace=slow)
    assert fake.calls[1][0][2] == "-c300" and "math.random(0, 200)" in fake.scripts[1]
    assert "wrk.method" not in fake.scripts[1]
    # unpaced, a GET needs no script at all
    ceilings_http.wrk(Path("/bin/wrk"), "max", "/healthz", 10, post=False)
    assert "-s" not in fake.calls[2][0] and fake.calls[2][0][2] == f"-c{ceilings_http.WRK_CONNECTIONS}"


def test_a_paced_run_that_missed_its_rate_is_played_once_more_with_wrks_own_answer_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies = iter([(0, "  1500 requests in 10.00s\n", 0.1, 2000), (0, WRK_OUT, 0.1, 3000)])
    fake = FakeWrk((0, "", 0.0, 0))
    monkeypatch.setattr(ceilings_http, "run_with_rusage", lambda cmd, timeout: (fake(cmd, timeout), next(replies))[1])
    # calibrated with the open loop's 30 ms answers, 26 connections got 150/s: wrk's own took 26 / 150 - 0.1 = 73 ms
    c = ceilings_http.wrk_paced(
        Path("/bin/wrk"), "paced", "/healthz", 10, post=False, pace=ceilings_http.Pace(200.0, 0.03)
    )
    assert len(fake.calls) == 2
    assert "math.random(0, 200)" in fake.scripts[0] and fake.calls[0][0][2] == "-c26"
    assert fake.calls[1][0][2] == "-c35" and "math.random(0, 203)" in fake.scripts[1]  # ceil(200 x 0.173)
    assert c.per_second == 200.0
    assert c.detail == "played twice: paced with answers of 30.0 ms it achieved 150/s; wrk's own answers took 73.3 ms"
    # within REPLAY_TOLERANCE of its rate: played once
    replies = iter([(0, "  1960 requests in 10.00s\n", 0.1, 2000)])
    fake.calls.clear()
    c = ceilings_http.wrk_paced(
        Path("/bin/wrk"), "paced", "/healthz", 10, post=False, pace=ceilings_http.Pace(200.0, 0.03)
    )
    assert len(fake.calls) == 1 and c.detail == ""
    # a replay that failed, or came out further off, leaves the first run
    for second, said in [
        ((1, "boom", 0.1, 0), "wrk exited 1: boom"),
        ((0, "  1000 requests in 10.00s\n", 0.1, 0), "100/s"),
    ]:
        replies = iter([(0, "  1500 requests in 10.00s\n", 0.1, 2000), second])
        c = ceilings_http.wrk_paced(
            Path("/bin/wrk"), "paced", "/healthz", 10, post=False, pace=ceilings_http.Pace(200.0, 0.03)
        )
        assert c.per_second == 150.0 and c.detail == f"kept over a replay with wrk's own answer time ({said})"


def test_wrk_that_completed_no_request_is_a_failed_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ceilings_http, "run_with_rusage", FakeWrk((0, "  0 requests in 10.00s\n", 0.0, 5)))
    c = ceilings_http.wrk(Path("/bin/wrk"), "max", "/healthz", 10, post=False)
    assert c.per_second is None and c.error == "wrk completed no request"


@pytest.mark.parametrize(
    "pace",
    [
        ceilings_http.Pace(0.0, 0.001), ceilings_http.Pace(100.0, -1.0), ceilings_http.Pace(float("nan"), 0),
        ceilings_http.Pace(float("inf"), 0), ceilings_http.Pace(100.0, float("inf")),
        ceilings_http.Pace(1000.0, 2.0),  # 2,100 connections: more than a process may open
    ],
)  # fmt: skip
def test_a_rate_no_delay_can_pace_is_a_failed_ceiling(pace: ceilings_http.Pace) -> None:
    with pytest.raises(ValueError, match="cannot pace wrk"):
        pace.connections()
    c = ceilings_http.wrk(Path("/nonexistent/wrk"), "paced", "/healthz", 1, post=False, pace=pace)
    assert c.per_second is None and c.error is not None and "cannot pace wrk" in c.error
