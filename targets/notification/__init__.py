"""The notification service: a gRPC server (sync pipelines) and a Kafka consumer (async pipeline),
both delivering through the one push client in `delivery`."""
