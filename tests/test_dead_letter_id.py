"""Which reaction a dead-letter record stands for, whatever state its payload is in."""

from __future__ import annotations

from types import SimpleNamespace

from harness.assemble import dead_letter_id
from protos import reaction_pb2


def record(value: bytes | None, key: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(value=value, key=key, partition=2, offset=41, headers=[])


def test_the_payload_names_it() -> None:
    event = reaction_pb2.ReactionEvent(reaction_id="r-7", post_id="p-1")
    assert dead_letter_id(record(event.SerializeToString(), b"p-1")) == "r-7"


def test_a_payload_that_does_not_parse_falls_back_to_the_key_then_to_its_place() -> None:
    assert dead_letter_id(record(b"\xff\xff\xff", b"poison-1")) == "poison-1"
    assert dead_letter_id(record(b"\xff\xff\xff", None)) == "dlq:2:41"
    assert dead_letter_id(record(None, None)) == "dlq:2:41"
