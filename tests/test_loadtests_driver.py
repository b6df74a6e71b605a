"""The open-loop driver and its keep-alive client against a tiny gevent server (no Locust, no stack).

gevent is imported without monkey-patching (the client uses the original sockets and epoll either
way; the driver, gevent's loop), so these run in the test process.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import socket as std_socket
import threading
import time
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.event import AsyncResult, Event
from gevent.server import StreamServer

from loadtests import driver as driver_module
from loadtests.counters import LoadStats
from loadtests.driver import Driver, DriverConfig, GeventClock
from loadtests.gc_pacing import PacedCollection
from loadtests.http_client import KeepAliveClient, ResponseError
from loadtests.outcome import Outcome, read_outcomes
from loadtests.reaction import ReactionFactory

CANNED = {
    "/len": b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "/close": b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
    "/eof": b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    "/garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
    "/nocontent": b"HTTP/1.1 204 No Content\r\n\r\n",
    "/len-bye": b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nhello",  # then closes while idle
    "/early": b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nhello",  # before reading the body
    "/healthz": b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}',
}


def read_request(f: Any) -> tuple[str, bytes] | None:
    line = f.readline()
    if not line:
        return None
    length = 0
    while (header := f.readline()) not in (b"\r\n", b""):
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    path = line.split()[1].decode()
    return path, b"" if path == "/early" else f.read(length)


def decision(reaction_id: str) -> str:
    h = int(hashlib.sha256(reaction_id.encode()).hexdigest(), 16) % 10
    return "fail" if h == 0 else "slow" if h == 1 else "ok"


class Server:
    def __init__(self) -> None:
        self.received: dict[str, str] = {}
        self.connections = 0
        self.server = StreamServer(("127.0.0.1", 0), self.handle)

    def handle(self, sock: Any, _address: Any) -> None:
        self.connections += 1
        f = sock.makefile("rb")
        while (request := read_request(f)) is not None:
            path, body = request
            if path in CANNED:
                sock.sendall(CANNED[path])
                if path in ("/close", "/eof", "/garbage"):
                    break
                if path in ("/len-bye", "/early"):
                    gevent.sleep(0.2)
                    break
                continue
            if path == "/drop":
                break
            if path == "/hang":
                gevent.sleep(5)
                break
            rid = json.loads(body)["reaction_id"]
            what = self.received[rid] = decision(rid)
            if what == "slow":
                gevent.sleep(1.0)
            status, text = (503, b"Service Unavailable") if what == "fail" else (202, b"Accepted")
            answer = json.dumps({"reaction_id": rid}).encode()
            sock.sendall(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n%s" % (status, text, len(answer), answer))
        sock.close()

    def __enter__(self) -> Server:
        self.server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop(timeout=0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


def get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def fetch(client: KeepAliveClient, payload: bytes) -> tuple[int, int]:
    """One request through the callback API, waited for: (status, length), or its error raised."""
    answer: AsyncResult = AsyncResult()
    client.send(
        payload, "token", lambda token, status, length, error, _ended: answer.set((token, status, length, error))
    )
    token, status, length, error = answer.get(timeout=3)  # its own Timeout says 3 seconds
    assert token == "token"
    if error is not None:
        raise error
    return status, length


def test_client_reads_every_framing_and_reuses_connections():
    with Server() as server:
        client = KeepAliveClient(server.url, timeout=2.0)
        h = client.host_header
        assert fetch(client, get("/len", h)) == (202, 5)
        assert fetch(client, get("/chunked", h))[0] == 200
        assert fetch(client, get("/len", h)) == (202, 5)
        assert client.connections_opened == 1  # kept alive
        assert fetch(client, get("/close", h)) == (503, 2)  # the server closes: not reused
        assert fetch(client, get("/eof", h)) == (200, len(b"until the end"))  # body until the server closes
        assert client.connections_opened == 2
        with pytest.raises(ConnectionResetError):
            fetch(client, get("/drop", h))
        with pytest.raises(ResponseError):
            fetch(client, get("/garbage", h))
        assert fetch(client, get("/len", h)) == (202, 5)
        opened = client.connections_opened
        assert fetch(client, get("/nocontent", h)) == (204, 0)
        assert fetch(client, get("/len", h)) == (202, 5)
        assert client.connections_opened == opened  # a 204 has no body: the connection is kept
        assert client.in_flight == 0
        client.close()
    with std_socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = KeepAliveClient(f"http://127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(ConnectionRefusedError):
        fetch(refused, b"GET / HTTP/1.1\r\n\r\n")
    refused.close()
    with pytest.raises(ValueError, match="plain http"):
        KeepAliveClient("https://example.org", timeout=1.0)


@pytest.mark.parametrize("batched", [False, True])
def test_client_drops_what_it_cannot_reuse_and_never_sends_on_it(batched: bool):
    with Server() as server:
        client = KeepAliveClient(server.url, timeout=2.0, batched=batched)
        h = client.host_header
        # The server closes a pooled connection while it is idle: it is dropped, not used again
        # (batched: when the owner next wakes and polls, before it sends).
        assert fetch(client, get("/len-bye", h)) == (202, 5)
        gevent.sleep(0.5)
        if batched:
            client.poll()
        assert fetch(client, get("/len", h)) == (202, 5)
        assert client.connections_opened == 2
        # The answer comes while most of a large request is still unwritten: that connection is
        # mid-request, so it is closed, and the next request gets a fresh one.
        body = b"x" * (32 << 20)
        early = b"POST /early HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (h.encode(), len(body), body)
        assert fetch(client, early) == (202, 5)
        assert fetch(client, get("/len", h)) == (202, 5)
        assert client.connections_opened == 3  # the early answer's connection (the second) is not reused
        client.close()


@pytest.mark.parametrize("batched", [False, True])
def test_client_deadline_and_cancel_end_requests_with_their_errors(batched: bool):
    with Server() as server:
        # Batched, only the deadline timer reads answers here (nobody calls poll): it still ends each.
        client = KeepAliveClient(server.url, timeout=0.2, batched=batched)
        h = client.host_header
        with pytest.raises(gevent.Timeout) as expired:
            fetch(client, get("/hang", h))
        assert expired.value.seconds == 0.2  # the client's deadline, not the test's wait
        ended: list[BaseException | None] = []
        client.send(get("/hang", h), None, lambda _t, _s, _n, error, _e: ended.append(error))
        assert client.in_flight == 1
        assert client.cancel_all(ConnectionAbortedError("stop")) == 1
        assert [type(e) for e in ended] == [ConnectionAbortedError] and client.in_flight == 0
        assert fetch(client, get("/len", h)) == (202, 5)  # a timed-out connection is never reused
        assert client.connections_opened == 3
        client.close()


class ThreadServer:
    """Answers every request at once from an OS thread: it answers while the test holds gevent's loop."""

    def __init__(self) -> None:
        self.listener = std_socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while conn.recv(65536):
                conn.sendall(CANNED["/len"])

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"


@pytest.mark.parametrize("batched", [False, True])
def test_an_answer_is_timed_when_it_reached_the_socket_not_when_it_was_read(batched: bool):
    with ThreadServer() as server:
        client = KeepAliveClient(server.url, timeout=5.0, batched=batched)
        assert fetch(client, get("/len", client.host_header)) == (202, 5)  # connected: the next send writes at once
        ended: list[tuple[int | None, int]] = []
        sent = time.time_ns()
        client.send(get("/len", client.host_header), None, lambda _t, s, _n, _e, ended_ns: ended.append((s, ended_ns)))
        time.sleep(0.4)  # the loop is held: the thread answers, nobody reads
        assert ended == [] and client.in_flight == 1
        read_from = time.time_ns()
        if batched:
            client.poll()  # what the driver's clock does when it wakes
        else:
            gevent.sleep(0.05)  # the loop reads it as soon as it runs
        assert [status for status, _ in ended] == [202] and client.in_flight == 0
        assert sent <= ended[0][1] < read_from - 200_000_000  # the kernel's stamp, from before the read
        client.close()


@pytest.fixture
def gevent_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds of every `gevent.sleep` from here on (0: a yield to the loop)."""
    calls: list[float] = []
    real_sleep = gevent.sleep

    def sleep(seconds: float = 0) -> None:
        calls.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(gevent, "sleep", sleep)
    return calls


class _FakeTime:
    """The driver's clock on a time of the test's own: a sleep advances it by what was asked plus a
    fixed oversleep, so what the clock does is the same on an idle machine and a loaded one."""

    def __init__(self, oversleep: float) -> None:
        self.t = 1000.0
        self.oversleep = oversleep
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def time_ns(self) -> int:
        return round(self.t * 1e9)

    def sleep(self, seconds: float = 0) -> None:
        self.sleeps.append(seconds)
        self.t += seconds + (self.oversleep if seconds > 0 else 0.0)


@pytest.mark.parametrize(
    ("interval", "oversleep", "wakes", "sleeps"),
    [
        (0.0, 0.0002, 100, 99),  # every arrival: the client reads each answer as it comes
        (0.0, 0.0015, 100, 50),  # one that overslept makes the next late: a yield instead of a sleep
        (0.02, 0.0002, 6, 5),  # at most every 20 ms: 0, 20, ..., 100 ms for 0.1 s of arrivals
    ],
)
def test_the_clock_wakes_at_most_once_per_wake_interval_and_never_early(
    interval: float, oversleep: float, wakes: int, sleeps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeTime(oversleep)
    monkeypatch.setattr(driver_module, "time", fake)
    monkeypatch.setattr(gevent, "sleep", fake.sleep)
    woke: list[float] = []
    clock = GeventClock(fake.time_ns(), interval, lambda: woke.append(clock.now()))
    for i in range(100):  # 1,000/s for 0.1 s
        clock.sleep_until(i * 0.001)
        assert clock.now() >= i * 0.001 - 1e-9
    assert (len(woke), len([s for s in fake.sleeps if s > 0])) == (wakes, sleeps)
    assert min(b - a for a, b in itertools.pairwise(woke)) >= interval - 1e-9


def test_the_late_arrivals_of_one_wakeup_start_without_yielding_and_a_long_burst_yields_each_interval(
    gevent_sleeps: list[float],
):
    def yields() -> int:
        return sum(1 for s in gevent_sleeps if s <= 0)

    woke: list[float] = []
    clock = GeventClock(time.time_ns(), 0.01, lambda: woke.append(clock.now()))
    clock.sleep_until(0.0)  # late from the start: the first wakeup yields once
    assert yields() == len(woke) == 1
    for _ in range(50):
        clock.sleep_until(0.0)  # already due, in the same wakeup's batch
    assert yields() == len(woke) == 1
    calls = 0
    while yields() < 6:  # a catch-up burst: still due, for several intervals
        clock.sleep_until(0.0)
        calls += 1
    assert calls > 2 * yields() and len(woke) == yields()  # yields once an interval, reading answers
    assert min(b - a for a, b in itertools.pairwise(woke)) >= 0.01 * 0.9


def test_a_batched_run_stopped_before_its_next_arrival_ends_cleanly(tmp_path: Path):
    with Server() as server:
        client = KeepAliveClient(server.url, timeout=1.0, batched=True)
        config = steady(tmp_path, 2, 4.0, start_in=0.0, wake_interval=0.005, run_id="t")  # at 0 s and 0.25 s
        driver = Driver(client, ReactionFactory(10, 10, seed=6), config, LoadStats(), Report())
        stop = Event()

        def stopper() -> None:
            gevent.sleep(0.1)  # the driver sleeps until its second arrival
            stop.set()
            driver.abort()  # closes the client under the sleeping clock

        gevent.spawn(stopper)
        assert driver.run(stopped=stop.is_set) is False  # the clock's last wakeup reads nothing, raises nothing
    summary = json.loads((tmp_path / "summary-w0.json").read_text())
    assert summary["started"] == summary["recorded"] == 1
    ended: list[BaseException | None] = []
    client.send(b"GET / HTTP/1.1\r\n\r\n", None, lambda _t, _s, _n, error, _e: ended.append(error))
    assert [type(e) for e in ended] == [ConnectionAbortedError]  # a send after close fails at once


def test_a_surprise_while_reading_costs_one_request_not_the_client(monkeypatch: pytest.MonkeyPatch):
    with Server() as server:
        client = KeepAliveClient(server.url, timeout=2.0)
        h = client.host_header

        def broken(conn: Any, data: bytes) -> bool:
            raise RuntimeError("a bug in the parser")

        monkeypatch.setattr(client, "_parse", broken)
        with pytest.raises(RuntimeError, match="a bug in the parser"):
            fetch(client, get("/len", h))
        monkeypatch.undo()
        assert fetch(client, get("/len", h)) == (202, 5)  # the loop still reads answers
        client.close()


def test_a_wake_interval_needs_a_batched_client(tmp_path: Path):
    config = steady(tmp_path, 1, 10.0, wake_interval=0.002)
    with pytest.raises(ValueError, match="needs a batched client"):
        Driver(
            KeepAliveClient("http://127.0.0.1:9", timeout=1.0),
            ReactionFactory(1, 1, seed=1),
            config,
            LoadStats(),
            Report(),
        )


class Report:
    def __init__(self) -> None:
        self.added: list[tuple[Outcome, str | None]] = []
        self.flushes = 0

    def add(self, outcome: Outcome, error_text: str | None, latency: float, length: int, rid: str, t: float) -> None:
        self.added.append((outcome, error_text))

    def flush(self) -> None:
        self.flushes += 1


def steady(
    tmp_path: Path, arrivals: int, rate: float, start_in: float = 0.05, wake_interval: float = 0.0, **summary: str
) -> DriverConfig:
    """`arrivals` evenly spaced at `rate` per second, starting `start_in` seconds from now."""
    return DriverConfig(
        schedule=[i / rate for i in range(arrivals)],
        epoch_unix_nanos=time.time_ns() + int(start_in * 1e9),
        duration=1.0,
        share_rate=lambda t: rate,
        max_in_flight=100,
        wake_interval=wake_interval,
        worker=0,
        outcomes_dir=tmp_path,
        summary=dict(summary),
    )


@pytest.mark.parametrize("wake_interval", [0.0, 0.01])
def test_driver_records_every_request_with_what_the_server_did(tmp_path: Path, wake_interval: float):
    arrivals = 200
    with Server() as server:
        client = KeepAliveClient(server.url, timeout=0.3, batched=wake_interval > 0)
        config = steady(tmp_path, arrivals, 400, start_in=0.1, wake_interval=wake_interval, run_id="t")  # 0.5 s
        report = Report()
        stats = LoadStats()
        driver = Driver(client, ReactionFactory(10, 10, seed=1), config, stats, report)
        if wake_interval:  # the clock reads the answers when it wakes (the deadline timer alone would too)
            assert driver.clock.on_wake == client.poll
        assert driver.run(stopped=lambda: False)
        driver.close()
    records = list(read_outcomes(tmp_path))
    assert len(records) == arrivals == len(server.received) == len(report.added)
    expect = {"ok": (Outcome.ACK, 202), "fail": (Outcome.FAILED, 503), "slow": (Outcome.UNKNOWN, None)}
    for r in records:
        assert (r.outcome, r.status) == expect[server.received[r.reaction_id]], r
        assert r.started_unix_nanos <= r.ended_unix_nanos, r
        assert r.started_unix_nanos - r.intended_unix_nanos > -5_000_000, r  # a timer may fire a hair early
        assert r.post_id.startswith("post-")
    unknown = [r for r in records if r.outcome is Outcome.UNKNOWN]
    assert unknown and all("Timeout" in (r.error or "") and r.latency_seconds >= 0.3 for r in unknown)
    assert {r.error for r in records if r.outcome is Outcome.FAILED} == {"HTTP 503"}
    summary = json.loads((tmp_path / "summary-w0.json").read_text())
    assert summary["recorded"] == summary["started"] == arrivals and summary["completed_schedule"]
    assert stats.started == arrivals and stats.in_flight == 0
    assert report.flushes >= 1
    assert sum(json.loads(line)["intended"] for line in (tmp_path / "series-w0.jsonl").read_text().splitlines()) == 200
    # Kept alive: far fewer connections than requests (a timed-out request closes its connection).
    assert server.connections < arrivals / 2


def test_abort_records_the_requests_in_flight_as_unknown(tmp_path: Path):
    with Server() as server:
        config = steady(tmp_path, 100, 400)
        driver = Driver(
            KeepAliveClient(server.url, timeout=5.0), ReactionFactory(10, 10, seed=2), config, LoadStats(), Report()
        )

        def stop_soon() -> None:
            gevent.sleep(0.5)  # the schedule is over, the slow answers (1 s) are not
            driver.abort(grace=2.0)

        stopper = gevent.spawn(stop_soon)
        driver.run(stopped=lambda: False)
        stopper.join()
    records = list(read_outcomes(tmp_path))
    assert len(records) == 100
    aborted = [r for r in records if r.error == "Aborted: load test stopped"]
    assert aborted and all(r.outcome is Outcome.UNKNOWN for r in aborted)
    assert {server.received[r.reaction_id] for r in aborted} == {"slow"}
    assert json.loads((tmp_path / "summary-w0.json").read_text())["recorded"] == 100


def test_close_with_requests_in_flight_records_them_as_aborted(tmp_path: Path):
    # No abort() first (its grace ran out, or a caller went straight to close): what is still in
    # flight ends as aborted and reaches the outcome file before it is closed.
    with Server() as server:
        config = steady(tmp_path, 100, 400)
        driver = Driver(
            KeepAliveClient(server.url, timeout=5.0), ReactionFactory(10, 10, seed=5), config, LoadStats(), Report()
        )
        running = gevent.spawn(driver.run, lambda: False)
        gevent.sleep(0.5)  # the schedule is over, the slow answers (1 s) are not
        driver.close()
        running.join(timeout=5)
    records = list(read_outcomes(tmp_path))
    assert len(records) == 100
    aborted = [r for r in records if r.error == "Aborted: load test stopped"]
    assert aborted and {server.received[r.reaction_id] for r in aborted} == {"slow"}


class SlowReport(Report):
    def flush(self) -> None:
        super().flush()
        gevent.sleep(0.3)  # as a flush waiting on the thread pool: close() yields mid-way


def test_a_second_close_returns_only_once_the_first_has_written_the_summary(tmp_path: Path):
    # A Locust worker told to quit exits when its stop handler returns; if the driving greenlet was
    # already closing, the handler's close() must wait for it, or the summary is never written.
    with Server() as server:
        config = steady(tmp_path, 5, 100)
        driver = Driver(
            KeepAliveClient(server.url, timeout=1.0), ReactionFactory(10, 10, seed=4), config, LoadStats(), SlowReport()
        )
        driver.run(stopped=lambda: False)
        first = gevent.spawn(driver.close)
        gevent.sleep(0.05)  # the first close is inside its flush
        assert not first.dead
        driver.abort(grace=0.1)
        assert (tmp_path / "summary-w0.json").exists()
        first.join()


def test_failed_requests_leave_no_cycles_for_the_collector(tmp_path: Path):
    """Automatic collection is off during a schedule (gc_pacing.py), so a request that fails (503,
    timeout) must be freed by reference counting alone: its exception, traceback and frame form no
    cycle. Every object the collector would have to free is kept (DEBUG_SAVEALL) and looked at."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        with Server() as server:
            config = steady(tmp_path, 100, 400)
            driver = Driver(
                KeepAliveClient(server.url, timeout=0.3), ReactionFactory(10, 10, seed=3), config, LoadStats(), Report()
            )
            assert driver.run(stopped=lambda: False)
            driver.close()
        gc.collect()
        exceptions = [o for o in gc.garbage if isinstance(o, BaseException)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    outcomes = {r.outcome for r in read_outcomes(tmp_path)}
    assert {Outcome.FAILED, Outcome.UNKNOWN} <= outcomes  # failures and timeouts did happen
    assert exceptions == []


def test_paced_collection_turns_automatic_collection_off_and_times_its_own():
    assert gc.isenabled()
    with PacedCollection() as paced:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed before the schedule is never scanned again
        paced.collect_young()
        paced.collect_young()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    summary = paced.summary()
    assert summary["gc_collections"] == 2
    assert 0 < summary["gc_pause_max_seconds"] <= summary["gc_pause_total_seconds"]


def test_the_healthz_endpoint_sends_gets_with_ids_of_their_own(tmp_path: Path):
    """`--endpoint healthz`: the same open loop and records, each arrival a GET /healthz."""
    with Server() as server:
        config = steady(tmp_path, 40, 200)
        factory = ReactionFactory(10, 10, seed=4, endpoint="healthz")
        driver = Driver(KeepAliveClient(server.url, timeout=2.0), factory, config, LoadStats(), Report())
        assert driver.run(stopped=lambda: False)
        driver.close()
    records = list(read_outcomes(tmp_path))
    assert len(records) == 40 and {(r.outcome, r.status) for r in records} == {(Outcome.ACK, 200)}
    assert len({r.reaction_id for r in records}) == 40
    assert server.received == {}  # no reaction POST reached the server
    with pytest.raises(ValueError, match="endpoint must be one of reactions, healthz"):
        ReactionFactory(1, 1, seed=1, endpoint="metrics")
