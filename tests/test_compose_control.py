"""compose.control (bench run's stack over Docker's API) against a fake Engine API on a Unix
socket, and compose.healthcheck (the containers' health checks) against a local HTTP server."""

from __future__ import annotations

import json
import shutil
import socketserver
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from compose import control, healthcheck
from facts import probe

PROJECT = "sab-test"


class FakeDocker:
    """Containers by compose service; health goes starting -> healthy after `warmup` inspections."""

    def __init__(self, services: list[str], warmup: int = 2) -> None:
        self.state = {s: {"Running": True, "Paused": False, "Health": {"Status": "healthy"}} for s in services}
        self.labels = {s: {control.PROJECT_LABEL: PROJECT, control.SERVICE_LABEL: s} for s in services}
        self.calls: list[tuple[str, str]] = []
        self.warmup = warmup
        self._starting: dict[str, int] = {}
        self.on_restart: dict[str, Any] = {}

    def handle(self, method: str, url: str) -> tuple[int, Any]:
        parsed = urllib.parse.urlparse(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.calls.append((method, url))
        parts = parsed.path.strip("/").split("/")
        if parts == ["containers", "json"]:
            labels = json.loads(query["filters"])["label"]
            want = {tuple(label.split("=", 1)) for label in labels}
            assert (control.ONEOFF_LABEL, "False") in want
            found = [
                s
                for s in self.state
                if {(k, v) for k, v in self.labels[s].items()} >= want - {(control.ONEOFF_LABEL, "False")}
            ]
            return 200, [{"Id": f"id-{s}"} for s in found]
        service = parts[1].removeprefix("id-")
        if service not in self.state:
            return 404, {"message": f"No such container: {parts[1]}"}
        st = self.state[service]
        if method == "GET":
            if service in self._starting:
                self._starting[service] -= 1
                if self._starting[service] <= 0:
                    del self._starting[service]
                    st["Health"] = {"Status": "healthy"}
            return 200, {"State": dict(st), "Config": {"Labels": self.labels[service]}}
        action = parts[2]
        if action == "kill":
            assert query == {"signal": "SIGKILL"}
            st["Running"] = False
        elif action in ("start", "restart"):
            st["Running"] = True
            st["Health"] = {"Status": "starting"}
            self._starting[service] = self.warmup
            if service in self.on_restart:
                self.on_restart[service]()
        elif action == "pause":
            st["Paused"] = True
        elif action == "unpause":
            st["Paused"] = False
        return 204, None


@pytest.fixture
def fake() -> Iterator[tuple[FakeDocker, Path]]:
    docker = FakeDocker([*control.SERVICES, "me"])
    folder = Path(tempfile.mkdtemp(prefix="dk"))  # short: a Unix socket path has ~100 bytes at most
    sock = folder / "docker.sock"

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            status, body = docker.handle(self.command, self.path)
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:  # Unix peers have no address to log
            pass

    server = socketserver.ThreadingUnixStreamServer(str(sock), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield docker, sock
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder, ignore_errors=True)


def make_stack(sock: Path, tmp_path: Path, **kwargs: Any) -> control.ComposeStack:
    kwargs.setdefault("project", PROJECT)
    kwargs.setdefault("health_probe", lambda: {"pipeline": "async", "transport_ready": True})
    kwargs.setdefault("ready_timeout", 5)
    return control.ComposeStack(
        docker=control.DockerAPI(sock, timeout=5),
        toxiproxy=cast(Any, object()),
        control_file=tmp_path / "sab" / "pipeline",
        poll=0.01,
        **kwargs,
    )


def posts(docker: FakeDocker) -> list[str]:
    return [url.split("?")[0] for method, url in docker.calls if method == "POST"]


def test_kill_and_restart_are_container_faults(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    stack = make_stack(sock, tmp_path)
    stack.kill("kafka")
    assert docker.state["kafka"]["Running"] is False
    stack.restart("kafka")  # returns at once: the fault timeline polls `ready`
    assert docker.state["kafka"]["Health"] == {"Status": "starting"}
    stack.wait_ready("kafka")
    assert docker.state["kafka"]["Health"] == {"Status": "healthy"} and stack.healthy("kafka")
    assert stack.ready("kafka"), "ready from then on"
    assert posts(docker) == ["/containers/id-kafka/kill", "/containers/id-kafka/start"]


def test_ready_polls_a_restart_without_waiting(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    stack = make_stack(sock, tmp_path)
    stack.kill("notification")
    stack.restart("notification")  # healthy at the second inspection (warmup=2)
    before = len(docker.calls)
    assert stack.ready("notification") is False
    assert stack.ready("notification") is True
    assert stack.ready("notification") is True
    inspections = [url for method, url in docker.calls[before:] if url == "/containers/id-notification/json"]
    assert len(inspections) == 2, "one inspection per probe until ready, none afterwards"


def test_ready_raises_once_the_ready_timeout_passed(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    _, sock = fake
    stack = make_stack(sock, tmp_path, ready_timeout=0)
    stack.kill("kafka")
    stack.restart("kafka")
    with pytest.raises(control.DockerError, match="kafka healthy: not reached after 0s"):
        stack.ready("kafka")


def test_pause_and_resume(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    stack = make_stack(sock, tmp_path)
    stack.pause("notification")
    assert not stack.healthy("notification")
    stack.resume("notification")
    assert stack.healthy("notification")
    assert posts(docker) == ["/containers/id-notification/pause", "/containers/id-notification/unpause"]


def test_use_pipeline_restarts_reaction_with_the_control_file(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    running = {"pipeline": "async", "transport_ready": True}
    stack = make_stack(sock, tmp_path, health_probe=lambda: dict(running))
    # The reaction container's command reads the control file when it (re)starts.
    docker.on_restart["reaction"] = lambda: running.update(pipeline=stack.control_file.read_text().strip())
    stack.use_pipeline("sync")
    assert stack.control_file.read_text() == "sync\n" and stack.pipeline == "sync" and running["pipeline"] == "sync"
    assert posts(docker) == ["/containers/id-reaction/restart"]
    with pytest.raises(ValueError, match="unknown pipeline"):
        stack.use_pipeline("carrier-pigeon")


def test_up_waits_for_every_service_and_sets_the_pipeline(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    running = {"pipeline": "async", "transport_ready": True}
    docker.state["kafka"]["Health"] = {"Status": "starting"}
    docker._starting["kafka"] = 3
    docker.on_restart["reaction"] = lambda: running.update(pipeline="sync-resilient")
    with make_stack(sock, tmp_path, pipeline="sync-resilient", health_probe=lambda: dict(running)) as stack:
        assert stack.healthy("kafka") and running["pipeline"] == "sync-resilient"
    assert posts(docker) == ["/containers/id-reaction/restart"]
    inspected = {url.split("/")[2].removeprefix("id-") for method, url in docker.calls if url.endswith("/json")}
    assert inspected >= {"toxiproxy", "kafka", "pushsink", "notification", "reaction", "prometheus", "jaeger"}
    assert not stack.control_file.exists()  # down(): the next start falls back to $PIPELINE


def test_reaction_is_ready_as_natively(
    fake: tuple[FakeDocker, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker, sock = fake
    health = {"pipeline": "async", "transport_ready": False}  # e.g. Kafka is the fault under test
    stack = make_stack(sock, tmp_path, health_probe=lambda: dict(health), ready_timeout=0.3)
    stack.restart("reaction")
    with pytest.raises(control.DockerError, match="reaction service ready on pipeline async"):
        stack.wait_ready("reaction")
    monkeypatch.setattr(probe.ReactionReady, "GRACE", 0.05)  # the API alone, after the grace
    stack.restart("reaction")
    stack.wait_ready("reaction")
    health["transport_ready"] = True
    monkeypatch.setattr(probe.ReactionReady, "GRACE", 60.0)
    stack.restart("reaction")
    assert stack.ready("reaction")
    assert posts(docker) == ["/containers/id-reaction/start"] * 3


def test_up_leaves_a_stack_on_the_right_pipeline_alone(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    make_stack(sock, tmp_path).up()
    assert posts(docker) == []


def test_errors_name_what_is_missing(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    stack = make_stack(sock, tmp_path, ready_timeout=0.2)
    with pytest.raises(control.DockerError, match="no container of service 'kafka-9'"):
        stack.kill("kafka-9")
    docker.state["pushsink"]["Running"] = False
    with pytest.raises(control.DockerError, match="pushsink healthy: not reached"):
        stack.wait_healthy("pushsink")
    with pytest.raises(control.DockerError, match="HTTP 404"):
        stack.docker.call("POST", "/containers/id-nothing/start")
    with pytest.raises(control.DockerError, match=r"no-such\.sock"):
        control.DockerAPI(tmp_path / "no-such.sock").call("GET", "/version")


def test_project_from_own_container(
    fake: tuple[FakeDocker, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sock = fake
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    monkeypatch.setattr(control.socket, "gethostname", lambda: "id-me")  # a container's hostname is its id
    assert make_stack(sock, tmp_path, project=None).project == PROJECT
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "other")
    assert make_stack(sock, tmp_path, project=None).project == "other"


# -- compose.healthcheck -------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    workers = [{"id": "abc123_9f", "state": "ready"}, {"id": "dead01_77", "state": "missing"}]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, b"{}")
            elif self.path == "/ready":
                self._send(200, b'{"transport_ready": true}')
            elif self.path == "/stats/requests":
                self._send(200, json.dumps({"workers": workers}).encode())
            else:
                self._send(503, b"no")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_http(http_server: str) -> None:
    assert healthcheck.main([f"{http_server}/healthz"]) == 0
    assert healthcheck.main(["--require-true", "transport_ready", f"{http_server}/ready"]) == 0
    assert healthcheck.main(["--require-true", "transport_ready", f"{http_server}/healthz"]) == 1
    assert healthcheck.json_true(f"{http_server}/stats/requests", "workers") is False  # a list, not true
    assert healthcheck.main([f"{http_server}/other"]) == 1
    assert not healthcheck.http_ok("http://127.0.0.1:9/healthz", timeout=0.5)  # nothing listens on discard


def test_probe_locust_worker(http_server: str) -> None:
    assert healthcheck.locust_worker_registered(http_server, "abc123")
    assert not healthcheck.locust_worker_registered(http_server, "abc12")  # the id is hostname + "_" + uuid
    assert not healthcheck.locust_worker_registered(http_server, "dead01")  # the master lost it
    assert not healthcheck.locust_worker_registered(f"{http_server}/nope", "abc123")


def test_has_service_tells_which_brokers_the_project_runs(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    _docker, sock = fake
    stack = make_stack(sock, tmp_path)
    assert stack.has_service("kafka") and not stack.has_service("kafka-2")
    with pytest.raises(control.DockerError, match="no container of service 'kafka-2'"):
        stack.kill("kafka-2")


def test_a_failed_inspect_while_restarting_is_not_a_verdict(fake: tuple[FakeDocker, Path], tmp_path: Path) -> None:
    docker, sock = fake
    stack = make_stack(sock, tmp_path)
    stack.kill("kafka")
    stack.restart("kafka")
    state = docker.state.pop("kafka")  # Docker does not know the container for a moment
    assert stack.ready("kafka") is False
    docker.state["kafka"] = state
    stack.wait_ready("kafka")
    assert stack.healthy("kafka")
