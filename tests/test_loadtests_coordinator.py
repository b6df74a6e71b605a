"""The load generator's coordinators by role (tests/loadtests_coordinator_cases.py), in a process of
their own: importing Locust monkey-patches ssl with gevent, which must happen before anything
imports ssl, and the rest of the suite imports it long before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("loadtests_coordinator_cases.py")


def test_the_coordinator_cases_pass_in_their_own_process() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        capture_output=True,
        text=True,
        cwd=CASES.parent.parent,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout.splitlines()[-1]
