"""The progress line of a cell: one line a second on a terminal, every 5 s in a log."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, planned: float) -> None:
        self.label, self.planned = label, planned
        self.tty = sys.stdout.isatty()
        self._last = 0.0

    def show(self, phase: str, elapsed: float, extra: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (1.0 if self.tty else 5.0):
            return
        self._last = now
        line = f"[{self.label}] {phase:<6} {elapsed:6.1f}/{self.planned:.0f}s  {extra}"
        print(("\r" + line.ljust(110)) if self.tty else line, end="" if self.tty else "\n", flush=True)

    def event(self, text: str) -> None:
        print(("\n" if self.tty else "") + f"[{self.label}] {text}", flush=True)
