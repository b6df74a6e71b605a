"""The committed Prometheus config is what the topology renders, and promtool accepts it."""

from __future__ import annotations

import shutil
import subprocess

from dashboards.prometheus import config
from facts import topology


def test_committed_config_matches_topology() -> None:
    assert config.CONFIG_FILE.read_text() == config.render(), (
        "dashboards/prometheus/prometheus.yml is stale: run `python -m dashboards.prometheus.config`"
    )


def test_every_component_is_scraped() -> None:
    text = config.render()
    for job, port in topology.SCRAPE_TARGETS.items():
        assert f"job_name: {job}" in text
        assert f"{topology.HOST}:{port}" in text


def test_promtool_check_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make setup`"
    out = subprocess.run([promtool, "check", "config", str(config.CONFIG_FILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
