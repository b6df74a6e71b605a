"""`bench provision`: Kafka jars, toxiproxy-server, Jaeger, Prometheus, HAProxy, wrk and Chromium, each
pinned (Debian's packages: Debian's version) and cached per version; and the stack's fixed ports kept
out of the kernel's ephemeral range (`reserve_ports`).

Idempotent: an artifact whose marker file exists is not fetched again. Everything is rebuilt from
nothing on a fresh machine; nothing here depends on what was installed by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facts import topology
from facts.paths import cache_dir
from facts.versions import (
    JAEGER_MODULE,
    JAEGER_VERSION,
    KAFKA_VERSION,
    LOG4J_VERSION,
    TOXIPROXY_MODULE,
    TOXIPROXY_VERSION,
)
from harness import supervisor

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sync-async-bench</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


class ProvisionError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifacts:
    kafka_libs: Path
    toxiproxy_server: Path
    prometheus: Path
    promtool: Path
    jaeger: Path
    haproxy: Path
    wrk: Path


def kafka_libs_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}-log4j-{LOG4J_VERSION}" / "libs"


def toxiproxy_binary() -> Path:
    return cache_dir() / f"toxiproxy-{TOXIPROXY_VERSION}" / "toxiproxy-server"


def jaeger_binary() -> Path:
    return cache_dir() / f"jaeger-{JAEGER_VERSION}" / "jaeger"


# A download, build or install that takes longer is stuck (a mirror that stopped answering).
TOOL_TIMEOUT_SECONDS = 900


def _log(msg: str) -> None:
    print(f"provision: {msg}", flush=True)


def _run(
    cmd: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        proc = supervisor.run_whole(cmd, timeout=TOOL_TIMEOUT_SECONDS, env=env, cwd=cwd)
    except FileNotFoundError as e:
        raise ProvisionError(f"{what}: `{cmd[0]}` not found; run `bench doctor`") from e
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{what}: not done after {TOOL_TIMEOUT_SECONDS} s, stopped: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise ProvisionError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


def provision_kafka() -> Path:
    libs = kafka_libs_dir()
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    _log(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs}")
    with tempfile.TemporaryDirectory(prefix="kafka-pom-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_KAFKA_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
        staging = libs.parent / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _run(
            [
                "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
            ],
            "Maven dependency resolution for Kafka",
        )  # fmt: skip
        if not any(staging.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise ProvisionError(f"Maven ran but kafka_2.13-{KAFKA_VERSION}.jar is not in {staging}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    marker.touch()
    return libs


def _go_install(module: str, version: str, binary: Path, what: str) -> Path:
    """`go install module@version` into the cache, once per version."""
    if binary.exists():
        return binary
    _log(f"building {what} {version} with go install")
    gobin = binary.parent / "bin"
    env = dict(os.environ, GOBIN=str(gobin), CGO_ENABLED="0")
    _run(["go", "install", f"{module}@{version}"], f"go install {what}", env=env)
    (gobin / module.rsplit("/", 1)[1]).rename(binary)
    shutil.rmtree(gobin, ignore_errors=True)
    return binary


def provision_toxiproxy() -> Path:
    return _go_install(TOXIPROXY_MODULE, TOXIPROXY_VERSION, toxiproxy_binary(), "toxiproxy-server")


def provision_jaeger() -> Path:
    """The trace backend (OTLP in, query API out). Jaeger's go.mod has replace directives, which
    `go install mod@version` refuses, so its module is fetched from the Go module proxy and built
    as the main module (where the replaces apply), at the pinned version."""
    binary = jaeger_binary()
    if binary.exists():
        return binary
    _log(f"building jaeger {JAEGER_VERSION} from its module (a few minutes, once per version)")
    module, _, command = JAEGER_MODULE.partition("/cmd/")
    env = dict(os.environ, CGO_ENABLED="0")
    download = ["go", "mod", "download", "-json", f"{module}@{JAEGER_VERSION}"]
    source = Path(json.loads(_run(download, f"go mod download {module}@{JAEGER_VERSION}", env=env).stdout)["Dir"])
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    _run(["go", "build", "-o", str(partial), f"./cmd/{command}"], "go build jaeger", env=env, cwd=source)
    partial.rename(binary)
    return binary


_apt_updated = False


def _apt_install(package: str, why: str) -> None:
    """Install one of Debian's packages, or say exactly what to install when we cannot."""
    global _apt_updated
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ProvisionError(
            f"{package} is missing and cannot be installed here (needs root and apt-get): "
            f"install Debian's `{package}` package ({why}) and run again"
        )
    _log(f"installing Debian's {package} package (--no-install-recommends)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
        _apt_updated = True
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], f"apt-get install {package}", env=env)


def provision_prometheus() -> tuple[Path, Path]:
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if prom and tool:
        return Path(prom), Path(tool)
    _apt_install("prometheus", "it brings promtool")
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if not (prom and tool):
        raise ProvisionError("apt-get installed prometheus but prometheus/promtool are not on PATH")
    # Debian's postinst may start a system instance on :9090, which would collide with ours.
    subprocess.run(["service", "prometheus", "stop"], capture_output=True, check=False)
    return Path(prom), Path(tool)


def provision_debian_tool(command: str, package: str, why: str) -> Path:
    found = shutil.which(command)
    if found:
        return Path(found)
    _apt_install(package, why)
    found = shutil.which(command)
    if not found:
        raise ProvisionError(f"apt-get installed {package} but {command} is not on PATH")
    return Path(found)


def provision_chromium() -> Path:
    """Headless Chromium renders report.html in the tests (no browser download: Debian's build)."""
    return provision_debian_tool("chromium", "chromium", "the report's browser test renders report.html with it")


def locate() -> Artifacts:
    """The provisioned artifacts, or a ProvisionError naming what `bench provision` must do."""
    libs, tp, jaeger = kafka_libs_dir(), toxiproxy_binary(), jaeger_binary()
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    haproxy, wrk = shutil.which("haproxy"), shutil.which("wrk")
    missing = [
        name
        for name, ok in (
            (f"Kafka {KAFKA_VERSION} jars", (libs.parent / ".complete").exists()),
            (f"toxiproxy-server {TOXIPROXY_VERSION}", tp.exists()),
            ("prometheus/promtool", bool(prom and tool)),
            (f"jaeger {JAEGER_VERSION}", jaeger.exists()),
            ("haproxy", bool(haproxy)),
            ("wrk", bool(wrk)),
        )
        if not ok
    ]
    if missing:
        raise ProvisionError(f"not provisioned: {', '.join(missing)}; run `make setup`")
    assert prom and tool and haproxy and wrk
    return Artifacts(libs, tp, Path(prom), Path(tool), jaeger, Path(haproxy), Path(wrk))


RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def reserve_ports(reserved: Path = RESERVED_PORTS, port_range: Path = PORT_RANGE) -> list[int]:
    """Keep the stack's fixed ports out of the kernel's ephemeral range: a client connection that
    got 50050 as its local port held HAProxy's frontend port and a stack could not start. Returns
    the ports reserved now; without root (or /proc) it says so and changes nothing."""
    try:
        low, high = (int(v) for v in port_range.read_text().split())
        already = _parse_ports(reserved.read_text())
    except (OSError, ValueError):
        return []
    wanted = sorted(p for p in topology.fixed_ports() if low <= p <= high and p not in already)
    if not wanted:
        return []
    try:
        reserved.write_text(",".join(str(p) for p in sorted(already | set(wanted))))
    except OSError as e:
        _log(f"could not reserve ports {wanted} from the ephemeral range ({e}); a client socket may take one")
        return []
    _log(f"reserved ports {', '.join(map(str, wanted))} from the ephemeral range ({low}-{high})")
    return wanted


def _parse_ports(text: str) -> set[int]:
    """ip_local_reserved_ports' syntax: "8080,50050-50053" (empty when none)."""
    ports: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        first, _, last = part.partition("-")
        ports.update(range(int(first), int(last or first) + 1))
    return ports


def provision() -> Artifacts:
    reserve_ports()
    provision_kafka()
    provision_toxiproxy()
    provision_prometheus()
    provision_jaeger()
    provision_debian_tool("haproxy", "haproxy", "the load balancer in front of notification replicas")
    provision_debian_tool("wrk", "wrk", "the HTTP ceiling `bench capacity` measures")
    provision_chromium()
    arts = locate()
    _log(f"ready: Kafka {KAFKA_VERSION}, toxiproxy {TOXIPROXY_VERSION}, jaeger {JAEGER_VERSION}, {arts.prometheus}")
    return arts


def main() -> int:
    try:
        provision()
    except ProvisionError as e:
        print(f"provision: error: {e}", file=sys.stderr)
        return 1
    return 0
