"""The request body, its validation, and how a validation failure is told to the client."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from protos import reaction_pb2

MAX_BODY_BYTES = 4096
MAX_ID_LENGTH = 128
# ASCII only: ids end up in HTTP headers (Idempotency-Key) and URLs, and this also rules out
# strings protobuf cannot encode (lone surrogates from JSON escapes).
ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"
ID_CHARACTERS = "letters, digits and . _ : @ -"

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Kind = Literal["like", "love", "haha", "wow", "sad", "angry"]
KINDS: tuple[str, ...] = get_args(Kind)

KIND_TO_PROTO: dict[str, reaction_pb2.ReactionKind.ValueType] = {
    kind: reaction_pb2.ReactionKind.Value(kind.upper()) for kind in KINDS
}


class ReactionRequest(BaseModel):
    """A reaction to a post. JSON types must match exactly (no "1" for 1); unknown fields are rejected."""

    # strict + forbid: a client bug shows up as a 422 naming the field, never as a coerced value.
    model_config = ConfigDict(strict=True, extra="forbid", title="ReactionRequest")

    user_id: Identifier = Field(description="Who reacted.")
    kind: Kind = Field(description="The reaction.")
    reaction_id: Identifier | None = Field(
        default=None,
        description="Client-chosen id, the end-to-end idempotency key. Generated (UUID4) when absent or null.",
    )


POST_ID = TypeAdapter(Identifier)


class InvalidRequest(Exception):
    def __init__(self, http_status: int, message: str, field: str | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.field = field


def invalid_from(exc: ValidationError, *, field: str | None = None) -> InvalidRequest:
    """The first problem, worded for a client, naming the field (`field` overrides the location)."""
    error = exc.errors(include_url=False)[0]
    name = field or ".".join(str(part) for part in error["loc"]) or "body"
    return InvalidRequest(422, _message(name, error), name)


def _message(name: str, error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"{name} is required"
    if kind == "extra_forbidden":
        return f"unknown field {name!r}"
    if kind == "model_type":
        return "body must be a JSON object"
    if kind == "literal_error":
        return f"{name} must be one of {', '.join(KINDS)}"
    if kind == "string_type":
        return f"{name} must be a string"
    if kind == "string_too_short":
        return f"{name} must not be empty"
    if kind == "string_too_long":
        return f"{name} must be at most {MAX_ID_LENGTH} characters"
    if kind == "string_unicode":
        return f"{name} must be valid Unicode text"
    if kind == "string_pattern_mismatch":
        return f"{name} may only contain {ID_CHARACTERS}"
    return f"{name}: {error['msg']}"
