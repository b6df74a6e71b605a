"""Headless Chromium (Debian's `chromium`) without CDP: render a page, read its DOM, take a screenshot.

Console output is read from Chromium's own log (`--enable-logging=stderr`), where every console
message, uncaught exception and CSP violation appears as an `INFO:CONSOLE` line. The report's
script never logs, so any such line is a defect.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import supervisor

CHROMIUM = os.environ.get("SYNC_ASYNC_BENCH_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr",
    "--v=0", "--virtual-time-budget=3000",
)  # fmt: skip
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)$", re.MULTILINE)
TIMEOUT = 120.0


class BrowserError(RuntimeError):
    """Chromium is missing or failed; the message says what to do."""


@dataclass(frozen=True)
class Rendered:
    dom: str  # the DOM after the page's scripts ran
    console: list[str]  # every console message, exception and CSP violation


def executable() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    raise BrowserError(
        f"{CHROMIUM} not found: `make setup` installs it (Debian: apt-get install --no-install-recommends chromium)"
    )


def _run(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="sab-chromium-") as profile:
        cmd = [executable(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
        try:
            proc = supervisor.run_whole(cmd, timeout=TIMEOUT)  # Chromium forks: its whole group stops
        except subprocess.TimeoutExpired:
            raise BrowserError(f"chromium did not finish within {TIMEOUT:g} s on {page}") from None
    if proc.returncode != 0:
        raise BrowserError(f"chromium exited with {proc.returncode} on {page}:\n{proc.stderr[-2000:]}")
    return proc


def render(page: Path) -> Rendered:
    proc = _run(page, "--dump-dom")
    return Rendered(proc.stdout, _CONSOLE.findall(proc.stderr))


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 3200) -> Path:
    """A PNG of the top `height` pixels of the page (headless Chromium has no full-page mode without CDP)."""
    _run(page, f"--screenshot={out.resolve()}", f"--window-size={width},{height}")
    if not out.exists():
        raise BrowserError(f"chromium wrote no screenshot to {out}")
    return out
