"""The topology's host indirection: 127.0.0.1 natively, service names in containers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facts import topology

PROBE = "from facts import topology as t; print(t.addr(t.KAFKA_INTERNAL_PORT), t.PROXY_PUSH.listen, " \
    "t.PROXY_PUSH.upstream, t.url(t.REACTION_HTTP_PORT, '/healthz'), t.BIND_HOST)"  # fmt: skip


def probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_ASYNC_BENCH_")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_native_is_loopback_everywhere() -> None:
    assert probe() == "127.0.0.1:9092 127.0.0.1:18082 127.0.0.1:8082 http://127.0.0.1:8080/healthz 127.0.0.1"


def test_hosts_map_components_to_service_names() -> None:
    got = probe(
        SYNC_ASYNC_BENCH_HOSTS="kafka=kafka,toxiproxy=toxiproxy,pushsink=pushsink,reaction=reaction",
        SYNC_ASYNC_BENCH_BIND_HOST="0.0.0.0",
    )
    assert got == "kafka:9092 toxiproxy:18082 pushsink:8082 http://reaction:8080/healthz 0.0.0.0"


def test_every_listening_port_belongs_to_a_component() -> None:
    assert set(topology.listening_ports()) <= set(topology.PORT_COMPONENT)


def test_bad_hosts_value_is_named() -> None:
    with pytest.raises(ValueError, match="SYNC_ASYNC_BENCH_HOSTS: 'kafka' is not component=host"):
        topology._parse_hosts("kafka")
