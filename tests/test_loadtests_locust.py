"""Real Locust, headless, against a tiny aiohttp stand-in for the reaction service (not the stack).

The stand-in answers 503 for about 1 id in 10 and too slowly (past --request-timeout) for about 1
in 20, decided by a hash of the reaction id, so the test can check every id's recorded outcome
against what the server actually did.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from aiohttp import web

from loadtests.arrivals import expected_arrivals
from loadtests.outcome import read_outcomes
from loadtests.profile import load_profile
from loadtests.reaction import KINDS

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
REQUEST_TIMEOUT = 1.0
SLOW_SECONDS = 2.0
RUN_LIMIT_SECONDS = 60
# 40/s, 120/s for 1.5 s, back to 40/s: 300 arrivals in 4.5 s.
PROFILE = "kind: surge\nrate: 40\nsurge_multiplier: 3\nsurge_start: 1.5\nsurge_duration: 1.5\nduration: 4.5\n"

# Locustfiles that wrap ours to recreate a timing (see loadtests/coordinator.py's docstring).
# Worker 1 handles the master's "ack" and its first "spawn" back to back, as a worker the OS did not
# schedule in time does: Locust then fires that worker's test_start before our init listener ran.
SPAWN_BEFORE_INIT = """
import logging

from locust.runners import WorkerRunner

from loadtests.locustfile import ProfileShape, ReactionUser, coordinator  # noqa: F401

_handle = WorkerRunner.handle_message
_held = []


def handle_message(self, msg):
    if msg.type == "ack" and (msg.data or {}).get("index") == 1 and not _held and coordinator.env is None:
        _held.append(msg)  # not yet: the connection completes when the spawn message is handled
        return None
    if msg.type == "spawn" and _held and _held[0] is not None:
        ack, _held[0] = _held[0], None
        _handle(self, ack)
        before = "before" if coordinator.env is None else "after"
        logging.getLogger("test").info("test: worker 1 handled ack and spawn back to back, %s init", before)
    return _handle(self, msg)


WorkerRunner.handle_message = handle_message
"""
SPAWN_BEFORE_INIT_MARK = "test: worker 1 handled ack and spawn back to back, before init"
# Worker 1's user starts only LATE_USER_SECONDS after its spawn message: past the master's wait.
LATE_USER_SECONDS = 8.0
LATE_USER = f"""
import gevent
from locust.runners import WorkerRunner

from loadtests.locustfile import ProfileShape, ReactionUser  # noqa: F401

_start_worker = WorkerRunner.start_worker


def start_worker(self, user_classes_count, **kwargs):
    if self.worker_index == 1 and any(user_classes_count.values()):
        gevent.sleep({LATE_USER_SECONDS})
    return _start_worker(self, user_classes_count, **kwargs)


WorkerRunner.start_worker = start_worker
"""


def decision(reaction_id: str) -> str:
    h = int(hashlib.sha256(reaction_id.encode()).hexdigest(), 16) % 20
    return "fail" if h < 2 else "slow" if h == 2 else "ok"


class StandIn:
    """POST /v1/posts/{post_id}/reactions on 127.0.0.1, on its own event loop in a thread."""

    def __init__(self) -> None:
        self.received: dict[str, str] = {}
        self.invalid: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = body.get("reaction_id")
        if set(body) != {"user_id", "kind", "reaction_id"} or body["kind"] not in KINDS or not rid:
            self.invalid.append(json.dumps(body))
            return web.json_response({"error": "bad request"}, status=400)
        if rid in self.received:
            self.invalid.append(f"duplicate {rid}")
        what = self.received[rid] = decision(rid)
        if what == "fail":
            return web.json_response({"error": "unavailable"}, status=503)
        if what == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        return web.json_response({"reaction_id": rid, "post_id": request.match_info["post_id"]}, status=202)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/posts/{post_id}/reactions", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)  # a free port, chosen by the kernel
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> StandIn:
        self._thread.start()
        assert self._ready.wait(10), "stand-in server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            return resp.read().decode()
    except OSError:
        return None


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def our_tracebacks(output: str) -> list[str]:
    """Traceback lines in loadtests/ code. Locust's own shutdown can race its CSV writer against the
    closed file ("I/O operation on closed file" from stats_writer) when --processes and --csv meet;
    that noise is Locust's, harmless, and not what these tests are about."""
    return [line for line in output.splitlines() if line.lstrip().startswith("File ") and "/loadtests/" in line]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def locust_command(
    tmp_path: Path, host_port: int, extra: list[str], profile_text: str = PROFILE, wrapper: str | None = None
) -> tuple[list[str], int]:
    """Locust headless on our locustfile (or `wrapper`: the source of a locustfile that imports ours
    and patches Locust) against `host_port`, on ports of its own; and its metrics port."""
    profile = tmp_path / "tiny-surge.yaml"
    profile.write_text(profile_text)
    locustfile = LOCUSTFILE
    if wrapper is not None:
        locustfile = tmp_path / "wrapped_locustfile.py"
        locustfile.write_text(wrapper)
    metrics_port = free_port()
    master_port = free_port()  # not Locust's default 5557: another Locust run must not take our workers
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "--master-bind-port", str(master_port), "--master-port", str(master_port),
        "--host", f"http://127.0.0.1:{host_port}",
        "--load-profile", str(profile), "--request-timeout", str(REQUEST_TIMEOUT),
        "--outcomes-dir", str(tmp_path / "out"), "--metrics-port", str(metrics_port),
        "--csv", str(tmp_path / "locust"), "--exit-code-on-error", "0", *extra,
    ]  # fmt: skip
    return cmd, metrics_port


def run_locust(
    tmp_path: Path,
    host_port: int,
    extra: list[str],
    profile_text: str = PROFILE,
    terminate_after: float | None = None,
    wrapper: str | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run Locust to completion (bounded), scraping its metrics while it runs; optionally SIGTERM it."""
    cmd, metrics_port = locust_command(tmp_path, host_port, extra, profile_text, wrapper)
    log = (tmp_path / "locust.log").open("w")
    # Its own process group, so the workers it forks can be found (and, on failure, killed) too.
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    scrapes: list[str] = []
    try:
        started = time.monotonic()
        deadline = started + RUN_LIMIT_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            text = scrape(metrics_port)
            if text and metric(text, "loadgen_requests_started_total") > 0:
                scrapes.append(text)
            if terminate_after is not None and time.monotonic() - started > terminate_after:
                proc.terminate()  # the master only, as the harness does
                terminate_after = None
            time.sleep(0.5)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        gone_by = time.monotonic() + 10
        while group_alive(proc.pid) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not group_alive(proc.pid), "Locust left processes behind"
    finally:
        if group_alive(proc.pid):  # never leave Locust or its workers behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    output = (tmp_path / "locust.log").read_text()
    return subprocess.CompletedProcess(cmd, proc.returncode, output, ""), scrapes


@pytest.mark.parametrize(
    ("processes", "arrivals", "wrapper", "wake"),
    [
        (0, "poisson", None, 0.0),
        (2, "constant", None, 0.0),
        (2, "constant", SPAWN_BEFORE_INIT, 0.0),
        (2, "constant", None, 0.005),  # the answers read in batches, as in the bench's cells
    ],
    ids=["single-process-poisson", "two-workers-constant", "two-workers-spawn-before-init", "two-workers-batched"],
)
def test_locust_records_every_reaction_with_its_outcome(tmp_path, processes, arrivals, wrapper, wake):
    extra = ["--arrivals", arrivals, "--seed", "3", "--wake-interval", str(wake)]
    if processes:
        extra += ["--processes", str(processes)]
    with StandIn() as server:
        result, scrapes = run_locust(tmp_path, server.port, extra, wrapper=wrapper)
    assert result.returncode == 0, result.stdout[-3000:]
    assert not our_tracebacks(result.stdout), result.stdout[-3000:]
    assert server.invalid == []
    if wrapper == SPAWN_BEFORE_INIT:  # the timing under test did happen
        assert SPAWN_BEFORE_INIT_MARK in result.stdout, result.stdout[-3000:]

    out = tmp_path / "out"
    workers = max(1, processes)
    assert sorted(p.name for p in out.glob("outcomes-w*.bin")) == [f"outcomes-w{i}.bin" for i in range(workers)]
    records = list(read_outcomes(out))
    ids = [r.reaction_id for r in records]

    # Every id sent was recorded once, and the server saw exactly those ids.
    assert len(ids) == len(set(ids))
    assert set(ids) == set(server.received)
    # Each recorded outcome is what the server did.
    expect = {"ok": ("ack", 202), "fail": ("failed", 503), "slow": ("unknown", None)}
    for r in records:
        assert (str(r.outcome), r.status) == expect[server.received[r.reaction_id]], r
        assert r.intended_unix_nanos <= r.ended_unix_nanos and r.started_unix_nanos <= r.ended_unix_nanos
        assert r.started_unix_nanos - r.intended_unix_nanos < 0.5e9  # started on schedule
    assert {str(r.outcome) for r in records} == {"ack", "failed", "unknown"}
    unknown = [r for r in records if str(r.outcome) == "unknown"]
    assert all(r.latency_seconds >= REQUEST_TIMEOUT for r in unknown)
    assert all("Timeout" in (r.error or "") for r in unknown)

    # The achieved rate is the target: 300 arrivals offered over 4.5 s.
    profile = load_profile(tmp_path / "tiny-surge.yaml")
    target = expected_arrivals(profile.rate_at, profile.duration, profile.breakpoints())
    if arrivals == "constant":
        assert len(records) == round(target)
    else:
        assert len(records) == pytest.approx(target, rel=0.15)
    intended_s = sorted((r.intended_unix_nanos - records[0].intended_unix_nanos) / 1e9 for r in records)
    assert intended_s[-1] == pytest.approx(profile.duration, abs=0.3)
    started_span = (max(r.started_unix_nanos for r in records) - min(r.started_unix_nanos for r in records)) / 1e9
    assert len(records) / started_span == pytest.approx(target / profile.duration, rel=0.2)

    # Summaries and series agree with the records; nothing was missed at this rate.
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("summary-w*.json"))]
    assert len(summaries) == workers
    assert {s["workers"] for s in summaries} == {workers}
    assert {s["wake_interval_seconds"] for s in summaries} == {wake}
    assert all(s["completed_schedule"] and s["missed"] == 0 for s in summaries)
    assert sum(s["started"] for s in summaries) == sum(s["recorded"] for s in summaries) == len(records)
    rows = [json.loads(line) for p in out.glob("series-w*.jsonl") for line in p.read_text().splitlines()]
    assert sum(r["intended"] for r in rows) == len(records)
    assert sum(r["ack"] + r["failed"] + r["unknown"] for r in rows) == len(records)
    if processes:  # each worker took its share
        assert all(abs(s["started"] - len(records) / workers) <= 1 for s in summaries)

    # Locust's own stats (what its web UI and --csv show) count the same requests.
    with (tmp_path / "locust_stats.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "/v1/posts/[post_id]/reactions")
    assert int(row["Request Count"]) == len(records)
    assert int(row["Failure Count"]) == sum(1 for r in records if str(r.outcome) != "ack")

    # The metrics endpoint served while the load ran, and its exposition is valid.
    assert scrapes, "no metrics scraped during the run"
    assert max(metric(m, "loadgen_workers") for m in scrapes) == workers
    started = [metric(m, "loadgen_requests_started_total") for m in scrapes]
    assert started == sorted(started) and started[-1] <= len(records)  # a counter: never goes back
    assert max(metric(m, "loadgen_target_requests_per_second") for m in scrapes) <= profile.max_rate()
    metrics = scrapes[-1]
    assert "loadgen_request_latency_seconds_bucket" in metrics
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_sigterm_mid_run_still_records_every_reaction(tmp_path):
    # Locust installs its own SIGTERM handler only after a headless shape run ends; without ours the
    # master would die at once, losing buffered outcomes and orphaning its workers.
    long_profile = "kind: steady\nrate: 60\nduration: 60\n"
    with StandIn() as server:
        result, _ = run_locust(tmp_path, server.port, ["--processes", "2"], long_profile, terminate_after=3.0)
        received = dict(server.received)
    assert "SIGTERM: stopping" in result.stdout, result.stdout[-3000:]
    assert not our_tracebacks(result.stdout), result.stdout[-3000:]
    out = tmp_path / "out"
    records = list(read_outcomes(out))
    assert 0 < len(records) < 60 * 60
    assert {r.reaction_id for r in records} == set(received)  # nothing sent went unrecorded
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("summary-w*.json"))]
    assert len(summaries) == 2
    assert not any(s["completed_schedule"] for s in summaries)
    assert sum(s["recorded"] for s in summaries) == len(records)


def test_workers_die_with_a_master_killed_outright(tmp_path):
    # SIGKILL skips the master's own stop of its workers, and a fork does not inherit the parent-death
    # signal: without their own, the workers went on sending load until Locust's heartbeat timeout.
    long_profile = "kind: steady\nrate: 40\nduration: 120\n"
    with StandIn() as server:
        cmd, metrics_port = locust_command(tmp_path, server.port, ["--processes", "2"], long_profile)
        with (tmp_path / "locust.log").open("w") as log:
            proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + RUN_LIMIT_SECONDS
            while metric(scrape(metrics_port) or "", "loadgen_requests_started_total") == 0:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "locust.log").read_text()
                time.sleep(0.2)
            workers = psutil.Process(proc.pid).children()
            assert len(workers) == 2
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            _, alive = psutil.wait_procs(workers, timeout=20)  # the kernel's SIGKILL is immediate; 20 s is slack
            assert not alive, f"workers outlived their master: {[p.pid for p in alive]}"
        finally:
            if group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_worker_whose_user_starts_late_gets_no_share_and_says_so(tmp_path):
    # Worker 1's user starts after the master stopped waiting for it: the run is planned for worker 0
    # alone (so no share is left without a user to drive it), and worker 1 sends nothing, loudly.
    with StandIn() as server:
        result, _ = run_locust(
            tmp_path, server.port, ["--processes", "2", "--arrivals", "constant", "--seed", "3"], wrapper=LATE_USER
        )
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    assert not our_tracebacks(out), out[-3000:]
    assert server.invalid == []
    assert "no user started on worker(s)" in out, out[-3000:]
    assert "planning run" in out and "with the 1 that have one" in out, out[-3000:]
    assert "started a user after run" in out, out[-3000:]  # the master's side
    assert "got a user but no share of run" in out, out[-3000:]  # the worker's side
    assert "not every worker reported drained" not in out, out[-3000:]

    out_dir = tmp_path / "out"
    assert sorted(p.name for p in out_dir.glob("outcomes-w*.bin")) == ["outcomes-w0.bin"]
    records = list(read_outcomes(out_dir))
    ids = [r.reaction_id for r in records]
    assert len(ids) == len(set(ids)) and set(ids) == set(server.received)
    expect = {"ok": ("ack", 202), "fail": ("failed", 503), "slow": ("unknown", None)}
    assert all((str(r.outcome), r.status) == expect[server.received[r.reaction_id]] for r in records)
    assert all(r.started_unix_nanos - r.intended_unix_nanos < 0.5e9 for r in records)
    profile = load_profile(tmp_path / "tiny-surge.yaml")
    assert len(records) == round(expected_arrivals(profile.rate_at, profile.duration, profile.breakpoints()))
    (summary,) = [json.loads(p.read_text()) for p in out_dir.glob("summary-w*.json")]
    assert summary["workers"] == 1 and summary["completed_schedule"] and summary["missed"] == 0
