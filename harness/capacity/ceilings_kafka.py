"""The Kafka ceilings: `org.apache.kafka.tools.ProducerPerformance` / `ConsumerPerformance` of the
broker's own version (acks=all, idempotent, the size of a serialized ReactionEvent) and bare
aiokafka produce and consume loops, through the same Toxiproxy listeners as the pipeline, on a
topic of their own."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from facts import topology
from facts.paths import cache_dir
from facts.versions import KAFKA_VERSION
from harness import kafka_admin
from harness.capacity.ceilings import Ceiling, failed, run_with_rusage, sample_event

CEILING_TOPIC = "capacity.ceiling"


def record_size() -> int:
    """Bytes of one serialized ReactionEvent: the Kafka tools' --record-size."""
    return len(sample_event().SerializeToString())


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


def ensure_topic(name: str = CEILING_TOPIC, partitions: int = topology.TOPIC_PARTITIONS) -> None:
    kafka_admin.create_topics(partitions, names=(name,))


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
        code, text, cpu, _ = run_with_rusage(cmd, timeout)
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
