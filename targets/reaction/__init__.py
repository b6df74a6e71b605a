"""The reaction service: an HTTP API whose transport to the notification service is the pipeline."""
