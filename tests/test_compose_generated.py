"""compose/generated/ is what compose.generate renders, and both runtimes agree on the topology.

Every topology port, proxy, topic and scrape target appears in the compose config with the same
value; the compose Kafka config is facts.kafka_broker.properties with container hosts, and keeps
its one semantic: clients that come in on PRODUCE or CONSUME are told to come back through the
Toxiproxy proxy that leads to that same listener.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from compose import generate
from dashboards.prometheus import config as prometheus_config
from facts import kafka_broker, topology, versions


def read(name: str) -> str:
    return (generate.GENERATED / name).read_text()


def test_committed_files_are_what_the_generator_writes() -> None:
    assert generate.stale() == [], "compose/generated/ is stale: run `python -m compose.generate`"
    files = {p for p in generate.GENERATED.rglob("*") if p.is_file()}
    assert files == set(generate.outputs()), "compose/generated/ holds files the generator does not write"
    assert generate.main(["--check"]) == 0


def test_env_carries_the_topology() -> None:
    values = generate.parse_env(read("compose.env"))
    t = topology
    for name in (
        "KAFKA_INTERNAL_PORT", "KAFKA_PRODUCE_PORT", "KAFKA_CONSUME_PORT", "KAFKA_CONTROLLER_PORT",
        "REACTION_HTTP_PORT", "NOTIFICATION_GRPC_PORT", "NOTIFICATION_METRICS_PORT", "PUSHSINK_HTTP_PORT",
        "TOXIPROXY_API_PORT", "PROMETHEUS_PORT", "LOADGEN_METRICS_PORT", "CHAOS_METRICS_PORT",
        "TOPIC_REACTIONS", "TOPIC_DEAD_LETTER", "TOPIC_PARTITIONS", "CONSUMER_GROUP",
        "JAEGER_OTLP_HTTP_PORT", "JAEGER_QUERY_HTTP_PORT", "JAEGER_QUERY_GRPC_PORT",
    ):  # fmt: skip
        assert values[name] == str(getattr(t, name)), name
    for proxy in t.PROXIES:
        assert values[generate.env_name(proxy.name)] == str(proxy.listen_port)
    assert values["KAFKA_VERSION"] == versions.KAFKA_VERSION
    assert "v" + values["TOXIPROXY_VERSION"] == versions.TOXIPROXY_VERSION
    assert values["KAFKA_HEAP_OPTS"].split() == list(kafka_broker.HEAP_OPTS)
    assert values["JAEGER_VERSION"] == generate.JAEGER_IMAGE_TAGS[versions.JAEGER_VERSION]
    assert values["SERVICE_HOSTS"] == "jaeger=jaeger"


def test_a_jaeger_version_without_its_image_tag_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions, "JAEGER_VERSION", "v1.99.0")
    with pytest.raises(generate.GenerateError, match=r"v1\.99\.0: add its v2 image tag to JAEGER_IMAGE_TAGS"):
        generate.env()


def test_every_topology_port_has_a_compose_service() -> None:
    assert set(topology.listening_ports()) <= set(generate.PORT_SERVICE)
    assert set(topology.SCRAPE_TARGETS) == set(generate.SCRAPE_SERVICES)


def _hostport(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def test_toxiproxy_config_has_every_topology_proxy() -> None:
    entries = json.loads(read("toxiproxy.json"))
    assert [e["name"] for e in entries] == [p.name for p in topology.PROXIES]
    for entry, proxy in zip(entries, topology.PROXIES, strict=True):
        assert _hostport(entry["listen"]) == (generate.BIND_ALL, proxy.listen_port)
        host, port = _hostport(entry["upstream"])
        assert port == proxy.upstream_port and host == generate.PORT_SERVICE[port]
        assert entry["enabled"] is True


def test_cluster_toxiproxy_config_adds_a_proxy_pair_per_broker() -> None:
    single = {e["name"]: e for e in json.loads(read("toxiproxy.json"))}
    cluster = {e["name"]: e for e in json.loads(read("toxiproxy-cluster.json"))}
    kafka_names = {p.name for p in generate.KAFKA_PROXIES}
    for name, entry in single.items():
        assert cluster[name] == entry  # broker 1 and the other links are as in the single profile
    for proxy in generate.KAFKA_PROXIES:
        for node in range(2, generate.CLUSTER_BROKERS + 1):
            entry = cluster[f"{proxy.name}-{node}"]
            assert _hostport(entry["upstream"]) == (generate.broker_service(node), proxy.upstream_port)
    assert len(cluster) == len(single) + len(kafka_names) * (generate.CLUSTER_BROKERS - 1)
    listen = [_hostport(e["listen"])[1] for e in cluster.values()]
    assert len(set(listen)) == len(listen)
    extra = set(listen) - {p.listen_port for p in topology.PROXIES}
    assert not extra & set(topology.listening_ports()), "a broker proxy port collides with a topology port"


def test_prometheus_scrapes_the_native_jobs_at_service_names() -> None:
    native = yaml.safe_load(prometheus_config.render())
    compose = yaml.safe_load(read("prometheus.yml"))
    assert {k: v for k, v in compose.items() if k != "scrape_configs"} == {
        k: v for k, v in native.items() if k != "scrape_configs"
    }
    # The replicated topology (notification replicas 2..N, HAProxy) runs natively only: compose
    # scrapes every native target but theirs, and drops a job left without one.
    native_jobs = {j["job_name"]: j for j in native["scrape_configs"]}
    assert [j["job_name"] for j in compose["scrape_configs"]] == list(topology.SCRAPE_TARGETS)
    assert set(native_jobs) - set(topology.SCRAPE_TARGETS) == {"haproxy"}
    for job in compose["scrape_configs"]:
        njob = native_jobs[job["job_name"]]
        assert {k: v for k, v in job.items() if k != "static_configs"} == {
            k: v for k, v in njob.items() if k != "static_configs"
        }
        native_ports = [_hostport(t)[1] for sc in njob["static_configs"] for t in sc["targets"]]
        targets = [_hostport(t) for sc in job["static_configs"] for t in sc["targets"]]
        assert targets == [
            (s, p)
            for s in generate.SCRAPE_SERVICES[job["job_name"]]
            for p in native_ports
            if p not in generate.NATIVE_ONLY_SCRAPE_PORTS
        ]
        assert [p for _, p in targets] == [topology.SCRAPE_TARGETS[job["job_name"]]] * len(targets)


def test_only_the_replicated_topology_is_left_out_of_the_compose_scrapes() -> None:
    replicated = topology.replica_ports(topology.NOTIFICATION_REPLICAS_MAX, balancer=True)
    assert set(replicated) >= generate.NATIVE_ONLY_SCRAPE_PORTS
    assert not generate.NATIVE_ONLY_SCRAPE_PORTS & set(generate.PORT_SERVICE), "compose runs it: scrape it"
    native = yaml.safe_load(prometheus_config.render())
    native_ports = {
        _hostport(t)[1] for j in native["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"]
    }
    assert native_ports >= generate.NATIVE_ONLY_SCRAPE_PORTS, "a native-only port nothing scrapes"


def test_promtool_accepts_the_compose_config_and_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing (make setup installs it)")
    # The container's layout: the config beside rules/ (docker-compose.yml mounts both there).
    shutil.copy(generate.GENERATED / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").symlink_to(prometheus_config.HERE / "rules")
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr and "rules" in out.stdout + out.stderr


# -- Kafka ---------------------------------------------------------------------------------------


def _native() -> dict[str, str]:
    return kafka_broker.properties(generate.KAFKA_DATA_DIR)


def _listeners(props: dict[str, str], key: str) -> dict[str, tuple[str, int]]:
    return {name: (host, port) for name, host, port in generate.parse_listeners(props[key])}


def _comes_back_through_its_proxy(props: dict[str, str], proxies: list[dict[str, Any]], host: str) -> None:
    """PRODUCE/CONSUME advertise a proxy whose upstream is this broker's listener of the same name."""
    listen = _listeners(props, "listeners")
    by_port = {_hostport(p["listen"])[1]: p for p in proxies}
    for name, (_, port) in _listeners(props, "advertised.listeners").items():
        if name in ("PRODUCE", "CONSUME"):
            assert _hostport(by_port[port]["upstream"]) == (host, listen[name][1]), name


def test_kafka_config_is_the_native_one_with_container_hosts() -> None:
    native = _native()
    compose = generate.parse_properties(read("kafka/server.properties"))
    assert compose.keys() == native.keys()
    hosts = {"listeners", "advertised.listeners", "controller.quorum.voters"}
    assert {k: v for k, v in compose.items() if k not in hosts} == {k: v for k, v in native.items() if k not in hosts}
    # Same listeners on the same ports, bound to every interface.
    assert {n: p for n, (_, p) in _listeners(compose, "listeners").items()} == {
        n: p for n, (_, p) in _listeners(native, "listeners").items()
    }
    assert {h for h, _ in _listeners(compose, "listeners").values()} == {generate.BIND_ALL}
    # Same advertised ports; INTERNAL at the broker, PRODUCE/CONSUME at Toxiproxy.
    adv = _listeners(compose, "advertised.listeners")
    assert {n: p for n, (_, p) in adv.items()} == {
        n: p for n, (_, p) in _listeners(native, "advertised.listeners").items()
    }
    assert adv["INTERNAL"][0] == generate.KAFKA
    assert adv["PRODUCE"] == (generate.TOXIPROXY, topology.PROXY_KAFKA_PRODUCE.listen_port)
    assert adv["CONSUME"] == (generate.TOXIPROXY, topology.PROXY_KAFKA_CONSUME.listen_port)
    assert compose["controller.quorum.voters"] == f"1@kafka:{topology.KAFKA_CONTROLLER_PORT}"
    # The semantic, in both runtimes.
    native_proxies = [{"listen": p.listen, "upstream": p.upstream} for p in topology.PROXIES]
    _comes_back_through_its_proxy(native, native_proxies, topology.HOST)
    _comes_back_through_its_proxy(compose, json.loads(read("toxiproxy.json")), generate.KAFKA)


def test_cluster_brokers() -> None:
    native = _native()
    proxies = json.loads(read("toxiproxy-cluster.json"))
    single = generate.parse_properties(read("kafka/server.properties"))
    n = generate.CLUSTER_BROKERS
    for node in range(1, n + 1):
        props = generate.parse_properties(read(f"kafka-cluster/broker-{node}.properties"))
        host = generate.broker_service(node)
        assert props.keys() == native.keys()
        assert props["node.id"] == str(node)
        assert props["listeners"] == single["listeners"]
        assert props["controller.quorum.voters"] == ",".join(
            f"{i}@{generate.broker_service(i)}:{topology.KAFKA_CONTROLLER_PORT}" for i in range(1, n + 1)
        )
        assert _listeners(props, "advertised.listeners")["INTERNAL"] == (host, topology.KAFKA_INTERNAL_PORT)
        _comes_back_through_its_proxy(props, proxies, host)
        for key in generate.REPLICATION_FACTOR_KEYS:
            assert props[key] == "3", key
        for key in generate.MIN_INSYNC_KEYS:
            assert props[key] == "2", key
        changed = {k for k in native if props[k] != single[k]}
        assert changed <= {"node.id", "advertised.listeners", "controller.quorum.voters"} | set(
            generate.REPLICATION_FACTOR_KEYS + generate.MIN_INSYNC_KEYS
        )


def test_a_renamed_native_setting_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "MIN_INSYNC_KEYS", ("min.insync.replicas.renamed",))
    with pytest.raises(generate.GenerateError, match="renamed"):
        generate.kafka_properties(2, 3)
