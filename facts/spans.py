"""What the services' spans carry that others read: the harness reading traces back from Jaeger
(harness/traces.py) and Grafana linking a latency exemplar to its trace (dashboards/grafana)."""

from __future__ import annotations

# Our own attribute: the id a person debugging a reaction searches for (Jaeger: tags={"reaction.id": ...}).
REACTION_ID = "reaction.id"
PUSH_FIRST = "push.first"  # the push sink saw this reaction id for the first time
# The exemplar label holding a trace id (as Grafana's Prometheus data source links it to Jaeger).
EXEMPLAR_TRACE_ID = "trace_id"
