"""Floor 3: what Prometheus scrapes and records (`prometheus/`), the Grafana dashboards as code
(`grafana/`), the catalog of metric names they may use (`catalog.py`) and every panel's query with its
variables substituted (`queries.py`), run against the real Prometheus by the tests."""
