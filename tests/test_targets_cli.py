"""Each service's command line: defaults come from facts.topology, bad combinations are refused,
and a real process starts, answers /healthz and /metrics, and exits 0 on SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from facts import topology
from targets.notification.__main__ import parse_args as notification_args
from targets.pushsink.__main__ import parse_args as pushsink_args
from targets.reaction.__main__ import parse_args as reaction_args
from targets.runtime import RateLimitFilter


def test_defaults_come_from_topology() -> None:
    r = reaction_args(["--pipeline", "async"])
    assert (r.host, r.port) == (topology.HOST, topology.REACTION_HTTP_PORT)
    assert r.notification_target == topology.PROXY_NOTIFICATION.listen
    assert r.kafka_bootstrap == topology.PROXY_KAFKA_PRODUCE.listen
    assert r.topic == topology.TOPIC_REACTIONS
    assert r.kafka_request_timeout < r.deadline
    n = notification_args([])
    assert (n.grpc_port, n.metrics_port) == (topology.NOTIFICATION_GRPC_PORT, topology.NOTIFICATION_METRICS_PORT)
    assert n.push_url == f"http://{topology.PROXY_PUSH.listen}/push"
    assert n.kafka_bootstrap == topology.PROXY_KAFKA_CONSUME.listen
    assert (n.topic, n.dead_letter_topic, n.group) == (
        topology.TOPIC_REACTIONS,
        topology.TOPIC_DEAD_LETTER,
        topology.CONSUMER_GROUP,
    )
    assert n.grpc and n.kafka
    p = pushsink_args([])
    assert (p.host, p.port) == (topology.HOST, topology.PUSHSINK_HTTP_PORT)


@pytest.mark.parametrize(
    "argv",
    [
        [],  # the pipeline is required
        ["--pipeline", "carrier-pigeon"],
        ["--pipeline", "async", "--deadline", "1", "--kafka-request-timeout", "1.5"],
        ["--pipeline", "sync-resilient", "--max-attempts", "9"],
        ["--pipeline", "sync", "--deadline", "0"],
        ["--pipeline", "sync-resilient", "--breaker-min-calls", "50", "--breaker-window", "20"],
        ["--pipeline", "sync-resilient", "--breaker-failure-ratio", "2"],
    ],
)
def test_reaction_refuses_bad_flags(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        reaction_args(argv)


def test_rate_limit_filter_lets_each_template_through_once_per_interval() -> None:
    limit = RateLimitFilter(("aiokafka",), interval=30)

    def record(name: str, msg: str, created: float) -> logging.LogRecord:
        rec = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)
        rec.created = created
        return rec

    assert limit.filter(record("aiokafka.client", "Unable connect to node %s", 0))
    assert not limit.filter(record("aiokafka.client", "Unable connect to node %s", 10))
    assert limit.filter(record("aiokafka.client", "another message", 10))
    assert limit.filter(record("aiokafka.client", "Unable connect to node %s", 31))
    assert limit.filter(record("targets.reaction", "Unable connect to node %s", 11))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((topology.HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                body: bytes = resp.read()
                return body
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, proc.stdout.read().decode() if proc.stdout else ""


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_services_start_serve_and_stop_cleanly(tmp_path: Path) -> None:
    sink_port, grpc_port, metrics_port, api_port = (free_port() for _ in range(4))
    ledger = tmp_path / "ledger.json"
    procs = [
        spawn("targets.pushsink", "--port", str(sink_port), "--ledger-file", str(ledger)),
        spawn(
            "targets.notification",
            "--no-kafka",
            "--grpc-port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
            "--push-url",
            f"http://{topology.HOST}:{sink_port}/push",
        ),
        spawn(
            "targets.reaction",
            "--pipeline",
            "sync",
            "--port",
            str(api_port),
            "--notification-target",
            f"{topology.HOST}:{grpc_port}",
        ),
    ]
    try:
        for proc, port in zip(procs, (sink_port, metrics_port, api_port), strict=True):
            assert json.loads(wait_http(f"http://{topology.HOST}:{port}/healthz", proc))["status"] == "ok"
            assert b"process_cpu_seconds_total" in wait_http(f"http://{topology.HOST}:{port}/metrics", proc)
        request = urllib.request.Request(
            f"http://{topology.HOST}:{api_port}/v1/posts/p1/reactions",
            data=json.dumps({"user_id": "u", "kind": "like", "reaction_id": "cli-1"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
            assert json.loads(resp.read()) == {"reaction_id": "cli-1", "status": "delivered"}
    finally:
        results = [stop(proc) for proc in reversed(procs)]
    for code, output in results:
        assert code == 0, output
        assert "stop signal received" in output
    assert json.loads(ledger.read_text())["deliveries"]["cli-1"]["count"] == 1
