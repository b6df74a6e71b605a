"""compose/Dockerfile runs what the native runtime runs: the Makefile's pip and protoc commands."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from facts.paths import REPO

DOCKERFILE = REPO / "compose" / "Dockerfile"
DOCKERIGNORE = REPO / "compose" / "Dockerfile.dockerignore"


def _logical_lines(text: str) -> list[str]:
    """Join backslash continuations and drop comments, as make and docker both read them."""
    joined = re.sub(
        r"\\\n[ \t]*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def _run_commands() -> list[str]:
    """Every command of every RUN, split at `&&`."""
    runs = [line.removeprefix("RUN ") for line in _logical_lines(DOCKERFILE.read_text()) if line.startswith("RUN ")]
    return [cmd.strip() for run in runs for cmd in run.split(" && ")]


def _recipe(target: str) -> list[str]:
    """The Makefile's recipe lines for `target`, continuations joined, $(BIN)/ and --quiet dropped."""
    lines = _logical_lines((REPO / "Makefile").read_text())
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    out = []
    for line in lines[start + 1 :]:
        if re.match(r"^[\w$().-]+:", line) or line.startswith((".PHONY", "ifeq", "else", "endif")):
            break
        cmd = re.sub(r"^PATH=.*?:\$\$PATH ", "", line.lstrip("@"))  # the venv's bin on PATH: the image's already is
        out.append(cmd.replace("$(BIN)/", "").replace(" --quiet", ""))
    return out


def test_base_image() -> None:
    froms = [line for line in _logical_lines(DOCKERFILE.read_text()) if line.startswith("FROM ")]
    assert froms == ["FROM python:3.11-slim"]
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11"


def test_pip_commands_are_the_makefiles() -> None:
    makefile = [cmd for cmd in _recipe("$(STAMP)") if cmd.startswith("pip ")]
    assert makefile == ["pip install --upgrade pip==25.3", "pip install -e '.[dev]'"]
    commands = _run_commands()
    for cmd in makefile:
        assert cmd in commands, f"the Dockerfile does not run the Makefile's `{cmd}`"


def test_stub_generation_is_the_makefiles() -> None:
    (stubs,) = _recipe("$(STUBS)")
    assert stubs.startswith("python -m grpc_tools.protoc ")
    assert stubs in _run_commands()
    assert _run_commands().index(stubs) > _run_commands().index("pip install -e '.[dev]'")


def test_the_dependency_layer_installs_exactly_the_pinned_dependencies(tmp_path: Path) -> None:
    # The first RUN installs pyproject's pins before the sources are copied (layer cache).
    (snippet,) = re.findall(r'python -c "(.+?)" > /tmp/requirements.txt', DOCKERFILE.read_text())
    out = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, check=True)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert out.stdout.split() == pins
    assert all("==" in pin for pin in pins)
    assert "pip install -r /tmp/requirements.txt" in _run_commands()


def test_context_excludes_host_state() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"}
    assert {".venv", ".git", "runs", ".bench", "protos/*_pb2*.py", "protos/*_pb2*.pyi"} <= ignored
    text = DOCKERFILE.read_text()
    assert "WORKDIR /app" in text and "PYTHONPATH=/app" in text  # `python -m compose.healthcheck` in health checks
