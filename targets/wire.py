"""Names that travel between the services: HTTP headers and gRPC metadata keys."""

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# Which pipeline a request belongs to, so the notification service and the push sink can label
# their metrics by pipeline without being told at start.
PIPELINE_HEADER = "X-Pipeline"
PIPELINE_METADATA_KEY = "x-pipeline"  # gRPC metadata keys must be lower case
