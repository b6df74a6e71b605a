"""Recording rules: promtool accepts them and their unit tests pass, the generated Prometheus config
loads them from its own folder, names follow `level:metric:operations`, every rule is unit-tested,
and every metric they read is one a registry exports. promtool also lints every registry."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from dashboards import catalog
from dashboards.prometheus import config

PROM_DIR = config.HERE
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM_DIR / "tests").glob("*.yml"))
RULE_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def promtool(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool missing: run `make setup`"
    return subprocess.run(
        [exe, *args], cwd=cwd, input=None if stdin is None else stdin.decode(), capture_output=True, text=True
    )


def test_there_are_rules_and_tests() -> None:
    assert RULE_FILES and TEST_FILES


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", *map(str, TEST_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_check_config_finds_the_rules_next_to_it(tmp_path: Path) -> None:
    # Run from elsewhere: the rules glob must resolve relative to the config file, as it does in
    # the stack's copy of this folder.
    out = promtool("check", "config", str(config.CONFIG_FILE), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(RULE_FILES)} rule files found" in out.stdout, out.stdout
    for path in RULE_FILES:
        assert path.name in out.stdout


def test_unit_test_files_are_not_rule_files() -> None:
    # The stack's Prometheus loads `rules/*.yml` from a copy of this folder: tests live elsewhere.
    loaded = set((config.CONFIG_FILE.parent).glob(config.RULES_GLOB))
    assert TEST_FILES and loaded and not loaded & set(TEST_FILES)
    for path in RULE_FILES:
        assert "groups" in yaml.safe_load(path.read_text()), path


def test_rule_names_follow_the_convention() -> None:
    rules = catalog.recording_rules()
    assert rules
    for name in rules:
        assert RULE_NAME.match(name), f"{name}: not level:metric:operations"
        level, _, ops = name.split(":")
        # Dashboards select every recorded series by pipeline, so every level keeps that label.
        assert level.split("_")[0] == "pipeline", name
        assert re.fullmatch(r"(.+_)?rate10s|max|sum|count", ops), f"{name}: window or aggregation missing"


def test_every_rule_has_a_unit_test() -> None:
    tested = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["expr"] for t in case.get("promql_expr_test", [])}
    missing = set(catalog.recording_rules()) - tested
    assert not missing, f"recording rules without a promql_expr_test: {sorted(missing)}"


def test_rules_read_only_exported_metrics() -> None:
    rules = catalog.recording_rules()
    known = catalog.exported_names() | set(rules)
    for name, exprs in rules.items():
        for expr in exprs:
            unknown = catalog.referenced_metrics(expr) - known
            assert not unknown, f"{name} reads {sorted(unknown)}, which no registry exports"


@pytest.mark.parametrize("job", ["reaction", "notification", "pushsink", "loadgen", "chaos"])
def test_promtool_check_metrics(job: str) -> None:
    text = generate_latest(catalog.registries()[job])
    assert text.strip()
    out = promtool("check", "metrics", stdin=text)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out.stdout + out.stderr
