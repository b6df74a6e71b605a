"""`bench doctor` names each prerequisite and says what to do when one is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import doctor


def test_all_present_on_this_machine() -> None:
    checks = doctor.all_checks()
    assert [c.name for c in checks] == ["python", "java", "maven", "go", "prometheus"]
    assert all(c.ok for c in checks), [(c.name, c.hint) for c in checks if not c.ok]


def test_missing_tools_fail_with_a_hint(tmp_path: Path) -> None:
    # A PATH holding only python: java, mvn and go are missing.
    (tmp_path / "python3").symlink_to(sys.executable)
    env = dict(os.environ, PATH=str(tmp_path))
    out = subprocess.run(
        [str(tmp_path / "python3"), "-m", "harness.doctor"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert out.returncode == 1
    for name, hint in (("java", "install a JDK"), ("maven", "install Maven"), ("go", "install Go")):
        line = next(ln for ln in out.stdout.splitlines() if f" {name} " in ln)
        assert "MISSING" in line and hint in line, line
    assert "nothing was installed" in out.stderr
