"""Where things live: the per-version download cache (outside the work tree) and run folders."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Downloaded or built artifacts, one folder per version, reused across clones and runs."""
    root = os.environ.get("SYNC_ASYNC_BENCH_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sync-async-bench"


def state_dir() -> Path:
    """The running stack's state (pids, ports) so `bench down` can find what `bench up` started."""
    return Path(os.environ.get("SYNC_ASYNC_BENCH_STATE", REPO / ".bench"))


def runs_dir() -> Path:
    return Path(os.environ.get("SYNC_ASYNC_BENCH_RUNS", REPO / "runs"))
