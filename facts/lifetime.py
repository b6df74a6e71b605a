"""Every process we start dies with the one that started it: Linux's parent-death signal.

Set in the child between fork and exec (Popen's `preexec_fn`), or first thing in a forked child
(a Locust worker of `--processes`). Not inherited across fork, so each generation sets its own.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a child: SIGKILL when `parent` (the pid that forked it) exits. A parent gone before this
    call (between the fork and here) would never send it, so the child exits at once instead."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def dying_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: its child dies with this process."""
    return functools.partial(die_with_parent, os.getpid())
