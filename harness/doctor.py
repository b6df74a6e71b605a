"""`bench doctor`: every prerequisite with its version, and what to do when one is missing.

Standard library only: `make setup` runs it with the system Python before any venv exists, so a
missing prerequisite fails setup early with this message instead of halfway through.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

MIN_PYTHON = (3, 11)
MIN_JAVA = 17


@dataclass
class Prerequisite:
    name: str
    version: str | None  # None: missing or unusable
    hint: str
    required: bool = True
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.version is not None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout + out.stderr).strip() or None


def _first_match(text: str | None, pattern: str) -> str | None:
    if text is None:
        return None
    m = re.search(pattern, text)
    return m.group(1) if m else None


def check_python() -> Prerequisite:
    v = sys.version_info
    ver = f"{v.major}.{v.minor}.{v.micro}"
    ok = (v.major, v.minor) >= MIN_PYTHON
    return Prerequisite(
        "python", ver if ok else None, f"install Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} with venv support"
    )


def check_java() -> Prerequisite:
    ver = _first_match(_run(["java", "-version"]), r'version "([^"]+)"')
    major = int(ver.split(".")[0]) if ver and ver.split(".")[0].isdigit() else 0
    hint = f"install a JDK >= {MIN_JAVA} (Debian: apt-get install openjdk-{MIN_JAVA}-jre-headless)"
    return Prerequisite("java", ver if major >= MIN_JAVA else None, hint, note="" if ver else "not found")


def check_maven() -> Prerequisite:
    ver = _first_match(_run(["mvn", "-v"]), r"Apache Maven ([0-9][0-9.]*)")
    return Prerequisite("maven", ver, "install Maven (Debian: apt-get install maven); it fetches the Kafka jars")


def check_go() -> Prerequisite:
    ver = _first_match(_run(["go", "version"]), r"go version go(\S+)")
    return Prerequisite("go", ver, "install Go >= 1.22 (https://go.dev/doc/install); it builds toxiproxy-server")


def check_prometheus() -> Prerequisite:
    ver = _first_match(_run(["prometheus", "--version"]), r"prometheus, version (\S+)")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if root and shutil.which("apt-get"):
        hint = "`bench provision` installs it: apt-get install --no-install-recommends prometheus"
        required = False  # provisioning fixes it
    else:
        hint = "run as root: apt-get install --no-install-recommends prometheus (and promtool)"
        required = True
    return Prerequisite("prometheus", ver, hint, required=required)


def all_checks(python_only: bool = False) -> list[Prerequisite]:
    if python_only:
        return [check_python()]
    return [check_python(), check_java(), check_maven(), check_go(), check_prometheus()]


def report(checks: list[Prerequisite]) -> int:
    failed = False
    for c in checks:
        if c.ok:
            print(f"  ok       {c.name:<11} {c.version}")
        elif c.required:
            failed = True
            print(f"  MISSING  {c.name:<11} -> {c.hint}")
        else:
            print(f"  later    {c.name:<11} -> {c.hint}")
    if failed:
        print("doctor: prerequisites missing (see above); nothing was installed.", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench doctor", description=__doc__)
    parser.add_argument("--python-only", action="store_true", help="check only the Python interpreter")
    parser.add_argument("--fix-hint", action="store_true", help="quiet when everything is fine")
    args = parser.parse_args(argv)
    checks = all_checks(args.python_only)
    if args.fix_hint and all(c.ok or not c.required for c in checks):
        return 0
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
