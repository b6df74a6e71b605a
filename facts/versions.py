"""The pinned versions of what the bench runs but does not build from its own source.

Provisioning fetches these; run.json records them; compose/ tags its images with them.
"""

KAFKA_VERSION = "4.4.0"
# Kafka's POM names no logging backend; its tarball ships the log4j2 binding for SLF4J 1.x.
LOG4J_VERSION = "2.25.2"
TOXIPROXY_VERSION = "v2.12.0"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
JAEGER_VERSION = "v1.76.0"
JAEGER_MODULE = "github.com/jaegertracing/jaeger/cmd/jaeger"
