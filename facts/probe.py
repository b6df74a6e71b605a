"""Probes: does an HTTP endpoint or a TCP port answer, is the reaction service ready, wait until.

Readiness is probed, never slept: the native supervisor, the compose stack, compose's container
health checks and the tests all use these.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from facts import topology


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def http_json(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The JSON object a 2xx answer carries, or None (no answer, an error status, not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tcp_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((topology.HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class Pending:
    """A condition with a deadline, probed one call at a time: what a restart that must not block
    (the native supervisor's, the compose stack's) keeps until its component is ready.

    `poll()` is True once `done` held (and from then on, without probing again), False while the
    deadline has not passed, and raises TimeoutError naming `what` once it has. An exception of a
    type in `tolerate`, raised by `done`, counts as one failed probe: the deadline decides.
    """

    def __init__(
        self,
        done: Callable[[], bool],
        timeout: float,
        what: str,
        tolerate: tuple[type[Exception], ...] = (),
    ) -> None:
        self.done, self.timeout, self.what, self.tolerate = done, timeout, what, tolerate
        self.deadline = time.monotonic() + timeout
        self.reached = False

    def poll(self) -> bool:
        if not self.reached:
            try:
                self.reached = bool(self.done())
            except self.tolerate:
                self.reached = False
        if self.reached:
            return True
        if time.monotonic() >= self.deadline:
            raise TimeoutError(f"{self.what}: not reached after {self.timeout:.0f}s")
        return False


def wait_until(done: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    """Call `done` every `poll` seconds until it is true; TimeoutError naming `what` after `timeout`."""
    pending = Pending(done, timeout, what)
    while not pending.poll():
        time.sleep(poll)


class ReactionReady:
    """Ready once the reaction service answers (on `pipeline`, when given) and its transport can
    send, so a run never opens with 503s from a producer still connecting. If the transport stays
    down (Kafka may be the fault under test), the answering API is enough after GRACE seconds."""

    GRACE = 15.0

    def __init__(self, health: Callable[[], dict[str, Any] | None], pipeline: str | None = None) -> None:
        self.health, self.pipeline = health, pipeline
        self.first_answer: float | None = None

    def __call__(self) -> bool:
        health = self.health()
        if health is None or (self.pipeline is not None and health.get("pipeline") != self.pipeline):
            return False
        if self.first_answer is None:
            self.first_answer = time.monotonic()
        return bool(health.get("transport_ready")) or time.monotonic() - self.first_answer > self.GRACE
