"""compose/docker-compose*.yml, checked without a container engine.

Structure (health checks, depends_on conditions, published ports, pinned images, mounts that
exist), agreement with the native runtime (the same commands and flags, parsed by the services'
own argument parsers), and, where installed, the compose-spec JSON schema and `docker compose config`.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from compose import generate
from dashboards.grafana import export as grafana
from facts import topology, versions
from facts import toxiproxy as toxiproxy_facts
from harness import provision
from harness.replicas import Replicas
from harness.stack import Stack, jaeger_config
from targets import tracing
from targets.notification import __main__ as notification_main
from targets.pushsink import __main__ as pushsink_main
from targets.reaction import __main__ as reaction_main

COMPOSE_DIR = generate.HERE
BASE = COMPOSE_DIR / "docker-compose.yml"
CLUSTER = COMPOSE_DIR / "docker-compose.cluster.yml"
ENV_FILE = generate.GENERATED / "compose.env"
# Variables not in the generated env file: the secret (no default), and two user knobs.
USER_VARIABLES = {"GRAFANA_ADMIN_PASSWORD", "PIPELINE", "DOCKER_SOCKET"}
PUBLISHED = {"grafana", "locust-master", "jaeger"}
ONE_SHOT = {"kafka-init", "bench"}
APP_IMAGE_SERVICES = {"pushsink", "notification", "reaction", "locust-master", "locust-worker", "bench"}
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())  # resolves the `<<:` merge keys, as compose does
    return doc


def env() -> dict[str, str]:
    return {**generate.parse_env(ENV_FILE.read_text()), "GRAFANA_ADMIN_PASSWORD": "test-only"}


def interpolate(value: Any, values: dict[str, str]) -> Any:
    """Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error}, $$ -> $."""
    if isinstance(value, dict):
        return {k: interpolate(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, values) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.groups()
        if values.get(name):
            return values[name]
        if op and op.endswith("-"):
            return str(arg)
        raise KeyError(f"{name} is required: {arg}")

    return VARIABLE.sub(sub, value)


def services(path: Path = BASE) -> dict[str, Any]:
    return cast(dict[str, Any], interpolate(load(path)["services"], env()))


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def variables(path: Path) -> list[tuple[str, str | None]]:
    """Every ${NAME...} compose interpolates (values only: comments and keys are not)."""
    return [(m.group(1), m.group(2)) for s in _strings(load(path)) for m in VARIABLE.finditer(s) if m.group(1)]


def depends_on(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = svc.get("depends_on", {})
    assert isinstance(deps, dict), "depends_on must be the long form, with a condition per dependency"
    return deps


# -- variables and secrets -------------------------------------------------------------------------


def test_every_variable_comes_from_the_generated_env_or_is_a_documented_knob() -> None:
    defined = generate.parse_env(ENV_FILE.read_text())
    for path in (BASE, CLUSTER):
        for name, op in variables(path):
            if name in USER_VARIABLES:
                continue
            assert name in defined, (
                f"{path.name}: ${{{name}}} is not in {ENV_FILE.name}: add it to compose.generate.env()"
            )
            assert op == ":?", f"{path.name}: ${{{name}}} must fail when the env file is missing: write ${{{name}:?}}"


def test_no_default_credentials() -> None:
    grafana_env = load(BASE)["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", grafana_env["GF_SECURITY_ADMIN_PASSWORD"])
    assert grafana_env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana_env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    generated = ENV_FILE.read_text().upper()
    assert "PASSWORD" not in generated and "SECRET" not in generated
    with pytest.raises(KeyError, match="GRAFANA_ADMIN_PASSWORD"):
        interpolate(load(BASE)["services"], generate.parse_env(ENV_FILE.read_text()))


# -- images, health, dependencies, ports, mounts ---------------------------------------------------


def test_images_are_pinned() -> None:
    for path in (BASE, CLUSTER):
        for name, svc in services(path).items():
            image = svc.get("image")
            if image is None:
                assert "extends" in svc or (path is CLUSTER and name in load(BASE)["services"]), f"{name}: no image"
                continue
            repo, _, tag = image.rpartition(":")
            assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
            if "build" in svc:
                assert name in APP_IMAGE_SERVICES and image == "sync-async-bench-app:local"
            else:
                assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image!r} is not pinned to a version"
    base = services()
    assert base["kafka"]["image"] == f"apache/kafka:{versions.KAFKA_VERSION}"
    assert base["toxiproxy"]["image"] == f"ghcr.io/shopify/toxiproxy:{versions.TOXIPROXY_VERSION.removeprefix('v')}"
    # The v2 image of the native binary's release (Jaeger tags both: "v1.76.0 / v2.13.0").
    assert base["jaeger"]["image"] == f"jaegertracing/jaeger:{generate.JAEGER_IMAGE_TAGS[versions.JAEGER_VERSION]}"
    assert generate.JAEGER_IMAGE_TAGS == {"v1.76.0": "2.13.0"}, (
        "a new Jaeger release: check its v2 tag in its CHANGELOG"
    )


def test_app_services_build_the_one_dockerfile() -> None:
    svcs = load(BASE)["services"]
    assert {n for n, s in svcs.items() if "build" in s} == APP_IMAGE_SERVICES
    for name in APP_IMAGE_SERVICES:
        assert svcs[name]["build"] == {"context": "..", "dockerfile": "compose/Dockerfile"}, name
    assert (COMPOSE_DIR / "Dockerfile").is_file()


def test_every_long_running_service_has_a_health_check() -> None:
    for path in (BASE, CLUSTER):
        for name, svc in load(path)["services"].items():
            overrides_base = path is CLUSTER and name in services(BASE)  # merged with the base's
            if "extends" in svc or name in ONE_SHOT or overrides_base:
                continue
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{path.name}: {name} has no health check"
    for name in ONE_SHOT:
        assert load(BASE)["services"][name]["restart"] == "no"


def test_dependencies_wait_for_health() -> None:
    svcs = services()
    for name, svc in svcs.items():
        for dep, spec in depends_on(svc).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == want, f"{name} -> {dep}: condition must be {want}"
            if want == "service_healthy":
                assert "healthcheck" in svcs[dep], f"{name} waits for {dep}, which has no health check"
    # kafka-init is adopted by a long-running service (else `up --wait` fails on its exit 0).
    assert any("kafka-init" in depends_on(s) for n, s in svcs.items() if n not in ONE_SHOT)


def _needs(svcs: dict[str, Any], name: str) -> set[str]:
    found: set[str] = set()
    todo = [name]
    while todo:
        for dep in depends_on(svcs[todo.pop()]):
            if dep not in found:
                found.add(dep)
                todo.append(dep)
    return found


def test_load_never_starts_against_a_cold_target() -> None:
    svcs = services()
    path = {"reaction", "notification", "pushsink", "toxiproxy", "kafka", "kafka-init"}
    for loader in ("locust-master", "locust-worker", "bench"):
        assert path <= _needs(svcs, loader), f"{loader} may start before {path - _needs(svcs, loader)}"
    assert "prometheus" in _needs(svcs, "bench") and "prometheus" in _needs(svcs, "locust-master")


def test_only_grafana_locust_and_jaeger_ui_are_published_on_loopback() -> None:
    for path in (BASE, CLUSTER):
        for name, svc in services(path).items():
            assert svc.get("network_mode") is None, f"{name}: network_mode"
            ports = svc.get("ports", [])
            if name not in PUBLISHED:
                assert not ports, f"{path.name}: {name} publishes {ports}"
                continue
            for port in ports:
                assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port} not on 127.0.0.1"
    published = {n: s["ports"] for n, s in services().items() if "ports" in s}
    assert published == {
        "grafana": [f"127.0.0.1:{generate.GRAFANA_PORT}:{generate.GRAFANA_PORT}"],
        "locust-master": [f"127.0.0.1:{generate.LOCUST_WEB_PORT}:{generate.LOCUST_WEB_PORT}"],
        "jaeger": [f"127.0.0.1:{topology.JAEGER_QUERY_HTTP_PORT}:{topology.JAEGER_QUERY_HTTP_PORT}"],
    }


def _mounts(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for name, svc in services(path).items():
        for vol in svc.get("volumes", []):
            if isinstance(vol, str):
                source, target = vol.split(":")[:2]
                out.append((name, source, {"target": target}))
            else:
                out.append((name, vol["source"], vol))
    return out


def test_every_mounted_host_path_exists() -> None:
    for path in (BASE, CLUSTER):
        declared = set(load(BASE).get("volumes") or {}) | set(load(path).get("volumes") or {})
        for name, source, spec in _mounts(path):
            if source.startswith("/"):
                assert spec["target"] == "/var/run/docker.sock" and name == "bench", f"{name}: absolute {source}"
            elif source.startswith("."):
                if spec.get("bind", {}).get("create_host_path"):
                    continue  # an output folder (runs/), created when missing
                assert (COMPOSE_DIR / source).exists(), f"{path.name}: {name} mounts missing {source}"
            else:
                assert source in declared, f"{path.name}: {name} mounts undeclared volume {source}"


# -- the native runtime, in containers -------------------------------------------------------------


def _native(tmp_path: Path) -> Any:
    """What Stack's spec methods read, without provisioning anything."""
    arts = SimpleNamespace(
        prometheus=Path("prometheus"), toxiproxy_server=Path("toxiproxy-server"), jaeger=Path("jaeger")
    )
    # replicas: the single-replica stack (harness/replicas.py), what compose runs
    return cast(Any, SimpleNamespace(work_dir=tmp_path, arts=arts, toxiproxy=None, replicas=Replicas()))


def _flags(argv: list[str]) -> dict[str, str]:
    """Go-style (-a b, -a=b) and GNU-style (--a=b) flags -> {name: value or ''}."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].lstrip("-").partition("=")
        if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value, i = argv[i + 1], i + 1
        out[name] = value
        i += 1
    return out


def test_toxiproxy_runs_with_the_native_flags(tmp_path: Path) -> None:
    spec = Stack.toxiproxy_spec(_native(tmp_path))
    native = _flags(spec.argv[1:])
    compose = _flags(services()["toxiproxy"]["command"])
    assert native.pop("host") == topology.HOST and compose.pop("host") == generate.BIND_ALL
    assert compose.pop("config") == "/config/toxiproxy.json"
    assert compose == native
    # and the same Go runtime settings (one scheduler thread)
    assert spec.env == services()["toxiproxy"]["environment"] == toxiproxy_facts.ENVIRONMENT
    assert services()["toxiproxy"]["volumes"] == ["./generated/toxiproxy.json:/config/toxiproxy.json:ro"]


def test_prometheus_runs_with_the_native_flags(tmp_path: Path) -> None:
    native = _flags(Stack.prometheus_spec(_native(tmp_path)).argv[1:])
    svc = services()["prometheus"]
    compose = _flags(svc["command"])
    # Both store exemplars: the services' latency histograms carry trace ids (Grafana links them to Jaeger).
    assert native["enable-feature"] == compose["enable-feature"] == "exemplar-storage"
    assert native.keys() == compose.keys()
    assert native["web.listen-address"] == topology.addr(topology.PROMETHEUS_PORT)
    assert compose["web.listen-address"] == f"{generate.BIND_ALL}:{topology.PROMETHEUS_PORT}"
    for flag, value in native.items():
        if not flag.endswith(("file", "path", "address")):
            assert compose[flag] == value, flag
    config_dir = Path(compose["config.file"]).parent
    rules = yaml.safe_load((generate.GENERATED / "prometheus.yml").read_text())["rule_files"]
    assert rules == ["rules/*.yml"]
    assert f"./generated/prometheus.yml:{compose['config.file']}:ro" in svc["volumes"]
    assert f"../dashboards/prometheus/rules:{config_dir / 'rules'}:ro" in svc["volumes"]


def _args(svc: dict[str, Any], module: str) -> list[str]:
    cmd = svc["command"]
    if cmd[:2] == ["sh", "-c"]:
        cmd = shlex.split(cmd[2].removeprefix("exec "))
    assert cmd[:3] == ["python", "-m", module]
    return list(cmd[3:])


def _container_address(value: Any) -> Any:
    """A native address as compose writes it: the same port at the service's name (lists item by item)."""
    if isinstance(value, list):
        return [_container_address(v) for v in value]
    if isinstance(value, str) and topology.HOST in value:
        host_port = value.removeprefix("http://").split("/")[0]
        port = int(host_port.rpartition(":")[2])
        return value.replace(topology.HOST, generate.PORT_SERVICE[port])
    return value


def _same_except_addresses(native: Any, compose: Any) -> None:
    """Every option equal, except where compose names a service: same port, container host."""
    for key, value in vars(native).items():
        got = getattr(compose, key)
        if key == "host":
            assert (value, got) == (topology.HOST, generate.BIND_ALL)
        else:
            want = _container_address(value)
            assert got == want, f"{key}: {got!r}, want {want!r} (native {value!r})"


def test_services_run_as_natively(tmp_path: Path) -> None:
    svcs = services()
    fake = _native(tmp_path)
    cases = [
        ("pushsink", Stack.pushsink_spec(fake).argv, pushsink_main.parse_args),
        ("notification", Stack.notification_spec(fake).argv, notification_main.parse_args),
        ("reaction", Stack.reaction_spec(fake, "async").argv, reaction_main.parse_args),
    ]
    for name, argv, parse in cases:
        module = argv[2]
        compose_args = _args(svcs[name], module)
        if name == "reaction":  # the pipeline comes from the control file or $PIPELINE
            i = compose_args.index("--pipeline")
            assert "/run/sab/pipeline" in compose_args[i + 1] and "$PIPELINE" in compose_args[i + 1]
            compose_args[i + 1] = "async"
        _same_except_addresses(parse(argv[3:]), parse(compose_args))
    # Ready as natively (facts.probe.ReactionReady): the transport can send.
    assert svcs["reaction"]["healthcheck"]["test"][-3:] == [
        "--require-true",
        "transport_ready",
        f"http://127.0.0.1:{topology.REACTION_HTTP_PORT}/healthz",
    ]


def test_kafka_runs_the_generated_native_config() -> None:
    svc = services()["kafka"]
    script = svc["command"][2]
    conf = "/etc/sab/kafka/server.properties"
    assert (
        f"kafka-storage.sh format --ignore-formatted --cluster-id {generate.KAFKA_CLUSTER_ID} --config {conf}" in script
    )
    assert script.endswith(f"exec /opt/kafka/bin/kafka-server-start.sh {conf}")
    assert f"./generated/kafka/server.properties:{conf}:ro" in svc["volumes"]
    assert svc["environment"]["KAFKA_HEAP_OPTS"].startswith("-Xmx1g")
    assert f"kafka-data:{generate.KAFKA_DATA_DIR}" in svc["volumes"]
    assert f"127.0.0.1:{topology.KAFKA_INTERNAL_PORT}" in svc["healthcheck"]["test"][1]


def test_kafka_init_creates_the_native_topics() -> None:
    svc = services()["kafka-init"]
    script = svc["command"][2]
    assert f"for topic in {topology.TOPIC_REACTIONS} {topology.TOPIC_DEAD_LETTER};" in script
    assert f"--partitions {topology.TOPIC_PARTITIONS}" in script and "--if-not-exists" in script
    assert svc["environment"]["BOOTSTRAP"] == f"kafka:{topology.KAFKA_INTERNAL_PORT}"
    assert svc["environment"]["REPLICATION_FACTOR"] == "1"


def test_every_topology_component_is_a_compose_service() -> None:
    assert set(generate.PORT_SERVICE.values()) <= set(services()), "a topology component compose does not run"


def test_jaeger_runs_the_native_config_with_container_listeners(tmp_path: Path) -> None:
    svc = services()["jaeger"]
    config_file = "/etc/jaeger/config.yaml"
    assert svc["command"] == ["--config", f"file:{config_file}"]  # the image's entrypoint is the binary
    assert svc["volumes"] == [f"./generated/jaeger.yaml:{config_file}:ro"]
    native_argv = Stack.jaeger_spec(_native(tmp_path)).argv
    assert native_argv[1] == "--config" and native_argv[2].startswith("file:")
    compose = yaml.safe_load((generate.GENERATED / "jaeger.yaml").read_text())
    native = json.loads(json.dumps(jaeger_config()).replace(f'"{topology.HOST}:', f'"{generate.BIND_ALL}:'))
    assert compose == native
    endpoints = [
        compose["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        compose["extensions"]["jaeger_query"]["http"]["endpoint"],
        compose["extensions"]["jaeger_query"]["grpc"]["endpoint"],
    ]
    assert endpoints == [
        f"{generate.BIND_ALL}:{p}"
        for p in (topology.JAEGER_OTLP_HTTP_PORT, topology.JAEGER_QUERY_HTTP_PORT, topology.JAEGER_QUERY_GRPC_PORT)
    ]
    # Ready as natively: the query API answers.
    assert svc["healthcheck"]["test"][-1] == f"http://127.0.0.1:{topology.JAEGER_QUERY_HTTP_PORT}/api/services"
    # The native binary (the same release) accepts the file.
    binary = provision.jaeger_binary()
    if not binary.exists():
        pytest.fail(f"Jaeger is not provisioned at {binary} (make setup builds it)")
    out = subprocess.run(
        [str(binary), "validate", "--config", f"file:{generate.GENERATED / 'jaeger.yaml'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_services_send_their_spans_to_jaeger(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same command lines as natively; the default OTLP endpoint (Jaeger's port on its topology
    host) resolves to the jaeger service through SYNC_ASYNC_BENCH_HOSTS."""
    svcs = services()
    hosts = generate.env()["SERVICE_HOSTS"]
    monkeypatch.setattr(topology, "HOSTS", dict(item.split("=") for item in hosts.split(",")))
    parsers = {
        "pushsink": ("targets.pushsink", pushsink_main.parse_args),
        "notification": ("targets.notification", notification_main.parse_args),
        "reaction": ("targets.reaction", reaction_main.parse_args),
    }
    for name, (module, parse) in parsers.items():
        svc = svcs[name]
        assert svc["environment"]["SYNC_ASYNC_BENCH_HOSTS"] == hosts, name
        assert depends_on(svc)["jaeger"] == {"condition": "service_healthy"}, name
        args = _args(svc, module)
        if name == "reaction":
            args[args.index("--pipeline") + 1] = "async"
        settings = tracing.Settings.from_args(parse(args))
        assert settings.enabled and settings.sample_ratio == 1.0, name
        assert settings.otlp_endpoint == f"http://{generate.JAEGER}:{topology.JAEGER_OTLP_HTTP_PORT}", name


def test_grafana_is_provisioned_from_dashboards() -> None:
    svc = services()["grafana"]
    assert "../dashboards/grafana/provisioning:/etc/grafana/provisioning:ro" in svc["volumes"]
    assert f"../dashboards/grafana/generated:{grafana.CONTAINER_DASHBOARDS}:ro" in svc["volumes"]
    home = svc["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (grafana.GENERATED / Path(home).name).is_file()
    # The provisioned datasources reach Prometheus and Jaeger by the compose service names and ports.
    prometheus_url = f"http://{generate.PROMETHEUS}:{topology.PROMETHEUS_PORT}"
    assert prometheus_url == grafana.PROMETHEUS_URL
    assert generate.PROMETHEUS in services()
    assert f"http://{generate.JAEGER}:{topology.JAEGER_QUERY_HTTP_PORT}" == grafana.JAEGER_URL
    assert generate.JAEGER in services()


def test_bench_container_can_drive_the_stack() -> None:
    svc = services()["bench"]
    assert svc["profiles"] == ["bench"]
    assert svc["environment"]["SYNC_ASYNC_BENCH_HOSTS"] == generate.env()["BENCH_HOSTS"]
    assert "jaeger=jaeger" in svc["environment"]["SYNC_ASYNC_BENCH_HOSTS"].split(",")  # traces read back
    assert depends_on(svc)["jaeger"] == {"condition": "service_healthy"}
    assert svc["environment"]["SYNC_ASYNC_BENCH_KAFKA_BOOTSTRAP"] == f"kafka:{topology.KAFKA_INTERNAL_PORT}"
    targets = {m["target"] if isinstance(m, dict) else m.split(":")[1] for m in svc["volumes"]}
    assert {"/app/runs", "/run/sab", "/var/run/docker.sock"} <= targets
    assert "control:/run/sab:ro" in services()["reaction"]["volumes"]


# -- the three-broker profile ----------------------------------------------------------------------


def test_cluster_override() -> None:
    svcs = services(CLUSTER)
    base = load(BASE)["services"]
    conf = "/etc/sab/kafka/server.properties"
    for node in range(1, generate.CLUSTER_BROKERS + 1):
        name = generate.broker_service(node)
        svc = svcs[name]
        assert f"./generated/kafka-cluster/broker-{node}.properties:{conf}:ro" in svc["volumes"]
        assert any(
            v.endswith(f":{generate.KAFKA_DATA_DIR}") and v.startswith(f"kafka-{node}-data") for v in svc["volumes"]
        )
        if node > 1:
            assert svc["extends"] == {"file": "docker-compose.yml", "service": "kafka"}
            assert svc["profiles"] == ["cluster"]
        else:
            assert name in base  # broker 1 is the native `kafka`: `process: kafka` kills it
    assert svcs["toxiproxy"]["volumes"] == ["./generated/toxiproxy-cluster.json:/config/toxiproxy.json:ro"]
    init = svcs["kafka-init"]
    assert init["environment"]["REPLICATION_FACTOR"] == str(generate.CLUSTER_REPLICATION_FACTOR)
    assert init["environment"]["MIN_INSYNC_REPLICAS"] == str(generate.CLUSTER_MIN_INSYNC_REPLICAS)
    assert init["environment"]["BOOTSTRAP"].split(",") == [
        f"{generate.broker_service(n)}:{topology.KAFKA_INTERNAL_PORT}" for n in range(1, 4)
    ]
    assert set(depends_on(init)) == {"kafka-2", "kafka-3"}
    assert svcs["bench"]["environment"]["SYNC_ASYNC_BENCH_KAFKA_BOOTSTRAP"] == init["environment"]["BOOTSTRAP"]
    assert all(d["condition"] == "service_healthy" for d in depends_on(init).values())


# -- schema and the real compose (where installed) ---------------------------------------------------


def test_compose_spec_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed")
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (which ships compose-spec.json) not installed")
    res = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(res.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for path in (BASE, CLUSTER):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load(path))]
        assert not errors, f"{path.name}:\n" + "\n".join(errors)


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    if found:
        probe = subprocess.run([found, "version"], capture_output=True, text=True)
        if probe.returncode == 0 and "v2." in probe.stdout:
            return [found]
    return None


@pytest.mark.parametrize("files", [["-f", str(BASE)], ["-f", str(BASE), "-f", str(CLUSTER), "--profile", "cluster"]])
def test_docker_compose_config(files: list[str]) -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip("no Docker Compose v2 here (`docker compose config` needs no engine where it is installed)")
    cmd = [*compose, "--env-file", str(ENV_FILE), *files, "--profile", "bench", "config", "--quiet"]
    base_env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    ok = subprocess.run(cmd, capture_output=True, text=True, env={**base_env, "GRAFANA_ADMIN_PASSWORD": "x"})
    assert ok.returncode == 0, ok.stderr
    no_password = subprocess.run(cmd, capture_output=True, text=True, env=base_env)
    assert no_password.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in no_password.stderr
