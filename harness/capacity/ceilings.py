"""What each pipeline is built on, measured bare on the same machine: the ceilings `bench capacity`
divides its capacities by.

- HTTP: `wrk` (closed loop, keep-alive) on the reaction service's GET /healthz and its POST (and,
  as the load generator's control, paced to the generator's rate);
- gRPC: a bare `grpc.aio` unary Notify loop through the same Toxiproxy link the reaction service
  uses (each call delivers to the push sink through the `push` link, with no toxic: the sync hop as
  built, minus HTTP and the reaction service), and the same loop against a server that answers at
  once (`grpc.bare`: what grpc.aio carries with delivery off);
- Kafka: `org.apache.kafka.tools.ProducerPerformance` / `ConsumerPerformance` from the broker's own
  version (acks=all, idempotent, the size of a serialized ReactionEvent) and bare aiokafka produce
  and consume loops, through the same Toxiproxy listeners as the pipeline, on a topic of their own.

Every measurement is bounded in time and leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import BaseModel, ConfigDict

from facts import topology
from facts.paths import cache_dir
from facts.versions import KAFKA_VERSION
from harness import kafka_admin
from harness.supervisor import set_pdeathsig
from protos import reaction_pb2, reaction_pb2_grpc
from targets.wire import PIPELINE_METADATA_KEY

CEILING_TOPIC = "capacity.ceiling"
POST_PATH = "/v1/posts/post-1/reactions"
POST_BODY = '{"user_id": "user-1", "kind": "love"}'


class Ceiling(BaseModel):
    """One bare measurement: `value` per second of `what`, by `tool`."""

    model_config = ConfigDict(extra="forbid")

    name: str  # e.g. "http.wrk.post.async", "grpc.notify", "kafka.produce.aiokafka"
    tool: str
    what: str
    per_second: float | None  # None: the measurement failed (see `error`)
    count: int = 0
    seconds: float = 0.0
    errors: int = 0
    cpu_seconds_per_1000: float | None = None  # of the measuring tool itself, when known
    wakeups_per_request: float | None = None  # the tool's sleeps (voluntary switches) per request, when known
    detail: str = ""
    error: str | None = None

    def rate_and_cpu(self) -> tuple[float, float] | None:
        """(per second, CPU seconds per 1,000 requests) of a run that gave both; None when it failed
        or its tool's CPU is not known."""
        if self.per_second is None or self.cpu_seconds_per_1000 is None:
            return None
        return self.per_second, self.cpu_seconds_per_1000

    def detail_line(self) -> str:
        """`detail` on one line, for a table row or a sentence: it may quote a tool's output."""
        return " ".join(self.detail.split())


def sample_event() -> reaction_pb2.ReactionEvent:
    """A ReactionEvent as the reaction service builds it (uuid id, post-<k>, user-<k>)."""
    return reaction_pb2.ReactionEvent(
        reaction_id=str(uuid.uuid4()),
        post_id="post-123",
        user_id="user-1234",
        kind=reaction_pb2.LOVE,
        created_unix_nanos=time.time_ns(),
    )


def record_size() -> int:
    """Bytes of one serialized ReactionEvent: the Kafka tools' --record-size."""
    return len(sample_event().SerializeToString())


def failed(name: str, tool: str, what: str, error: BaseException | str) -> Ceiling:
    return Ceiling(name=name, tool=tool, what=what, per_second=None, error=str(error) or type(error).__name__)


# -- HTTP: wrk ------------------------------------------------------------------------------------

_WRK_POST_LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def _run_with_rusage(cmd: list[str], timeout: float) -> tuple[int, str, float, int]:
    """(exit code, stdout+stderr, CPU seconds of the child, its voluntary switches); killed at `timeout`."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=set_pdeathsig
        )
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return proc.returncode, text, usage.ru_utime + usage.ru_stime, usage.ru_nvcsw


def parse_wrk(text: str) -> tuple[int, float, int]:
    """(requests, seconds, errors) from wrk's summary; errors = non-2xx/3xx + socket errors."""
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not m:
        raise ValueError(f"no summary in wrk's output: {text.strip()[-300:]!r}")
    seconds = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
    errors = 0
    if e := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(e.group(1))
    if e := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(g) for g in e.groups())
    return int(m.group(1)), seconds, errors


WRK_CONNECTIONS = 64  # wrk at its max (closed loop)

# wrk's delay(): milliseconds a connection waits before each request, its first included (an
# integer: wrk truncates). Uniformly random, so the connections drift apart and their requests
# arrive spread out as an open loop's do, not in lockstep bursts that one wakeup would serve.
_WRK_PACE_LUA = """function delay() return math.random(0, {span_ms}) end
"""
PACE_MEAN_DELAY_SECONDS = 0.1  # paced: each connection's mean wait before a request
PACE_MAX_CONNECTIONS = 1000  # more would meet the usual limit of 1,024 open files
REPLAY_TOLERANCE = 0.05  # a paced run further than this off its rate is played once more, recalibrated


@dataclass(frozen=True)
class Pace:
    """wrk paced to `rate`: each connection, a closed loop whose answers take `latency` seconds, waits
    a random 0..span ms before each request, on average PACE_MEAN_DELAY_SECONDS (so a run of a few
    seconds is not mostly the first waits), and there are as many connections as that takes."""

    rate: float
    latency: float

    def connections(self) -> int:
        if not (0 < self.rate < math.inf and 0 <= self.latency < math.inf):
            raise ValueError(f"cannot pace wrk to {self.rate}/s with answers taking {self.latency} s")
        # rounded first: 1000 x (0.2 + 0.1) is 300.00000000000006 in floating point, not a 301st connection
        needed = max(1, math.ceil(round(self.rate * (self.latency + PACE_MEAN_DELAY_SECONDS), 6)))
        if needed > PACE_MAX_CONNECTIONS:
            raise ValueError(
                f"cannot pace wrk to {self.rate:.0f}/s with answers taking {self.latency * 1000:.0f} ms: "
                f"it would take {needed} connections (at most {PACE_MAX_CONNECTIONS})"
            )
        return needed

    def span_ms(self) -> int:
        """The longest delay: twice the mean wait that, with the answer's time, makes each cycle
        connections/rate long."""
        return round(2 * (self.connections() / self.rate - self.latency) * 1000)


def wrk(
    wrk_bin: Path, name: str, path: str, seconds: float, *, post: bool, connections: int = WRK_CONNECTIONS,
    threads: int = 1, pace: Pace | None = None,
) -> Ceiling:  # fmt: skip
    """`wrk` on `path` for `seconds`: a closed loop as fast as the server answers, or paced (`pace`
    sets the connections then)."""
    try:
        span = None if pace is None else pace.span_ms()
        connections = connections if pace is None else pace.connections()
    except ValueError as e:
        return failed(name, "wrk", f"{'POST' if post else 'GET'} {path}, paced", e)
    what = f"{'POST' if post else 'GET'} {path}, closed loop, {threads} thread(s) x {connections} connections"
    lua = _WRK_POST_LUA.format(body=POST_BODY) if post else ""
    if pace is not None:
        what += f", paced to about {pace.rate:.0f}/s (each waits 0-{span} ms before each request)"
        lua += _WRK_PACE_LUA.format(span_ms=span)
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        cmd = [str(wrk_bin), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        if lua:
            script = Path(tmp) / "script.lua"
            script.write_text(lua)
            cmd += ["-s", str(script)]
        cmd.append(topology.url(topology.REACTION_HTTP_PORT, path))
        try:
            code, text, cpu, sleeps = _run_with_rusage(cmd, timeout=seconds + 30)
            if code != 0:
                raise RuntimeError(f"wrk exited {code}: {text.strip()[-300:]}")
            count, took, errors = parse_wrk(text)
            if count == 0:
                raise RuntimeError("wrk completed no request")
        except (OSError, RuntimeError, ValueError) as e:
            return failed(name, "wrk", what, e)
    good = count - errors
    return Ceiling(
        name=name,
        tool="wrk",
        what=what,
        per_second=good / took if took > 0 else None,
        count=count,
        seconds=took,
        errors=errors,
        cpu_seconds_per_1000=cpu / count * 1000 if count else None,
        wakeups_per_request=sleeps / count if count else None,
    )


def wrk_paced(wrk_bin: Path, name: str, path: str, seconds: float, *, post: bool, pace: Pace) -> Ceiling:
    """wrk paced to `pace.rate`: the control for an open loop at that rate (wrk's cost per request is
    lowest at its max, when the server is saturated and its connections wait on it together). The
    answers' time it is calibrated with is the open loop's, which near capacity includes queueing a
    closed loop does not see: a run that missed the rate by more than REPLAY_TOLERANCE is played
    once more with wrk's own answer time, from the rate it achieved, and the closer of the two kept."""
    first = wrk(wrk_bin, name, path, seconds, post=post, pace=pace)
    achieved = first.per_second
    if achieved is None or achieved <= 0 or _off(achieved, pace.rate) <= REPLAY_TOLERANCE:
        return first
    own = Pace(pace.rate, max(0.0, pace.connections() / achieved - pace.span_ms() / 2000))  # less the mean delay
    again = wrk(wrk_bin, name, path, seconds, post=post, pace=own)
    if again.per_second is None or _off(again.per_second, pace.rate) >= _off(achieved, pace.rate):
        first.detail = f"kept over a replay with wrk's own answer time ({_rate_or_error(again)})"
        return first
    again.detail = (
        f"played twice: paced with answers of {pace.latency * 1000:.1f} ms it achieved {achieved:.0f}/s; "
        f"wrk's own answers took {own.latency * 1000:.1f} ms"
    )
    return again


def _off(rate: float, target: float) -> float:
    return abs(rate / target - 1)


def _rate_or_error(c: Ceiling) -> str:
    return (c.error or "") if c.per_second is None else f"{c.per_second:.0f}/s"


# -- gRPC: a bare grpc.aio unary loop -----------------------------------------------------------


async def _grpc_loop(target: str, seconds: float, concurrency: int) -> tuple[int, int, float]:
    ok = errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reaction_pb2_grpc.NotificationStub(channel)
        await asyncio.wait_for(channel.channel_ready(), 10)
        metadata = ((PIPELINE_METADATA_KEY, "ceiling"),)
        start = time.monotonic()
        end = start + seconds

        async def worker() -> None:
            nonlocal ok, errors
            while time.monotonic() < end:
                try:
                    await stub.Notify(sample_event(), timeout=5.0, metadata=metadata)
                    ok += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, errors, time.monotonic() - start


def grpc_notify(seconds: float, concurrency: int = 64, cpu_of: Callable[[], float] | None = None) -> Ceiling:
    name, tool = "grpc.notify", "grpc.aio unary loop"
    what = (
        f"Notify through the Toxiproxy 'notification' link, {concurrency} calls in flight; each call "
        "delivers to the push sink (no toxic): the notification service has no switch to turn delivery off"
    )
    try:
        before = time.process_time()
        ok, errors, took = asyncio.run(_grpc_loop(topology.PROXY_NOTIFICATION.listen, seconds, concurrency))
        cpu = time.process_time() - before
    except (grpc.aio.AioRpcError, TimeoutError, OSError) as e:
        return failed(name, tool, what, e)
    return Ceiling(
        name=name,
        tool=tool,
        what=what,
        per_second=ok / took,
        count=ok + errors,
        seconds=took,
        errors=errors,
        cpu_seconds_per_1000=cpu / (ok + errors) * 1000 if ok + errors else None,
    )


def grpc_bare(seconds: float, concurrency: int = 64) -> Ceiling:
    """The same loop against a server that answers at once (harness/capacity/bare_grpc_server.py, its own
    process, no Toxiproxy): what grpc.aio itself carries on this machine, both ends in Python."""
    name, tool = "grpc.bare", "grpc.aio unary loop"
    what = f"Notify to a bare grpc.aio server that answers at once (no delivery), {concurrency} calls in flight"
    cmd = [sys.executable, "-m", "harness.capacity.bare_grpc_server"]
    try:
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=set_pdeathsig)
    except OSError as e:
        return failed(name, tool, what, e)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().strip() or 0)
        if not port:
            raise RuntimeError(f"the bare gRPC server did not start (exit {server.poll()})")
        before = time.process_time()
        ok, errors, took = asyncio.run(_grpc_loop(f"{topology.HOST}:{port}", seconds, concurrency))
        cpu = time.process_time() - before
    except (grpc.aio.AioRpcError, TimeoutError, OSError, RuntimeError) as e:
        return failed(name, tool, what, e)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return Ceiling(
        name=name, tool=tool, what=what, per_second=ok / took, count=ok + errors, seconds=took, errors=errors,
        cpu_seconds_per_1000=cpu / (ok + errors) * 1000 if ok + errors else None,
    )  # fmt: skip


# -- Kafka ----------------------------------------------------------------------------------------

_TOOLS_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sync-async-bench</groupId><artifactId>kafka-tools</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>{kafka}</version></dependency>
  </dependencies>
</project>
"""


def kafka_tools_libs() -> Path:
    """org.apache.kafka:kafka-tools (ProducerPerformance, ConsumerPerformance) of the broker's
    version and its runtime dependencies, fetched from Maven Central once into the cache."""
    libs = cache_dir() / f"kafka-tools-{KAFKA_VERSION}" / "libs"
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    with tempfile.TemporaryDirectory(prefix="kafka-tools-pom-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_TOOLS_POM.format(kafka=KAFKA_VERSION))
        staging = libs.parent / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"fetching kafka-tools {KAFKA_VERSION} failed: {(proc.stdout + proc.stderr)[-500:]}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    marker.touch()
    return libs


async def _ensure_topic(name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_admin.BOOTSTRAP, request_timeout_ms=10000)
    try:
        await admin.start()
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        await admin.close()


def ensure_topic(name: str = CEILING_TOPIC, partitions: int = topology.TOPIC_PARTITIONS) -> None:
    asyncio.run(_ensure_topic(name, partitions))


def parse_producer_performance(text: str) -> tuple[int, float]:
    """(records, records/s) from ProducerPerformance's final line."""
    m = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", text)
    if not m:
        raise ValueError(f"no summary in ProducerPerformance's output: {text.strip()[-300:]!r}")
    return int(m[-1][0]), float(m[-1][1])


def parse_consumer_performance(text: str) -> tuple[int, float]:
    """(records, records/s while fetching) from ConsumerPerformance's CSV line."""
    for line in reversed(text.splitlines()):
        cols = [c.strip() for c in line.split(",")]
        if len(cols) >= 10 and re.fullmatch(r"\d+", cols[4]):
            return int(cols[4]), float(cols[9])
    raise ValueError(f"no summary in ConsumerPerformance's output: {text.strip()[-300:]!r}")


def _kafka_tool(
    main_class: str,
    args: list[str],
    *,
    timeout: float,
    parse: Callable[[str], tuple[int, float]],
    name: str,
    what: str,
    detail: str,
) -> Ceiling:
    """Run `org.apache.kafka.tools.<main_class> <args>` (the broker's version, fetched once) and read
    its summary with `parse` -> (records, records/s); a failure of any step is a failed Ceiling."""
    tool = f"org.apache.kafka.tools.{main_class}"
    try:
        cmd = ["java", "-Xmx512m", "-cp", f"{kafka_tools_libs()}/*", tool, *args]
        code, text, cpu, _ = _run_with_rusage(cmd, timeout)
        if code != 0:
            raise RuntimeError(f"exit {code}: {text.strip()[-300:]}")
        count, rate = parse(text)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
        return failed(name, tool, what, e)
    return Ceiling(
        name=name, tool=tool, what=what, per_second=rate, count=count, seconds=count / rate if rate else 0.0,
        detail=detail, cpu_seconds_per_1000=cpu / count * 1000 if count else None,
    )  # fmt: skip


def producer_performance(records: int, size: int, timeout: float) -> Ceiling:
    args = ["--bootstrap-server", topology.PROXY_KAFKA_PRODUCE.listen, "--topic", CEILING_TOPIC,
            "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
            "--producer-props", "acks=all", "enable.idempotence=true"]  # fmt: skip
    return _kafka_tool(
        "ProducerPerformance",
        args,
        timeout=timeout,
        parse=parse_producer_performance,
        name="kafka.produce.java",
        what=f"{records} records of {size} B, acks=all, idempotent, unthrottled, via the 'kafka-produce' link",
        detail="JVM start-up excluded (the tool times its own sends)",
    )


def consumer_performance(records: int, timeout: float) -> Ceiling:
    args = ["--bootstrap-server", topology.PROXY_KAFKA_CONSUME.listen, "--topic", CEILING_TOPIC,
            "--num-records", str(records), "--group", f"ceiling-{uuid.uuid4().hex[:8]}",
            "--timeout", str(int(timeout * 1000))]  # fmt: skip
    return _kafka_tool(
        "ConsumerPerformance",
        args,
        timeout=timeout + 20,  # past the tool's own --timeout
        parse=parse_consumer_performance,
        name="kafka.consume.java",
        what=f"{records} records from the earliest offset, via the 'kafka-consume' link",
        detail="fetch rate (rebalance excluded)",
    )


async def _produce_loop(seconds: float, concurrency: int) -> tuple[int, int, float]:
    producer = AIOKafkaProducer(
        bootstrap_servers=topology.PROXY_KAFKA_PRODUCE.listen, acks="all", enable_idempotence=True
    )
    ok = errors = 0
    await producer.start()
    try:
        start = time.monotonic()
        end = start + seconds

        async def worker() -> None:
            nonlocal ok, errors
            while time.monotonic() < end:
                event = sample_event()
                try:
                    await producer.send_and_wait(CEILING_TOPIC, event.SerializeToString(), key=event.post_id.encode())
                    ok += 1
                except Exception:  # any failed send counts; the loop measures what is acknowledged
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, errors, time.monotonic() - start
    finally:
        await producer.stop()


def aiokafka_produce(seconds: float, concurrency: int = 256) -> Ceiling:
    name, tool = "kafka.produce.aiokafka", "aiokafka produce loop"
    what = (
        f"send_and_wait from {concurrency} tasks (as the reaction service awaits each request's ack), "
        "acks=all, idempotent, via the 'kafka-produce' link"
    )
    try:
        before = time.process_time()
        ok, errors, took = asyncio.run(_produce_loop(seconds, concurrency))
        cpu = time.process_time() - before
    except (OSError, RuntimeError) as e:
        return failed(name, tool, what, e)
    return Ceiling(name=name, tool=tool, what=what, per_second=ok / took, count=ok + errors, seconds=took,
                   errors=errors, cpu_seconds_per_1000=cpu / ok * 1000 if ok else None)  # fmt: skip


async def _consume_loop(seconds: float) -> tuple[int, float]:
    consumer = AIOKafkaConsumer(
        CEILING_TOPIC,
        bootstrap_servers=topology.PROXY_KAFKA_CONSUME.listen,
        group_id=f"ceiling-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        count, first = 0, None
        deadline = time.monotonic() + seconds + 15  # the group join comes first
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            n = sum(len(records) for records in batch.values())
            if n and first is None:
                first = time.monotonic()
                deadline = first + seconds
            if not n and first is not None:
                break  # the topic is read to its end
            count += n
        return count, (time.monotonic() - first) if first is not None else 0.0
    finally:
        await consumer.stop()


def aiokafka_consume(seconds: float) -> Ceiling:
    name, tool = "kafka.consume.aiokafka", "aiokafka consume loop"
    what = "getmany (up to 2,000 records) from the earliest offset, via the 'kafka-consume' link, no processing"
    try:
        before = time.process_time()
        count, took = asyncio.run(_consume_loop(seconds))
        cpu = time.process_time() - before
    except (OSError, RuntimeError) as e:
        return failed(name, tool, what, e)
    return Ceiling(name=name, tool=tool, what=what, per_second=count / took if took > 0 else None, count=count,
                   seconds=took, cpu_seconds_per_1000=cpu / count * 1000 if count else None,
                   error=None if count else "nothing consumed")  # fmt: skip
