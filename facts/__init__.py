"""The ground floor: facts every part of the bench shares, and nothing else.

Ports, hosts and names (topology), pinned versions, where files live (paths), the Kafka broker's
settings (kafka_broker), how Jaeger and Toxiproxy run (jaeger, toxiproxy), HTTP/TCP probes,
quantiles, the metric vocabulary (measures), what spans carry (spans), the comparison operators
(comparison) and how a child process dies with its parent (lifetime). It imports nothing of the
project, so the services, the load generator, chaos, dashboards, compose and the harness can all
stand on it.
"""
