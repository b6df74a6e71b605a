"""The OpenAPI 3.1 document of the running service (its success status depends on the pipeline)."""

from __future__ import annotations

from typing import Any

from facts import topology
from targets.reaction.models import ID_CHARACTERS, ID_PATTERN, MAX_BODY_BYTES, MAX_ID_LENGTH, ReactionRequest

REACTIONS_PATH = topology.REACTIONS_PATH

_SUCCESS: dict[str, tuple[str, str, list[str]]] = {
    # pipeline: (status, description, possible "status" values)
    "sync": ("200", "The notification reached the push sink.", ["delivered", "duplicate"]),
    "sync-resilient": ("200", "The notification reached the push sink.", ["delivered", "duplicate"]),
    "async": ("202", "Kafka acknowledged the event (acks=all); delivery follows.", ["accepted"]),
}

_FAILURES: dict[str, dict[str, str]] = {
    "sync": {
        "502": "The notification service failed in an unexpected way.",
        "503": "The notification service is unavailable or could not deliver.",
        "504": "No answer from the notification service within the deadline; delivery may still happen.",
    },
    "sync-resilient": {
        "502": "The notification service failed in an unexpected way.",
        "503": "The notification service is unavailable, or the circuit breaker is open (see Retry-After).",
        "504": "No answer within the deadline, retries included; delivery may still happen.",
    },
    "async": {
        "503": "Kafka could not take the event (not connected, or no acknowledgement).",
        "504": "No acknowledgement from Kafka within the deadline; the event may still be stored.",
    },
}


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def build_openapi(pipeline: str, server_url: str) -> dict[str, Any]:
    status, description, statuses = _SUCCESS[pipeline]
    request_schema = ReactionRequest.model_json_schema()
    failures = {code: _error_response(text) for code, text in _FAILURES[pipeline].items()}
    if pipeline == "sync-resilient":
        failures["503"]["headers"] = {
            "Retry-After": {
                "description": "Seconds until the circuit breaker lets a trial call through (breaker open only).",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Reaction service",
            "version": "1.0.0",
            "description": (
                f"Records a reaction to a post and gets its author notified. This instance runs the "
                f"`{pipeline}` pipeline: a {status} means: {description}"
            ),
        },
        "servers": [{"url": server_url}],
        "paths": {
            REACTIONS_PATH: {
                "post": {
                    "operationId": "createReaction",
                    "summary": "React to a post",
                    "parameters": [
                        {
                            "name": "post_id",
                            "in": "path",
                            "required": True,
                            "description": f"The post; 1-{MAX_ID_LENGTH} of {ID_CHARACTERS}.",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_ID_LENGTH,
                                "pattern": ID_PATTERN,
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "description": f"At most {MAX_BODY_BYTES} bytes.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReactionRequest"}}},
                    },
                    "responses": {
                        status: {
                            "description": description,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["reaction_id", "status"],
                                        "properties": {
                                            "reaction_id": {"type": "string"},
                                            "status": {"type": "string", "enum": statuses},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error_response("The body is not valid JSON (`field` is `body`)."),
                        "413": _error_response(f"The body is larger than {MAX_BODY_BYTES} bytes."),
                        "415": _error_response("The Content-Type is not application/json."),
                        "422": _error_response(
                            "A field is missing, unknown, of the wrong type or out of range (`field` names it; "
                            "`body` when the body is not a JSON object)."
                        ),
                        **failures,
                    },
                }
            },
            topology.HEALTHZ_PATH: {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness, and whether the transport is ready",
                    "responses": {
                        "200": {
                            "description": "The service is up.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "pipeline", "transport_ready"],
                                        "properties": {
                                            "status": {"const": "ok"},
                                            "pipeline": {"type": "string"},
                                            "transport_ready": {"type": "boolean"},
                                            "breaker": {"type": "string", "enum": ["closed", "open", "half_open"]},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            topology.METRICS_PATH: {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format (OpenMetrics on request).",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            topology.OPENAPI_PATH: {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "ReactionRequest": request_schema,
                "Error": {
                    "type": "object",
                    "required": ["error", "field"],
                    "properties": {
                        "error": {"type": "string", "description": "What went wrong, for a human."},
                        "field": {
                            "type": ["string", "null"],
                            "description": "The offending field: a body field, `post_id`, `body` or `Content-Type`.",
                        },
                        "reason": {
                            "type": "string",
                            "description": "Transport failures only: a short machine-readable cause.",
                        },
                        "reaction_id": {
                            "type": "string",
                            "description": "Transport failures only: the id the reaction was given.",
                        },
                    },
                },
            }
        },
    }
