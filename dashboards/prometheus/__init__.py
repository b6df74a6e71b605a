"""Prometheus: `config.py` renders prometheus.yml from facts/topology.py; the recording rules are
YAML in `rules/`, their unit tests in `tests/` (dashboards/README.md)."""
