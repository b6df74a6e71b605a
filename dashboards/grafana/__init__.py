"""Grafana dashboards as code (grafana-foundation-sdk). `python -m dashboards.grafana` writes
generated/*.json and provisioning/; the JSON is committed and a test keeps it in sync."""
