"""The fault timeline: applies each fault at its start, undoes it at its end, and always undoes.

It runs on the orchestrator's main thread through `tick()`, never in a thread of its own: a
process restarted from a thread would get that thread's parent-death signal when it exits.
So a restart after a kill does not wait for the process to be ready (a broker takes ~12 s, which
would hold up every other fault): `tick()` probes its readiness instead, a kill or pause of that
process due meanwhile waits for it (and keeps its planned length), and `settle()` / `undo_all()`
wait for it, so a cell never ends with a half-started process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from chaos.scenario import Fault, LinkDownFault, ProcessFault, ToxicFault
from chaos.toxiproxy import Toxic, ToxiproxyClient

CHAOS_FAULT_ACTIVE = "chaos_fault_active"  # gauge {kind, target, fault}: 1 while a fault is applied
CHAOS_CELL_ACTIVE = "chaos_cell_active"  # gauge {pipeline, scenario}: 1 while that cell's load runs


class ChaosMetrics:
    """The harness' own series, served on topology.CHAOS_METRICS_PORT during `bench run`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fault_active = Gauge(
            CHAOS_FAULT_ACTIVE, "1 while the fault is applied", ["kind", "target", "fault"], registry=registry
        )
        self.cell_active = Gauge(
            CHAOS_CELL_ACTIVE, "1 while this pipeline x scenario runs", ["pipeline", "scenario"], registry=registry
        )


class ProcessControl(Protocol):
    def kill(self, name: str) -> None: ...
    def restart(self, name: str) -> None:
        """Start the killed process again without waiting for it to be ready."""
        ...

    def ready(self, name: str) -> bool:
        """One readiness probe after `restart`, without waiting. Raises if the restart failed,
        including once the process' own ready timeout has passed: that bounds `settle()`."""
        ...

    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...


@dataclass
class Window:
    """One fault's planned and actual window, in seconds from the load's start."""

    index: int
    kind: str
    target: str
    label: str
    start: float
    end: float
    applied_at: float | None = None  # seconds from the timeline's start
    undone_at: float | None = None
    applied_unix: float | None = None  # wall clock, to place the window on the load's own epoch
    undone_unix: float | None = None
    # When the undo had taken effect: a restarted broker is ready only seconds after the undo began.
    recovered_at: float | None = None
    recovered_unix: float | None = None
    error: str | None = None


@dataclass
class _Event:
    at: float
    undo: bool  # at equal times undo sorts first: a fault ending at t frees its target for one at t
    index: int

    def key(self) -> tuple[float, int, int]:
        return (self.at, 0 if self.undo else 1, self.index)


@dataclass
class Timeline:
    faults: list[Fault]
    load_seconds: float
    toxiproxy: ToxiproxyClient
    processes: ProcessControl
    metrics: ChaosMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep  # between readiness probes while settling
    poll: float = 0.2
    windows: list[Window] = field(default_factory=list)
    _events: list[_Event] = field(default_factory=list)
    _active: dict[int, str] = field(default_factory=dict)  # fault index -> toxic name ("" otherwise)
    _recovering: dict[int, str] = field(default_factory=dict)  # kill fault index -> process restarted, not ready
    _deferred: list[int] = field(default_factory=list)  # process faults due while their target restarts
    _t0: float | None = None

    def __post_init__(self) -> None:
        for i, f in enumerate(self.faults):
            start, end = f.window(self.load_seconds)
            self.windows.append(Window(i, f.kind, f.target, f.label, start, end))
            self._events += [_Event(start, False, i), _Event(end, True, i)]
        self._events.sort(key=_Event.key)
        self._gauge = None if self.metrics is None else self.metrics.fault_active
        if self._gauge is not None:
            for w in self.windows:
                self._gauge.labels(w.kind, w.target, w.label).set(0)

    def start(self, at_unix: float | None = None) -> None:
        """Time zero is now, or the wall-clock instant `at_unix` (the load's own epoch)."""
        self._t0 = self.clock() - (0.0 if at_unix is None else time.time() - at_unix)

    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else self.clock() - self._t0

    def tick(self) -> list[str]:
        """Apply/undo every event now due, then probe restarted processes once; returns what it
        did, for the progress line. Raises if an undo (a restart included) failed."""
        done = []
        now = self.elapsed()
        while self._events and self._events[0].at <= now:
            ev = self._events.pop(0)
            w = self.windows[ev.index]
            if ev.undo:
                if ev.index in self._active:
                    self._undo(ev.index)
                    done.append(f"end {w.label}")
            elif self._restarting(ev.index):
                self._defer(ev.index)
            else:
                done += self._start(ev.index)
        # Probed after the due events, so a probe never delays a fault due in this tick; one probe
        # is bounded (a restarting broker's takes at most ~2.5 s), so the next one starts that late at most.
        for i in list(self._recovering):
            if self._probe(i):
                done.append(f"recovered {self.windows[i].label}")
        for i in [i for i in self._deferred if not self._restarting(i)]:
            self._deferred.remove(i)
            done += self._start(i, late=True)
        return done

    def _start(self, i: int, late: bool = False) -> list[str]:
        w = self.windows[i]
        self._apply(i)
        if late and i in self._active:  # it lasts as long as planned, from when it really began
            self._events.append(_Event(self.elapsed() + (w.end - w.start), True, i))
            self._events.sort(key=_Event.key)
        return [f"start {w.label}" + (" (late: its target was restarting)" if late else "")
                + (f" FAILED: {w.error}" if w.error else "")]  # fmt: skip

    def _restarting(self, i: int) -> bool:
        f = self.faults[i]
        return isinstance(f, ProcessFault) and f.process in self._recovering.values()

    def _defer(self, i: int) -> None:
        """A kill or pause due while its process is still restarting from an earlier kill (the
        scenario may chain them) waits, without stalling the timeline, until it is ready: faulting a
        half-started process tests nothing. Its undo moves with it."""
        self._deferred.append(i)
        self._events = [ev for ev in self._events if not (ev.undo and ev.index == i)]

    def active(self) -> list[str]:
        return (
            [self.windows[i].label for i in self._active]
            + [f"{self.windows[i].label} (recovering)" for i in self._recovering]
            + [f"{self.windows[i].label} (waiting for its process)" for i in self._deferred]
        )

    def _probe(self, i: int) -> bool:
        """One readiness probe of the process restarted by undoing fault i; True once it is ready."""
        w = self.windows[i]
        try:
            ready = self.processes.ready(self._recovering[i])
        except Exception as e:
            del self._recovering[i]
            w.error = f"undo failed: {type(e).__name__}: {e}"
            self._set_gauge(w, 0)
            raise
        if ready:
            del self._recovering[i]
            w.recovered_at, w.recovered_unix = self.elapsed(), time.time()
            self._set_gauge(w, 0)
        return ready

    def _set_gauge(self, w: Window, value: int) -> None:
        if self._gauge is not None:
            self._gauge.labels(w.kind, w.target, w.label).set(value)

    def _settle(self, indices: list[int]) -> list[str]:
        """Probe until those restarted processes are ready or failed (each bounded by its own ready
        timeout, see ProcessControl.ready); returns the failures."""
        errors = []
        pending = [i for i in indices if i in self._recovering]
        while pending:
            for i in pending:
                try:
                    self._probe(i)
                except Exception as e:
                    errors.append(str(e))
            pending = [i for i in pending if i in self._recovering]
            if pending:
                self.sleep(self.poll)
        return errors

    def settle(self) -> None:
        """Block until every process restarted after a kill is ready; raises if one is not.
        undo_all() settles too."""
        errors = self._settle(list(self._recovering))
        if errors:
            raise RuntimeError("could not undo every fault: " + "; ".join(errors))

    def _apply(self, i: int) -> None:
        f, w = self.faults[i], self.windows[i]
        try:
            name = ""
            if isinstance(f, ToxicFault):
                toxic = Toxic(f.link, f.toxic, dict(f.attributes), f.stream, f.toxicity, name=f"fault-{i}")
                name = self.toxiproxy.add_toxic(toxic)
            elif isinstance(f, LinkDownFault):
                self.toxiproxy.set_enabled(f.link, False)
            elif isinstance(f, ProcessFault):
                (self.processes.kill if f.kind == "kill" else self.processes.pause)(f.process)
        except Exception as e:  # a fault that cannot be applied is recorded, the run goes on
            w.error = f"{type(e).__name__}: {e}"
            return
        self._active[i] = name
        w.applied_at, w.applied_unix = self.elapsed(), time.time()
        self._set_gauge(w, 1)

    def _undo(self, i: int) -> None:
        f, w = self.faults[i], self.windows[i]
        name = self._active.pop(i)
        w.undone_at, w.undone_unix = self.elapsed(), time.time()
        # A restart has taken effect only once the process is ready (tick() and settle() probe it);
        # one that failed never did, so its recovered_at stays None. Until then the fault is still
        # active on the dashboards, as the report shades it.
        restart = isinstance(f, ProcessFault) and f.kind == "kill"
        try:
            if isinstance(f, ToxicFault):
                self.toxiproxy.remove_toxic(f.link, name)
            elif isinstance(f, LinkDownFault):
                self.toxiproxy.set_enabled(f.link, True)
            elif isinstance(f, ProcessFault):
                if restart:
                    self.processes.restart(f.process)
                    self._recovering[i] = f.process
                else:
                    self.processes.resume(f.process)
        except Exception as e:
            w.error = f"undo failed: {type(e).__name__}: {e}"
            raise
        finally:
            if i not in self._recovering:
                if not restart:
                    w.recovered_at, w.recovered_unix = self.elapsed(), time.time()
                self._set_gauge(w, 0)

    def undo_all(self) -> None:
        """Undo every active fault (newest first), reset Toxiproxy as a safety net, then wait until
        every restarted process is ready: the stack must be whole before the cell drains."""
        errors = []
        for i in sorted(self._active, reverse=True):
            try:
                self._undo(i)
            except Exception as e:
                errors.append(str(e))
        self._events.clear()
        for i in self._deferred:
            self.windows[i].error = "not applied: its process was still restarting when the load ended"
        self._deferred.clear()
        with contextlib.suppress(Exception):
            self.toxiproxy.reset()
        errors += self._settle(list(self._recovering))
        if errors:
            raise RuntimeError("could not undo every fault: " + "; ".join(errors))
