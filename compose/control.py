"""`bench run` on the compose stack: harness.stack.Stack's interface over Docker's Engine API.

`bench run` runs in the `bench` container, reaches the services by their names and Docker through
the mounted socket. A process fault becomes a container fault, as close as Docker gets to the
native signals: kill = SIGKILL to the container (it stays down: no restart policy), restart =
start it and return (`ready` then probes it until healthy, as natively); pause/resume = Docker's
cgroup freezer (SIGSTOP/SIGCONT for every process of the container). The reaction service's
pipeline is switched as natively, by restarting it: a container's command cannot change, so it
reads the pipeline from CONTROL_FILE on a volume shared with the bench container.

`bench run --stack compose` uses it instead of harness.stack.Stack (compose/README.md, "How the
harness drives it").
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from chaos.toxiproxy import ToxiproxyClient
from compose import generate
from facts import topology
from facts.probe import Pending, ReactionReady, http_json, wait_until

DOCKER_SOCKET = Path("/var/run/docker.sock")
CONTROL_FILE = Path("/run/sab/pipeline")  # docker-compose.yml: the reaction command reads it
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"  # `compose run` containers (the bench one) are one-offs
# What `up` waits for: every long-running service `bench run` talks to.
SERVICES = (
    generate.TOXIPROXY,
    generate.KAFKA,
    generate.PUSHSINK,
    generate.NOTIFICATION,
    generate.REACTION,
    generate.PROMETHEUS,
    generate.JAEGER,  # the services export their spans to it (not read back on compose: README)
)


class DockerError(RuntimeError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


class DockerAPI:
    """The few Engine API calls needed, over the Unix socket: the image has no docker CLI or SDK."""

    def __init__(self, socket_path: Path = DOCKER_SOCKET, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, method: str, path: str, query: dict[str, str] | None = None) -> Any:
        target = path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, target)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as e:
            raise DockerError(f"Docker API {method} {target} via {self.socket_path}: {e}") from e
        finally:
            conn.close()
        if resp.status >= 400:  # 304 (already started, already stopped) is success
            text = body.decode(errors="replace")[:300]
            raise DockerError(f"Docker API {method} {target}: HTTP {resp.status}: {text}")
        return json.loads(body) if body else None


def reaction_health(timeout: float = 2.0) -> dict[str, Any] | None:
    """The reaction service's /healthz (pipeline, transport_ready), or None while it does not answer."""
    return http_json(f"http://{generate.REACTION}:{topology.REACTION_HTTP_PORT}{topology.HEALTHZ_PATH}", timeout)


class ComposeStack:
    """A compose stack started by `docker compose up`; `bench run` plays its cells on it."""

    def __init__(
        self,
        pipeline: str = topology.DEFAULT_PIPELINE,
        *,
        docker: DockerAPI | None = None,
        project: str | None = None,
        toxiproxy: ToxiproxyClient | None = None,
        control_file: Path = CONTROL_FILE,
        health_probe: Callable[[], dict[str, Any] | None] = reaction_health,
        ready_timeout: float = 180.0,
        poll: float = 0.5,
    ) -> None:
        if pipeline not in topology.PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r} (known: {', '.join(topology.PIPELINES)})")
        self.pipeline = pipeline
        self.docker = docker or DockerAPI()
        self._project = project
        self.toxiproxy = toxiproxy or ToxiproxyClient(generate.TOXIPROXY, topology.TOXIPROXY_API_PORT)
        self.control_file = control_file
        self._health_probe = health_probe
        self.ready_timeout = ready_timeout
        self.poll = poll
        # Services restarted but not yet seen ready -> their readiness check and its deadline.
        self._starting: dict[str, Pending] = {}

    # -- containers ------------------------------------------------------------------------------

    @property
    def project(self) -> str:
        """The compose project: COMPOSE_PROJECT_NAME, else the label of the container we run in."""
        if self._project is None:
            self._project = os.environ.get("COMPOSE_PROJECT_NAME") or self._own_project()
        return self._project

    def _own_project(self) -> str:
        info = self.docker.call("GET", f"/containers/{socket.gethostname()}/json")
        project = ((info.get("Config") or {}).get("Labels") or {}).get(PROJECT_LABEL)
        if not project:
            raise DockerError("not in a compose container: set COMPOSE_PROJECT_NAME to the project to drive")
        return str(project)

    def _containers(self, service: str) -> list[dict[str, Any]]:
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}", f"{ONEOFF_LABEL}=False"]
        found: list[dict[str, Any]] = self.docker.call(
            "GET", "/containers/json", {"all": "1", "filters": json.dumps({"label": labels})}
        )
        return found

    def container(self, service: str) -> str:
        found = self._containers(service)
        if not found:
            raise DockerError(f"no container of service {service!r} in compose project {self.project!r}")
        return str(found[0]["Id"])

    def has_service(self, service: str) -> bool:
        """Whether the project has a container of `service` (kafka-2 exists only in the cluster profile)."""
        return bool(self._containers(service))

    def _state(self, service: str) -> dict[str, Any]:
        state: dict[str, Any] = self.docker.call("GET", f"/containers/{self.container(service)}/json")["State"]
        return state

    def healthy(self, service: str) -> bool:
        state = self._state(service)
        health = state.get("Health")
        status_ok = health is None or health.get("Status") == "healthy"  # no health check: running is enough
        return bool(state.get("Running")) and not state.get("Paused") and status_ok

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        try:
            wait_until(done, self.ready_timeout, what, self.poll)
        except TimeoutError as e:
            raise DockerError(str(e)) from None

    def wait_healthy(self, service: str) -> None:
        self._wait(lambda: self.healthy(service), f"{service} healthy")

    def _reaction_ready(self, pipeline: str) -> Callable[[], bool]:
        """The native readiness: the API answers on `pipeline` and its transport can send."""
        return ReactionReady(self._health_probe, pipeline)

    def _post(self, service: str, action: str, query: dict[str, str] | None = None) -> None:
        self.docker.call("POST", f"/containers/{self.container(service)}/{action}", query)

    # -- lifecycle (harness.stack.Stack's interface) ---------------------------------------------

    def up(self) -> ComposeStack:
        for service in SERVICES:
            self.wait_healthy(service)
        health = self._health_probe()
        if health is None or health.get("pipeline") != self.pipeline:
            self.use_pipeline(self.pipeline)
        return self

    def use_pipeline(self, pipeline: str) -> None:
        """Restart the reaction service with another pipeline; the rest of the stack stays up."""
        if pipeline not in topology.PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}")
        self.control_file.parent.mkdir(parents=True, exist_ok=True)
        self.control_file.write_text(f"{pipeline}\n")
        self._post(generate.REACTION, "restart", {"t": "10"})  # returns once the old process is gone
        self.pipeline = pipeline
        self._wait(self._reaction_ready(pipeline), f"reaction service ready on pipeline {pipeline}")

    def down(self) -> None:
        # Compose owns the containers; `make down RUNTIME=compose` removes them. Dropping the
        # control file lets the reaction service fall back to $PIPELINE at its next start.
        self.control_file.unlink(missing_ok=True)

    def __enter__(self) -> ComposeStack:
        return self.up()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.down()

    # -- process faults (chaos.engine.ProcessControl) --------------------------------------------

    def kill(self, name: str) -> None:
        self._post(name, "kill", {"signal": "SIGKILL"})
        self._wait(lambda: not self._state(name).get("Running"), f"{name} stopped")

    def restart(self, name: str) -> None:
        """After a kill: start the container again and return at once; `ready` tells when it is, as natively."""
        self._post(name, "start")
        if name == generate.REACTION:
            check, what = self._reaction_ready(self.pipeline), f"reaction service ready on pipeline {self.pipeline}"
        else:
            check, what = (lambda: self.healthy(name)), f"{name} healthy"
        # One failed inspect is no verdict: the deadline decides, as natively.
        self._starting[name] = Pending(check, self.ready_timeout, what, tolerate=(DockerError, OSError))

    def ready(self, name: str) -> bool:
        """One probe of a restarted service: True once ready (and from then on), False while starting;
        DockerError once ready_timeout has passed since the restart."""
        starting = self._starting.get(name)
        if starting is None:
            return True
        try:
            ready = starting.poll()
        except TimeoutError as e:
            del self._starting[name]
            raise DockerError(str(e)) from None
        if ready:
            del self._starting[name]
        return ready

    def wait_ready(self, name: str) -> None:
        """`ready`, blocking: for callers that need the service back before going on."""
        while not self.ready(name):
            time.sleep(self.poll)

    def pause(self, name: str) -> None:
        self._post(name, "pause")

    def resume(self, name: str) -> None:
        self._post(name, "unpause")
